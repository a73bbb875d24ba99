"""``systemd:<unit>``: a unit driven through ``systemctl`` (where systemd is PID 1).

``start``/``stop`` wait for the job (systemctl's default); ``monitor`` is ``is-active``:
``active``/``reloading`` → running, ``inactive``/``failed`` → not running, anything else
(``activating``, ``deactivating``) → error. A unit name without a suffix gets ``.service``,
as Pacemaker does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hakeeper.agents.base import MetaData, OcfRc, OpRequest
from hakeeper.agents.command import Answer, CommandAgent, check_service_spec
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.runner import Completed
from hakeeper.errors import ConfigError

UNIT_SUFFIXES = (".service", ".socket", ".mount", ".timer", ".target", ".path", ".scope")


def systemd_running() -> bool:
    """sd_booted(): true when systemd is the init system here."""
    return Path("/run/systemd/system").is_dir()


def unit_name(target: str) -> str:
    return target if target.endswith(UNIT_SUFFIXES) else f"{target}.service"


def is_active_to_ocf(rc: int, state: str) -> int:
    state = state.strip()
    if rc == 0 and state in ("active", "reloading"):
        return OcfRc.SUCCESS
    if state in ("inactive", "failed", "unknown", ""):
        return OcfRc.NOT_RUNNING
    return OcfRc.ERR_GENERIC


class SystemdAgent(CommandAgent):
    """One systemd unit on this node."""

    monitor_action = "is-active"
    no_roles = "systemd units have no roles"

    def __init__(self, instance: str, unit: str, *, systemctl: str = "systemctl") -> None:
        self.instance = instance
        self.unit = unit
        self.systemctl = systemctl

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> SystemdAgent:
        check_service_spec("systemd", "unit", target, context, "use a drop-in for the unit instead")
        if not systemd_running() or shutil.which("systemctl") is None:
            raise ConfigError(
                f"resource {context.instance!r} uses systemd:{target}, but systemd is not running "
                "on this machine (no /run/systemd/system); use a 'process' or 'lsb:' agent here"
            )
        return cls(context.instance, unit_name(target))

    def meta_data(self) -> MetaData:
        return MetaData(name=self.unit, shortdesc=f"systemd unit {self.unit}")

    def argv(self, action: str) -> list[str]:
        # "--": a unit name starting with "-" ("-.mount") is an operand, never an option.
        return [self.systemctl, action, "--", self.unit]

    def answer(self, action: str, op: str, done: Completed, req: OpRequest) -> Answer:
        if action == "is-active":
            rc = is_active_to_ocf(done.rc, done.stdout)
        else:
            rc = OcfRc.SUCCESS if done.rc == 0 else OcfRc.ERR_GENERIC
        if rc in (OcfRc.SUCCESS, OcfRc.NOT_RUNNING) or done.timed_out:
            return Answer(rc)
        return Answer(rc, f"systemctl {action} {self.unit} exited {done.rc}: {done.output_tail(2)}")
