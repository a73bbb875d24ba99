"""The shared part of agents that run one external program per action (OCF, LSB, systemd).

`CommandAgent.run` starts the program through `hakeeper.agents.runner.run_action` (own
process group, the op's deadline, bounded output), turns a program that cannot be started
into ERR_PERM (not executable) or ERR_INSTALLED (gone), and classifies and logs one
`OpResult`. A subclass keeps only what is its own: the argv of an action (operands after
``--`` wherever one could look like an option), the environment, and what the program's exit
code means (`Answer`).
"""

from __future__ import annotations

import abc
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import ClassVar

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
from hakeeper.agents.runner import Completed, run_action
from hakeeper.errors import ConfigError

# What a service manager's tools need when hakeeper's own environment has no PATH.
DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a finished action meant: its OCF rc and, when it failed, why (one line)."""

    rc: int
    reason: str = ""


def check_service_spec(
    scheme: str, noun: str, target: str, context: AgentContext, fix: str
) -> None:
    """Refuse ``<scheme>:<target>`` naming no service or a path, and any parameters: a
    service manager's service (an init script, a unit) is configured in its own files,
    which ``fix`` names."""
    if not target or "/" in target:
        raise ConfigError(
            f"agent '{scheme}:{target}': write {scheme}:<{noun}>, e.g. {scheme}:nginx"
        )
    if context.params:
        raise ConfigError(
            f"resource {context.instance!r}: {scheme} agents take no parameters "
            f"(got {', '.join(sorted(context.params))}); {fix}"
        )


class CommandAgent(abc.ABC):
    """One resource instance driven by running a program per action.

    ``monitor_action`` is the program's word for a health check (``status``, ``is-active``);
    a probe runs it with interval 0. ``no_roles``, when set, is why ``promote``/``demote``
    are unimplemented for this kind (init scripts and units have no roles).
    """

    instance: str
    monitor_action: ClassVar[str] = "monitor"
    no_roles: ClassVar[str] = ""

    @abc.abstractmethod
    def argv(self, action: str) -> list[str]:
        """The program and its operands for ``action``."""

    @abc.abstractmethod
    def answer(self, action: str, op: str, done: Completed, req: OpRequest) -> Answer:
        """What the program's exit (or timeout) in ``done`` means for ``op``."""

    @abc.abstractmethod
    def meta_data(self) -> MetaData: ...

    def environment(self, action: str, req: OpRequest) -> dict[str, str]:
        """A minimal environment, the same for every action: PATH, and the epoch the op
        serves (the fencing token)."""
        return {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HAKEEPER_EPOCH": str(req.epoch)}

    async def run(self, action: str, req: OpRequest, *, op: str | None = None) -> OpResult:
        """Run ``action`` and classify the answer as ``op`` (default: the action's name)."""
        op = op or action
        started = time.monotonic()
        argv = self.argv(action)
        try:
            done = await run_action(argv, env=self.environment(action, req), timeout=req.timeout)
        except OSError as exc:
            # The program vanished or lost its x bit since config load: this node cannot run it.
            rc = OcfRc.ERR_PERM if isinstance(exc, PermissionError) else OcfRc.ERR_INSTALLED
            answer = Answer(rc, f"cannot run {argv[0]}: {exc.strerror}")
            return self._logged(op, answer, started, req)
        return self._logged(op, self.answer(action, op, done, req), started, req, done)

    def _logged(
        self, op: str, answer: Answer, started: float, req: OpRequest, done: Completed | None = None
    ) -> OpResult:
        result = make_result(
            op,
            answer.rc,
            started=started,
            resource=self.instance,
            interval=req.interval,
            exit_reason=answer.reason,
            output_tail=done.output_tail() if done is not None else "",
            timed_out=done is not None and done.timed_out,
        )
        return log_op(result, node=req.node, epoch=req.epoch)

    async def start(self, req: OpRequest) -> OpResult:
        return await self.run("start", req)

    async def stop(self, req: OpRequest) -> OpResult:
        return await self.run("stop", req)

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        if probe:
            return await self.run(
                self.monitor_action, dataclasses.replace(req, interval=0.0), op="probe"
            )
        return await self.run(self.monitor_action, req, op="monitor")

    async def promote(self, req: OpRequest) -> OpResult:
        if self.no_roles:
            return unimplemented("promote", self.instance, self.no_roles)
        return await self.run("promote", req)

    async def demote(self, req: OpRequest) -> OpResult:
        if self.no_roles:
            return unimplemented("demote", self.instance, self.no_roles)
        return await self.run("demote", req)
