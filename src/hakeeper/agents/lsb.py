"""``lsb:<script>``: an init script in ``/etc/init.d`` (``start``, ``stop``, ``status``).

Exit codes as Pacemaker maps them (``services__lsb2ocf``): for start/stop, LSB and OCF share
0–7; for ``status``, 0 is running, 1–3 not running (1 dead with pid file, 2 dead with lock,
3 stopped), 4 unknown (an error), 150 not installed, 151 insufficient privilege.
"""

from __future__ import annotations

import os
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


class LsbAgent:
    """One init-script service on this node."""

    def __init__(self, instance: str, script: Path) -> None:
        self.instance = instance
        self.script = script

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> LsbAgent:
        instance, params = context.instance, context.params
        if not target or "/" in target:
            raise ConfigError(f"agent 'lsb:{target}': write lsb:<script>, e.g. lsb:nginx")
        if params:
            raise ConfigError(
                f"resource {instance!r}: lsb agents take no parameters "
                f"(got {', '.join(sorted(params))}); configure the service itself"
            )
        script = (context.init_dir or DEFAULT_INIT_DIR) / target
        if not script.is_file():
            raise ConfigError(
                f"init script {script} not found; install the service's package or check "
                f"the name in lsb:{target}"
            )
        if not os.access(script, os.X_OK):
            raise ConfigError(f"init script {script} is not executable; fix: chmod +x {script}")
        return cls(instance, script)

    def meta_data(self) -> MetaData:
        return MetaData(name=self.script.name, shortdesc=f"LSB init script {self.script}")

    async def _run(self, action: str, op: str, req: OpRequest, interval: float) -> OpResult:
        started = time.monotonic()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HAKEEPER_EPOCH": str(req.epoch),
        }
        try:
            done = await run_action([str(self.script), action], env=env, timeout=req.timeout)
        except OSError as exc:
            return log_op(
                make_result(
                    op,
                    OcfRc.ERR_INSTALLED,
                    started=started,
                    resource=self.instance,
                    interval=interval,
                    exit_reason=f"cannot run {self.script}: {exc.strerror}",
                )
            )
        return log_op(
            make_result(
                op,
                lsb_to_ocf(action, done.rc),
                started=started,
                resource=self.instance,
                interval=interval,
                output_tail=done.output_tail(),
                timed_out=done.timed_out,
                exit_reason=(
                    f"{self.script} {action} exited {done.rc}"
                    if done.rc and not done.timed_out
                    else ""
                ),
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
            return await self._run("status", "probe", req, 0.0)
        return await self._run("status", "monitor", req, req.interval)

    async def promote(self, req: OpRequest) -> OpResult:
        return unimplemented("promote", self.instance, "init scripts have no roles")

    async def demote(self, req: OpRequest) -> OpResult:
        return unimplemented("demote", self.instance, "init scripts have no roles")
