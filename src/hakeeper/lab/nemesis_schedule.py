"""The nemesis's plan: a seeded schedule of faults, pure (seed + duration + profile -> plan).

A plan is a list of `PlannedFault`s in time order. Each holds one or two parts (two parts:
a combination, injected together and undone together), a hold time (how long the fault
stays) and the gap after its undo (time left for the cluster to recover before the next
one). The same seed, duration and profile always give the same plan, so a failed run is
repeated exactly with its seed.

Coverage: kinds are dealt from a shuffled deck holding every kind once (and one
combination); a new deck is shuffled when it runs out. So every kind appears once before
any appears twice, and a run long enough for one deck injects every kind.

Which node a fault acts on is not planned where it depends on the cluster (the controller,
the Raft leader, the session primary): the run finds it when it injects. Node faults name
a node index (taken modulo the lab's node count).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hakeeper.errors import ConfigError
from hakeeper.lab.nemesis_history import FAULT_KINDS

#: Kinds whose target the run finds in the cluster when it injects.
FOUND_TARGET = frozenset({"partition-controller", "kill-controller", "kill-raft-leader",
                          "kill-session-primary"})  # fmt: skip
#: Faults that take one node out (of a majority's view); a combination holds at most one.
NODE_FAULTS = ("crash", "freeze", "isolate", "halves")
#: What may join a node fault in a combination: it leaves the node majority alone.
COMBINE_WITH = ("kill-session-primary",)
COMBINED = "combined"


@dataclass(frozen=True, slots=True)
class Timing:
    """Hold and recovery gap bounds (seconds) of one timing profile."""

    hold: tuple[float, float]
    gap: tuple[float, float]


#: A ``fast`` cluster fails over in about a second and a revived node rejoins in a few; the
#: gaps leave room for that on a loaded machine. ``default`` is ~5x slower.
TIMINGS = {
    "fast": Timing(hold=(2.0, 4.0), gap=(6.0, 9.0)),
    "default": Timing(hold=(8.0, 15.0), gap=(25.0, 35.0)),
}


@dataclass(frozen=True, slots=True)
class Part:
    kind: str  # a FaultKind
    node: int | None  # index of the node (None: found when injected)


@dataclass(frozen=True, slots=True)
class PlannedFault:
    at: float  # seconds after the run's start
    parts: tuple[Part, ...]  # two parts: a combination
    hold: float
    gap: float
    group: int  # 1, 2, ...: the history's group number of its parts

    @property
    def end(self) -> float:
        """When the next fault may start."""
        return self.at + self.hold + self.gap

    @property
    def label(self) -> str:
        return "+".join(p.kind for p in self.parts)


def plan(
    seed: int,
    duration: float,
    profile: str,
    *,
    kinds: tuple[str, ...] = FAULT_KINDS,
    nodes: int = 3,
) -> list[PlannedFault]:
    """Faults that fit in ``duration`` seconds (each with its hold and gap), from ``seed``.

    ``kinds`` are those the lab can make (a kind left out is never planned)."""
    if profile not in TIMINGS:
        raise ConfigError(f"nemesis profile {profile!r}: use one of {', '.join(TIMINGS)}")
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ConfigError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if duration <= 0 or nodes < 1:
        raise ConfigError("a nemesis plan needs a positive duration and at least one node")
    timing = TIMINGS[profile]
    rng = random.Random(seed)
    can_combine = [k for k in NODE_FAULTS if k in kinds] and [k for k in COMBINE_WITH if k in kinds]
    deck_cards = [*kinds, *([COMBINED] if can_combine else [])]
    out: list[PlannedFault] = []
    deck: list[str] = []
    now = 0.0
    while True:
        if not deck:
            deck = list(deck_cards)
            rng.shuffle(deck)
        card = deck.pop()
        hold = round(rng.uniform(*timing.hold), 3)
        gap = round(rng.uniform(*timing.gap), 3)
        if now + hold + gap > duration:
            return out
        parts = _parts(card, rng, kinds, nodes)
        out.append(PlannedFault(round(now, 3), parts, hold, gap, len(out) + 1))
        now += hold + gap


def _parts(card: str, rng: random.Random, kinds: tuple[str, ...], nodes: int) -> tuple[Part, ...]:
    if card != COMBINED:
        return (_part(card, rng, nodes),)
    first = rng.choice([k for k in NODE_FAULTS if k in kinds])
    second = rng.choice([k for k in COMBINE_WITH if k in kinds])
    return (_part(first, rng, nodes), _part(second, rng, nodes))


def _part(kind: str, rng: random.Random, nodes: int) -> Part:
    return Part(kind, None if kind in FOUND_TARGET else rng.randrange(nodes))


def kinds_in(planned: list[PlannedFault]) -> set[str]:
    return {p.kind for f in planned for p in f.parts}
