"""Policies are pure: each test counts picks over plain stand-in servers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hakeeper.balancer.policies import (
    ConsistentHash,
    LeastConnections,
    RoundRobin,
    SmoothWeighted,
    SourceHash,
    key_of,
)


@dataclass
class S:
    name: str
    eff_weight: int = 1
    active: int = 0


def names(picks: list[S | None]) -> str:
    return "".join(p.name if p else "-" for p in picks)


def test_round_robin_takes_each_server_in_turn() -> None:
    servers = [S("a"), S("b"), S("c")]
    rr = RoundRobin()
    assert names([rr.pick(servers, 0) for _ in range(9)]) == "abcabcabc"


def test_round_robin_with_no_server_picks_none() -> None:
    assert RoundRobin().pick([], 0) is None


def test_smooth_weighted_three_to_one_is_exactly_interleaved() -> None:
    servers = [S("a", 3), S("b", 1)]
    swrr = SmoothWeighted()
    assert names([swrr.pick(servers, 0) for _ in range(12)]) == "aaba" * 3


def test_smooth_weighted_spreads_the_heavy_server_nginx_style() -> None:
    # nginx's documented example: weights 5, 1, 1 give a a b a c a a.
    servers = [S("a", 5), S("b", 1), S("c", 1)]
    swrr = SmoothWeighted()
    assert names([swrr.pick(servers, 0) for _ in range(7)]) == "aabacaa"


def test_smooth_weighted_distribution_is_exact_over_a_cycle() -> None:
    servers = [S("a", 5), S("b", 3), S("c", 2)]
    swrr = SmoothWeighted()
    counts = Counter(p.name for p in (swrr.pick(servers, 0) for _ in range(100)) if p)
    assert counts == {"a": 50, "b": 30, "c": 20}


def test_least_connections_picks_the_least_loaded_per_weight() -> None:
    servers = [S("a", 1, active=3), S("b", 1, active=1), S("c", 2, active=3)]
    assert LeastConnections().pick(servers, 0) is servers[1]
    servers[1].active = 5
    assert LeastConnections().pick(servers, 0) is servers[2]


def test_least_connections_rotates_among_equals() -> None:
    servers = [S("a"), S("b"), S("c")]
    lc = LeastConnections()
    assert Counter(names([lc.pick(servers, 0) for _ in range(30)])) == {"a": 10, "b": 10, "c": 10}


def test_source_hash_sends_a_client_to_the_same_server() -> None:
    servers = [S("a"), S("b"), S("c")]
    sh = SourceHash()
    key = key_of("10.0.0.7")
    assert len({sh.pick(servers, key).name for _ in range(20)}) == 1  # type: ignore[union-attr]


def test_consistent_hash_moves_only_the_failed_servers_clients() -> None:
    servers = [S("a"), S("b"), S("c"), S("d")]
    ch = ConsistentHash(factor=100.0)  # load bound out of the way
    keys = [key_of(f"10.0.{i // 256}.{i % 256}") for i in range(2000)]
    before = {k: ch.pick(servers, k).name for k in keys}  # type: ignore[union-attr]
    survivors = [s for s in servers if s.name != "c"]
    after = {k: ch.pick(survivors, k).name for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if before[k] != after[k]]
    assert moved, "c had clients"
    assert all(before[k] == "c" for k in moved)


def test_consistent_hash_spreads_keys_roughly_evenly() -> None:
    servers = [S("a"), S("b"), S("c")]
    ch = ConsistentHash(factor=100.0)
    counts = Counter(ch.pick(servers, key_of(str(i))).name for i in range(3000))  # type: ignore[union-attr]
    assert all(600 < n < 1400 for n in counts.values()), counts


def test_consistent_hash_bounded_load_overflows_a_busy_server() -> None:
    servers = [S("a"), S("b"), S("c")]
    ch = ConsistentHash(factor=1.25)
    key = key_of("hot-client")
    home = ch.pick(servers, key)
    assert home is not None
    home.active = 10  # total 11 → bound ceil(1.25 × 11 / 3) = 5
    other = ch.pick(servers, key)
    assert other is not None
    assert other is not home
