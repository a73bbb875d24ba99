"""What the scheduler decided: a DAG of actions plus the readable reasons behind it.

An action prints as one line an operator can read and a scenario file can list::

    fence n2
    stop web on n1          start web#1 on n2        (the second instance of a clone on n2)
    demote db on n1         promote db on n3         monitor db on n3
    retract vip on n1       (the assignment still names n1: it must answer that it runs
                             nothing before vip starts elsewhere)
    prune vip on n2         (n2 is certainly down: its placement is written out)

``Transition.actions`` is in an order that respects every dependency (``edges`` holds pairs
of indices ``(before, after)``), so executing them one by one in list order is always safe;
actions with no path between them may run in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

ActionKind = Literal["fence", "prune", "demote", "stop", "retract", "start", "promote", "monitor"]
DecisionKind = Literal[
    "start",
    "move",
    "recover",
    "restart",
    "stop",
    "promote",
    "demote",
    "fence",
    "self-fenced",
    "blocked",
    "unmanaged",
    "frozen",
    "cannot-run",
    "no-quorum",
    "failcount-expired",
    "probe",
]

#: Execution phase of each kind; the order actions are listed in when nothing else decides.
PHASE: dict[ActionKind, int] = {
    "fence": 0,
    "prune": 1,
    "demote": 2,
    "stop": 3,
    "retract": 4,
    "start": 5,
    "promote": 6,
    "monitor": 7,
}


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    node: str
    resource: str | None = None
    instance: int = 0
    reason: str = field(default="", compare=False)
    #: A one-off monitor of an instance whose state is ``unknown`` (not a recurring one).
    probe: bool = False

    @property
    def key(self) -> str:
        """The action's line: unique within a transition."""
        if self.kind == "fence" or self.resource is None:
            return f"{self.kind} {self.node}"
        suffix = f"#{self.instance}" if self.instance else ""
        return f"{self.kind} {self.resource}{suffix} on {self.node}"

    @property
    def operation(self) -> str | None:
        """The resource-agent operation a node runs for it (a retraction is a stop); None for
        a fence (the controller runs it) and a prune (no node is there to run anything)."""
        if self.kind in ("fence", "prune"):
            return None
        return "stop" if self.kind == "retract" else self.kind

    def __str__(self) -> str:
        return self.key

    def sort_key(self) -> tuple[int, str, str, int]:
        return (PHASE[self.kind], self.resource or "", self.node, self.instance)


@dataclass(frozen=True, slots=True)
class Decision:
    """Why something happens, or does not (Patroni's cycle message, typed)."""

    kind: DecisionKind
    message: str
    resource: str | None = None
    node: str | None = None
    #: The ``hakeeper`` command (its words after ``hakeeper``) an operator runs to end what
    #: this decision reports; the CLI prints it naming the cluster file in use.
    fix: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class Transition:
    actions: tuple[Action, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def lines(self) -> list[str]:
        return [a.key for a in self.actions]

    def edge_lines(self) -> list[str]:
        return [f"{self.actions[a].key} -> {self.actions[b].key}" for a, b in self.edges]

    def index(self, line: str) -> int:
        for i, action in enumerate(self.actions):
            if action.key == line:
                return i
        raise KeyError(line)

    def after(self, i: int) -> list[int]:
        return [b for a, b in self.edges if a == i]

    def needs(self, i: int) -> list[int]:
        """Indices of the actions ``actions[i]`` directly depends on."""
        return [a for a, b in self.edges if b == i]

    def comes_before(self, first: str, then: str) -> bool:
        """True when a dependency path leads from action line ``first`` to ``then``."""
        start, goal = self.index(first), self.index(then)
        seen: set[int] = set()
        stack = [start]
        while stack:
            current = stack.pop()
            for nxt in self.after(current):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def blocked(self) -> list[Decision]:
        return [d for d in self.decisions if d.kind == "blocked"]

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [
                {
                    "id": i,
                    "action": a.key,
                    "kind": a.kind,
                    "resource": a.resource,
                    "node": a.node,
                    "instance": a.instance,
                    "probe": a.probe,
                    "needs": self.needs(i),
                    "reason": a.reason,
                }
                for i, a in enumerate(self.actions)
            ],
            "decisions": [
                {
                    "kind": d.kind,
                    "resource": d.resource,
                    "node": d.node,
                    "message": d.message,
                    "fix": list(d.fix),
                }
                for d in self.decisions
            ],
        }

    def to_dot(self, name: str = "transition") -> str:
        """Graphviz: one box per action, an arrow per dependency (``dot -Tsvg``)."""
        colours = {
            "fence": "red",
            "prune": "grey",
            "demote": "orange",
            "stop": "orange",
            "retract": "orange",
            "start": "darkgreen",
            "promote": "blue",
            "monitor": "grey",
        }
        out = [f'digraph "{name}" {{', "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for i, action in enumerate(self.actions):
            out.append(f'  a{i} [label="{action.key}", color={colours[action.kind]}];')
        for before, after in self.edges:
            out.append(f"  a{before} -> a{after};")
        for j, d in enumerate(self.blocked()):
            label = d.message.replace('"', "'")
            out.append(f'  b{j} [label="blocked: {label}", shape=note, color=red];')
        out.append("}")
        return "\n".join(out) + "\n"
