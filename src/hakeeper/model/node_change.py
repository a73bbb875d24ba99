"""A membership change of the cluster in progress: which node joins or leaves, and how far.

`hakeeper node add|remove|replace` writes one `NodeChange` before its first step and
rewrites it as each step starts, so that a change interrupted by a crash (of the CLI, of
the controller, of the joining node) is finished by running the command again: every step
is idempotent and the record says where to pick up. The cluster makes one change at a time:
the record exists only while a change is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

NodeChangeKind = Literal["add", "remove", "replace"]

NodeChangeStep = Literal[
    "check_fenced",  # a node that is down must be certainly off before it is retired
    "drain",  # its resources move away first (as with standby)
    "remove_voter",  # it leaves the Raft group (its address is retired for good)
    "wait_gone",  # its daemon noticed and stopped (its member lease is gone)
    "unconfigure",  # the cluster file loses it; its run-time records are forgotten
    "configure",  # the cluster file gains the new node
    "add_voter",  # the new node's daemon joined as a learner, caught up and votes
    "wait_online",  # the new node has probed and holds its member lease
]

NODE_CHANGE_KINDS: tuple[NodeChangeKind, ...] = get_args(NodeChangeKind)

#: The steps of each kind, in order. A replace retires the old node before the new one
#: counts, so the smaller group keeps its majority throughout (3 → 2 → 3, never 4 with one
#: dead voter).
STEPS: dict[NodeChangeKind, tuple[NodeChangeStep, ...]] = {
    "add": ("configure", "add_voter", "wait_online"),
    "remove": ("check_fenced", "drain", "remove_voter", "wait_gone", "unconfigure"),
    "replace": (
        "check_fenced",
        "drain",
        "remove_voter",
        "unconfigure",
        "configure",
        "add_voter",
        "wait_online",
    ),
}


@dataclass(frozen=True, slots=True)
class NodeChange:
    """One change: ``node`` joins (add, replace) or leaves (remove) at ``address`` (its Raft
    ``host:port``; empty on etcd, where nodes are clients); a replace retires ``old`` at
    ``old_address``. ``step`` is the step in progress; ``started`` the wall-clock start."""

    kind: NodeChangeKind
    node: str
    address: str
    step: NodeChangeStep
    started: float
    old: str = ""
    old_address: str = ""

    @property
    def leaving(self) -> str:
        """The node that leaves the cluster ("" for an add)."""
        return self.node if self.kind == "remove" else self.old

    @property
    def leaving_address(self) -> str:
        return self.address if self.kind == "remove" else self.old_address

    @property
    def steps(self) -> tuple[NodeChangeStep, ...]:
        """The steps still to do, this one included."""
        steps = STEPS[self.kind]
        return steps[steps.index(self.step) :]

    def describe(self) -> str:
        if self.kind == "add":
            return f"add {self.node}"
        if self.kind == "remove":
            return f"remove {self.node}"
        return f"replace {self.old} by {self.node}"
