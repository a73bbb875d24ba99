"""The tools' executables, written into a directory of the node daemon's own.

``<state dir>/crm-tools/`` (mode 0700) holds one small Python script per tool, run by the
daemon's own interpreter in isolated mode (``-I``: an agent's ``PYTHONPATH`` cannot swap the
code). The scripts name the socket and the secret file by path; they hold no secret.
Agents get the directory as ``HA_SBIN_DIR`` and first on ``PATH`` (`agent_env`), so nothing
is ever written over a real Pacemaker's ``/usr/sbin``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from hakeeper.config.secret_file import SecretFile
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.crm_tools.service import AttributeService, socket_path
from hakeeper.runtime.crm_tools.tools import TOOLS
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

DIR_NAME = "crm-tools"


def tools_dir(state_dir: Path) -> Path:
    return state_dir / DIR_NAME


def install_tools(state_dir: Path, secret_file: Path) -> Path:
    """Write (or rewrite) every tool's executable; the directory."""
    where = tools_dir(state_dir)
    where.mkdir(mode=0o700, exist_ok=True)
    os.chmod(where, 0o700)
    for tool in TOOLS:
        script = (
            f"#!{sys.executable} -I\n"
            "# Written by hakeeper's node daemon: Pacemaker's tool of this name, answered by\n"
            "# the local daemon (hakeeper.runtime.crm_tools). Rewritten at every start.\n"
            "import sys\n"
            "from hakeeper.runtime.crm_tools.entry import main\n"
            f"sys.exit(main({tool!r}, {str(socket_path(state_dir))!r}, {str(secret_file)!r}))\n"
        )
        path = where / tool
        temp = path.with_name(f".{tool}.new")
        temp.unlink(missing_ok=True)
        # Created owner-only and executable at once (O_EXCL, no symlink followed): never a
        # moment where the file exists with the umask's looser mode.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(script)
        temp.replace(path)
    return where


@contextlib.asynccontextmanager
async def serving_tools(
    *, node: str, spec: Callable[[], ClusterSpec], store: ClusterStore, state_dir: Path
) -> AsyncIterator[None]:
    """Install the tools and answer them while the block runs. Without a readable cluster
    secret the tools are installed but answer "cannot reach" (exit 102): logged, not fatal,
    since only agents of Pacemaker's protocol need them."""
    secret_path = Path(spec().coordination.secret_file)
    try:
        secret = SecretFile(secret_path)
    except ConfigError as exc:
        log.warning("event=crm_tools_not_served reason=%r", str(exc))
        install_tools(state_dir, secret_path)
        yield
        return
    install_tools(state_dir, secret_path)
    service = AttributeService(
        node=node, spec=spec, store=store, secret=secret, path=socket_path(state_dir)
    )
    async with service.serving():
        yield
