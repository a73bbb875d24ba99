"""Writes events.jsonl: 30 days of a three-node cluster with known outages.

Run from the repository root: ``python examples/availability/make_events.py``. The answers
the report must give are in the docstring of each incident below and in
tests/availability/test_measure.py (service "shop": 340 s down in 30 days).
"""

from __future__ import annotations

from pathlib import Path

from hakeeper.model.events import (
    ControllerElected,
    Event,
    FailoverFinished,
    FailoverStarted,
    NodeFenced,
    NodeJoined,
    NodeLost,
    QuorumLost,
    QuorumRegained,
    ResourceFailed,
    ResourceStarted,
    ResourceStopped,
    to_json,
)

T0 = 1717200000.0  # 2024-06-01T00:00:00Z
DAY = 86400.0
HOUR = 3600.0


def events() -> list[Event]:
    out: list[Event] = [ControllerElected(T0, "n1", 1)]
    for node in ("n1", "n2", "n3"):
        out.append(NodeJoined(T0, node))
    out += [
        ResourceStarted(T0 + 2, "vip", "n1"),
        ResourceStarted(T0 + 2, "db", "n1", "primary"),
        ResourceStarted(T0 + 2, "db", "n2", "replica"),
        ResourceStarted(T0 + 2, "db", "n3", "replica"),
    ]
    out += [ResourceStarted(T0 + 2, "web", node) for node in ("n1", "n2", "n3")]

    # Day 3: web dies on n3 and is restarted 45 s later. Two of three still run: no outage.
    t = T0 + 3 * DAY + 10 * HOUR
    out += [ResourceFailed(t, "web", "n3", reason="monitor timeout"), ResourceStarted(t + 45, "web", "n3")]

    # Day 8: n1 (VIP, db primary, controller) loses its lease. Fenced in 6.2 s; the VIP is
    # back on n2 9.5 s after the failure, the db primary (promotion) after 14 s.
    # Service down 14 s; n1 back after 2 h 40 min.
    t = T0 + 8 * DAY + 14 * HOUR
    out += [
        NodeLost(t, "n1"),
        FailoverStarted(t + 0.1, "vip", "n1", "node lost"),
        FailoverStarted(t + 0.1, "db", "n1", "node lost"),
        ControllerElected(t + 3.1, "n2", 2),
        NodeFenced(t + 6.2, "n1", "ipmi", 6.1),
        ResourceStarted(t + 9.5, "vip", "n2"),
        FailoverFinished(t + 9.5, "vip", "n1", "n2", 9.5),
        ResourceStopped(t + 14, "db", "n2", "replica", "promote"),
        ResourceStarted(t + 14, "db", "n2", "primary"),
        FailoverFinished(t + 14, "db", "n1", "n2", 14.0),
        NodeJoined(t + 2 * HOUR + 40 * 60, "n1"),
        ResourceStarted(t + 2 * HOUR + 40 * 60 + 5, "web", "n1"),
        ResourceStarted(t + 2 * HOUR + 40 * 60 + 5, "db", "n1", "replica"),
    ]

    # Day 15: web fails on n2, then on n3 20 s later: one instance left, web (needs 2) down
    # until n2's restart 95 s after the first failure: 75 s down.
    t = T0 + 15 * DAY + 3 * HOUR
    out += [
        ResourceFailed(t, "web", "n2", reason="exit 1"),
        ResourceFailed(t + 20, "web", "n3", reason="exit 1"),
        ResourceStarted(t + 95, "web", "n2"),
        ResourceStarted(t + 130, "web", "n3"),
    ]

    # Day 21: n3 and then n2 (VIP, db primary) are cut off: n1 alone has no quorum and can
    # take nothing over. n2 returns after 4 min; quorum is back and the controller restarts
    # everything. Service down from t+2 to t+250: 248 s.
    t = T0 + 21 * DAY + 9 * HOUR
    out += [
        NodeLost(t, "n3"),
        NodeLost(t + 2, "n2"),
        QuorumLost(t + 2, 1, 3),
        FailoverStarted(t + 2, "vip", "n2", "node lost"),
        FailoverStarted(t + 2, "db", "n2", "node lost"),
        NodeJoined(t + 240, "n2"),
        QuorumRegained(t + 240, 2, 3),
        ControllerElected(t + 241, "n1", 3),
        ResourceStarted(t + 246, "web", "n2"),
        ResourceStarted(t + 247, "vip", "n1"),
        FailoverFinished(t + 247, "vip", "n2", "n1", 245.0),
        ResourceStopped(t + 250, "db", "n1", "replica", "promote"),
        ResourceStarted(t + 250, "db", "n1", "primary"),
        FailoverFinished(t + 250, "db", "n2", "n1", 248.0),
        ResourceStarted(t + 252, "db", "n2", "replica"),
        NodeJoined(t + 1800, "n3"),
        ResourceStarted(t + 1805, "web", "n3"),
        ResourceStarted(t + 1805, "db", "n3", "replica"),
    ]

    # Day 27: the operator moves the VIP to n3: a planned 3 s gap, which still counts.
    t = T0 + 27 * DAY + 11 * HOUR
    out += [ResourceStopped(t, "vip", "n1", reason="move"), ResourceStarted(t + 3, "vip", "n3")]
    return out


if __name__ == "__main__":
    target = Path(__file__).with_name("events.jsonl")
    target.write_text("".join(to_json(event) + "\n" for event in events()), encoding="utf-8")
    print(f"wrote {target}")
