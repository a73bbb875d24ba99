"""Load-balancing policies: pure classes that choose one of the servers they are given.

A policy sees only the eligible servers (up, not drained, primaries or else backups — the
`Backend` decides that) and a per-client key (a hash of the source address). It keeps its own
rotation state and never does I/O, so each is unit-tested by counting picks.

- `RoundRobin`: each server in turn, weights ignored (the cheapest; the benchmark's policy).
- `SmoothWeighted`: nginx's smooth weighted round-robin: weights 3:1 give a a b a, a a b a, …
- `LeastConnections`: fewest active requests per unit of weight, ties in rotation.
- `SourceHash`: the same client to the same server while the set of servers stays the same.
- `ConsistentHash`: a ring with bounded load (Mirrokni et al.): a failing server moves only
  its own clients, and no server takes more than ``factor`` × the mean load.
"""

from __future__ import annotations

import bisect
import math
import zlib
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def eff_weight(self) -> int: ...
    @property
    def active(self) -> int: ...


S = TypeVar("S", bound=Candidate)


def key_of(text: str) -> int:
    """A stable, well-mixed 32-bit hash (the same in every worker process, unlike ``hash``).

    crc32 of similar strings clusters; murmur3's finaliser spreads it over the ring.
    """
    h = zlib.crc32(text.encode())
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


class Policy(Protocol):
    def pick(self, candidates: Sequence[S], key: int) -> S | None: ...


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[S], key: int) -> S | None:
        n = len(candidates)
        if n == 0:
            return None
        i = self._next % n
        self._next = i + 1
        return candidates[i]


class SmoothWeighted:
    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, candidates: Sequence[S], key: int) -> S | None:
        current = self._current
        total = 0
        best: S | None = None
        best_value = 0
        for server in candidates:
            weight = server.eff_weight
            value = current.get(server.name, 0) + weight
            current[server.name] = value
            total += weight
            if best is None or value > best_value:
                best, best_value = server, value
        if best is not None:
            current[best.name] = best_value - total
        return best


class LeastConnections:
    def __init__(self) -> None:
        self._rotation = 0

    def pick(self, candidates: Sequence[S], key: int) -> S | None:
        n = len(candidates)
        if n == 0:
            return None
        self._rotation = (self._rotation + 1) % n
        best: S | None = None
        best_load = math.inf
        for i in range(n):
            server = candidates[(self._rotation + i) % n]
            load = server.active / max(server.eff_weight, 1)
            if load < best_load:
                best, best_load = server, load
        return best


class SourceHash:
    def pick(self, candidates: Sequence[S], key: int) -> S | None:
        if not candidates:
            return None
        return candidates[key % len(candidates)]


class ConsistentHash:
    """Hash ring, 100 points per unit of weight, with a load bound of ``factor`` × mean."""

    POINTS = 100

    def __init__(self, factor: float = 1.25) -> None:
        self.factor = factor
        self._ring_for: tuple[tuple[str, int], ...] = ()
        self._hashes: list[int] = []
        self._owners: list[str] = []

    def _ring(self, candidates: Sequence[Candidate]) -> None:
        identity = tuple((s.name, max(s.eff_weight, 1)) for s in candidates)
        if identity == self._ring_for:
            return
        points = sorted(
            (key_of(f"{name}#{i}"), name)
            for name, weight in identity
            for i in range(self.POINTS * weight)
        )
        self._hashes = [h for h, _ in points]
        self._owners = [name for _, name in points]
        self._ring_for = identity

    def pick(self, candidates: Sequence[S], key: int) -> S | None:
        if not candidates:
            return None
        self._ring(candidates)
        by_name = {s.name: s for s in candidates}
        total = sum(s.active for s in candidates) + 1
        bound = math.ceil(self.factor * total / len(candidates))
        start = bisect.bisect(self._hashes, key & 0xFFFFFFFF)
        n = len(self._hashes)
        seen: set[str] = set()
        for step in range(n):
            name = self._owners[(start + step) % n]
            if name in seen:
                continue
            seen.add(name)
            server = by_name[name]
            if server.active < bound:
                return server
            if len(seen) == len(by_name):
                break
        return by_name[self._owners[start % n]]


def make_policy(name: str, hash_balance_factor: float = 1.25) -> Policy:
    if name == "roundrobin":
        return RoundRobin()
    if name == "swrr":
        return SmoothWeighted()
    if name == "leastconn":
        return LeastConnections()
    if name == "source":
        return SourceHash()
    if name == "consistent":
        return ConsistentHash(hash_balance_factor)
    raise ValueError(f"unknown policy {name!r}")
