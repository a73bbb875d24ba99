"""Fence agents the fencing tests run: shell stubs speaking the fence-agents protocol."""

from __future__ import annotations

import stat
from pathlib import Path

STUB_METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_stub"><parameters>
<parameter name="action"/><parameter name="port"/><parameter name="ipaddr"/>
</parameters></resource-agent>"""


def stub_agent(folder: Path, body: str, *, before: str = "") -> Path:
    """A fence agent that runs ``before``, reads its request, prints metadata when asked and
    otherwise runs ``body`` (``$input`` holds the request)."""
    path = folder / "fence_stub"
    path.write_text(
        "#!/bin/sh\n"
        f"{before}\n"
        "input=$(cat)\n"
        'case "$input" in *action=metadata*) cat <<EOF\n'
        f"{STUB_METADATA}\nEOF\n"
        "exit 0;; esac\n"
        f"{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path
