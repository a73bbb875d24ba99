"""Commands the CLI suggests to its user, built so that they run as printed.

A hint is quoted for the shell word by word, and names the same cluster file as the command
that printed it: ``--config FILE`` is added when the file in use is not the one a bare
``hakeeper`` command finds by itself (``$HAKEEPER_CONFIG``, else the default path).
"""

from __future__ import annotations

import os
import shlex
from contextvars import ContextVar
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/hakeeper/cluster.toml")

_config_words: ContextVar[tuple[str, ...]] = ContextVar("hint_config_words", default=())


def use_config(config: Path) -> None:
    """Hints printed from now on (in this context) name ``config`` if it needs naming."""
    found = Path(os.environ.get("HAKEEPER_CONFIG") or DEFAULT_CONFIG)
    _config_words.set(() if config == found else ("--config", str(config)))


def start_command() -> None:
    """A new command invocation: its hints name no file until it says which it uses (a
    process that runs several, as the tests do, must not carry one command's file into the
    hints of a command that has no ``--config``)."""
    _config_words.set(())


def hakeeper(*words: str) -> str:
    """``hakeeper WORDS... [--config FILE]``, quoted for a POSIX shell."""
    return shlex.join(["hakeeper", *words, *_config_words.get()])
