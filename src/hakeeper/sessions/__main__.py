"""``python -m hakeeper.sessions [options]``: run one session-store node (see `command_line`)."""

import sys

from hakeeper.sessions.command_line import main

sys.exit(main())
