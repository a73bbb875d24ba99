"""What an installed tool runs: kept to the tools and their client, for a quick start (an
agent such as PAF calls several tools per monitor)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hakeeper.runtime.crm_tools.client import SocketClient
from hakeeper.runtime.crm_tools.tools import run


def main(tool: str, socket: str, secret_file: str) -> int:
    client = SocketClient(Path(socket), Path(secret_file))
    return run(tool, sys.argv[1:], env=os.environ, client=client, out=sys.stdout, err=sys.stderr)
