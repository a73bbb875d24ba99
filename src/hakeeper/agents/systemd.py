"""``systemd:<unit>``: a unit driven through ``systemctl`` (where systemd is PID 1).

``start``/``stop`` wait for the job (systemctl's default); ``monitor`` is ``is-active``:
``active``/``reloading`` → running, ``inactive``/``failed`` → not running, anything else
(``activating``, ``deactivating``) → error. A unit name without a suffix gets ``.service``,
as Pacemaker does.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from hakeeper.agents.base import (
    MetaData,
    OcfRc,
    OpRequest,
    OpResult,
    log_op,
    make_result,
    unimplemented,
)
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.runner import run_action
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


class SystemdAgent:
    """One systemd unit on this node."""

    def __init__(self, instance: str, unit: str, *, systemctl: str = "systemctl") -> None:
        self.instance = instance
        self.unit = unit
        self.systemctl = systemctl

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> SystemdAgent:
        instance, params = context.instance, context.params
        if not target or "/" in target:
            raise ConfigError(f"agent 'systemd:{target}': write systemd:<unit>, e.g. systemd:nginx")
        if params:
            raise ConfigError(
                f"resource {instance!r}: systemd agents take no parameters "
                f"(got {', '.join(sorted(params))}); use a drop-in for the unit instead"
            )
        if not systemd_running() or shutil.which("systemctl") is None:
            raise ConfigError(
                f"resource {instance!r} uses systemd:{target}, but systemd is not running on "
                "this machine (no /run/systemd/system); use a 'process' or 'lsb:' agent here"
            )
        return cls(instance, unit_name(target))

    def meta_data(self) -> MetaData:
        return MetaData(name=self.unit, shortdesc=f"systemd unit {self.unit}")

    async def _run(self, verb: str, op: str, req: OpRequest, interval: float) -> OpResult:
        started = time.monotonic()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        try:
            # "--": a unit name starting with "-" ("-.mount") is an operand, never an option.
            done = await run_action(
                [self.systemctl, verb, "--", self.unit], env=env, timeout=req.timeout
            )
        except OSError as exc:
            return log_op(
                make_result(
                    op,
                    OcfRc.ERR_INSTALLED,
                    started=started,
                    resource=self.instance,
                    interval=interval,
                    exit_reason=f"cannot run systemctl: {exc.strerror}",
                )
            )
        if verb == "is-active":
            rc = is_active_to_ocf(done.rc, done.stdout)
        else:
            rc = OcfRc.SUCCESS if done.rc == 0 else OcfRc.ERR_GENERIC
        reason = (
            ""
            if rc in (OcfRc.SUCCESS, OcfRc.NOT_RUNNING) or done.timed_out
            else (f"systemctl {verb} {self.unit} exited {done.rc}: {done.output_tail(2)}")
        )
        return log_op(
            make_result(
                op,
                rc,
                started=started,
                resource=self.instance,
                interval=interval,
                output_tail=done.output_tail(),
                timed_out=done.timed_out,
                exit_reason=reason,
            ),
            node=req.node,
            epoch=req.epoch,
        )

    async def start(self, req: OpRequest) -> OpResult:
        return await self._run("start", "start", req, 0.0)

    async def stop(self, req: OpRequest) -> OpResult:
        return await self._run("stop", "stop", req, 0.0)

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        if probe:
            return await self._run("is-active", "probe", req, 0.0)
        return await self._run("is-active", "monitor", req, req.interval)

    async def promote(self, req: OpRequest) -> OpResult:
        return unimplemented("promote", self.instance, "systemd units have no roles")

    async def demote(self, req: OpRequest) -> OpResult:
        return unimplemented("demote", self.instance, "systemd units have no roles")
