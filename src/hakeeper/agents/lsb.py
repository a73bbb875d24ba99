"""``lsb:<script>``: an init script in ``/etc/init.d`` (``start``, ``stop``, ``status``).

Exit codes as Pacemaker maps them (``services__lsb2ocf``): for start/stop, LSB and OCF share
0–7; for ``status``, 0 is running, 1–3 not running (1 dead with pid file, 2 dead with lock,
3 stopped), 4 unknown (an error), 150 not installed, 151 insufficient privilege.
"""

from __future__ import annotations

import os
from pathlib import Path

from hakeeper.agents.base import MetaData, OcfRc, OpRequest
from hakeeper.agents.command import Answer, CommandAgent, check_service_spec
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.runner import Completed
from hakeeper.errors import ConfigError

DEFAULT_INIT_DIR = Path("/etc/init.d")


def lsb_to_ocf(action: str, code: int) -> int:
    """Map an init script's exit code to OCF, per action (status has its own table)."""
    if action != "status":
        return code if 0 <= code <= OcfRc.NOT_RUNNING else OcfRc.ERR_GENERIC
    if code == 0:
        return OcfRc.SUCCESS
    if code in (1, 2, 3):
        return OcfRc.NOT_RUNNING
    if code == 150:
        return OcfRc.ERR_INSTALLED
    if code == 151:
        return OcfRc.ERR_PERM
    return OcfRc.ERR_GENERIC  # 4 = "unknown", and anything else


class LsbAgent(CommandAgent):
    """One init-script service on this node."""

    monitor_action = "status"
    no_roles = "init scripts have no roles"

    def __init__(self, instance: str, script: Path) -> None:
        self.instance = instance
        self.script = script

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> LsbAgent:
        check_service_spec("lsb", "script", target, context, "configure the service itself")
        script = (context.init_dir or DEFAULT_INIT_DIR) / target
        if not script.is_file():
            raise ConfigError(
                f"init script {script} not found; install the service's package or check "
                f"the name in lsb:{target}"
            )
        if not os.access(script, os.X_OK):
            raise ConfigError(f"init script {script} is not executable; fix: chmod +x {script}")
        return cls(context.instance, script)

    def meta_data(self) -> MetaData:
        return MetaData(name=self.script.name, shortdesc=f"LSB init script {self.script}")

    def argv(self, action: str) -> list[str]:
        return [str(self.script), action]

    def answer(self, action: str, op: str, done: Completed, req: OpRequest) -> Answer:
        failed = done.rc != 0 and not done.timed_out
        reason = f"{self.script} {action} exited {done.rc}" if failed else ""
        return Answer(lsb_to_ocf(action, done.rc), reason)
