"""Fence devices as an operator configures them, and what fencing a node produced.

Pacemaker's vocabulary, so a `stonith` definition carries over: a device runs one fence
agent with fixed parameters; ``host_map`` (``pcmk_host_map``) turns a node name into the
agent's port or plug id; ``host_list`` (``pcmk_host_list``) limits which nodes it can fence;
``delay_base``/``delay_max`` (``pcmk_delay_base``/``pcmk_delay_max``) spread two nodes of a
two-node cluster so they never shoot each other at the same instant; ``levels`` order the
devices per node (topology): every device of a level must succeed, levels are tried in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from hakeeper.errors import ConfigError

FenceAction = Literal["off", "on", "reboot", "status", "monitor", "list", "metadata"]
HostArgument = Literal["auto", "port", "plug", "none"]


class PowerState(Enum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


REDACTED = "***"


def is_secret_param(name: str) -> bool:
    """fence-agents' names for a password: ``passwd``, ``password``, ``*_passwd``,
    ``*_password`` and their ``passwd*``/``password*`` kin (``snmp_priv_passwd``...). Their
    values never appear in logs, events or output."""
    key = name.lower().replace("-", "_")
    return key.startswith(("passwd", "password")) or key.endswith(("_passwd", "_password"))


def redact(text: str, params: Mapping[str, str]) -> str:
    """``text`` with the value of every secret parameter replaced by ``***``."""
    for key, value in params.items():
        if value and is_secret_param(key):
            text = text.replace(value, REDACTED)
    return text


@dataclass(frozen=True, slots=True)
class FenceDevice:
    name: str
    agent: str  # fence_* name on PATH/sbin, or an absolute path
    # Out of repr: it holds the device's password (prefer fence-agents' passwd_script).
    params: Mapping[str, str] = field(default_factory=dict, repr=False)
    host_map: Mapping[str, str] = field(default_factory=dict)
    host_list: tuple[str, ...] = ()
    host_argument: HostArgument = "auto"
    timeout: float = 60.0
    retries: int = 2
    delay_base: float = 0.0
    delay_max: float = 0.0
    prestart: bool = False  # an agent waits, started (hakeeper.fencing.prestart)

    def __post_init__(self) -> None:
        where = f"fencing device {self.name!r}"
        if "action" in self.params or "option" in self.params:
            raise ConfigError(f"{where}: params must not set 'action': hakeeper chooses it")
        if self.timeout <= 0:
            raise ConfigError(f"{where}: timeout must be positive (e.g. 60s)")
        if self.retries < 0:
            raise ConfigError(f"{where}: retries must be 0 or more")
        if self.delay_base < 0 or self.delay_max < 0:
            raise ConfigError(f"{where}: delays must be 0 or more seconds")

    def can_fence(self, node: str) -> bool:
        if self.host_list:
            return node in self.host_list
        return not self.host_map or node in self.host_map

    def target_of(self, node: str) -> str:
        """The id the agent knows this node by (its port or plug)."""
        return self.host_map.get(node, node)


def parse_host_map(text: str) -> dict[str, str]:
    """Pacemaker's ``pcmk_host_map`` syntax: ``n1:p1;n2:p2`` (also ``=`` and spaces)."""
    mapping: dict[str, str] = {}
    for item in text.replace(",", ";").replace(" ", ";").split(";"):
        if not item:
            continue
        node, sep, port = item.replace("=", ":").partition(":")
        if not sep or not node or not port:
            raise ConfigError(f"host map entry {item!r} is not node:port (e.g. n1:10;n2:11)")
        mapping[node] = port
    return mapping


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One run of one fence agent."""

    device: str
    action: FenceAction
    target: str
    ok: bool
    exit_code: int | None  # None when killed for running past its timeout
    duration: float
    output_tail: str
    refused: bool = False  # never sent: a parameter would not fit on one stdin line

    def describe(self) -> str:
        if self.refused:
            return f"{self.device}: {self.action} {self.target} refused ({self.output_tail})"
        code = "timed out" if self.exit_code is None else f"exit {self.exit_code}"
        verdict = "ok" if self.ok else "failed"
        return (
            f"{self.device}: {self.action} {self.target} {verdict} ({code}, "
            f"{self.duration * 1000:.0f} ms)"
        )


@dataclass(frozen=True, slots=True)
class FenceOutcome:
    """What fencing one node came to: every attempt, in order, and the verdict."""

    node: str
    action: FenceAction
    fenced: bool
    level: int | None
    attempts: tuple[AttemptResult, ...]
    reason: str

    def describe(self) -> str:
        return f"fence {self.action} {self.node}: {self.reason}"
