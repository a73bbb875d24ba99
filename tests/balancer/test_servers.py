"""Backend state rules on a virtual clock: eligibility, backup, drain, fall/rise, slow start."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hakeeper.balancer.config import BackendSpec
from hakeeper.balancer.servers import Backend


def backend(servers: list[dict[str, Any]], **extra: Any) -> Backend:
    return Backend(BackendSpec.model_validate({"name": "be", "servers": servers, **extra}))


def two_primaries_one_backup() -> Backend:
    return backend(
        [
            {"name": "a", "address": "127.0.0.1:1"},
            {"name": "b", "address": "127.0.0.1:2"},
            {"name": "spare", "address": "127.0.0.1:3", "backup": True},
        ]
    )


def picks(b: Backend, n: int) -> Counter[str]:
    return Counter(s.name for s in (b.pick() for _ in range(n)) if s is not None)


def test_backup_unused_while_a_primary_is_up() -> None:
    b = two_primaries_one_backup()
    b.set_up(b.servers["a"], False, 0.0, "test")
    assert picks(b, 10) == {"b": 10}


def test_backup_takes_over_only_when_every_primary_is_down() -> None:
    b = two_primaries_one_backup()
    b.set_up(b.servers["a"], False, 0.0, "test")
    b.set_up(b.servers["b"], False, 0.0, "test")
    assert picks(b, 4) == {"spare": 4}
    b.set_up(b.servers["b"], True, 1.0, "test")
    assert picks(b, 4) == {"b": 4}


def test_nothing_up_picks_none() -> None:
    b = backend([{"name": "a", "address": "127.0.0.1:1"}])
    b.set_up(b.servers["a"], False, 0.0, "test")
    assert b.pick() is None


def test_weight_zero_drains_new_clients_but_keeps_sticky_ones() -> None:
    b = two_primaries_one_backup()
    b.set_weight(b.servers["a"], 0, 0.0)
    assert picks(b, 6) == {"b": 6}
    assert b.sticky("a") is b.servers["a"]
    assert b.servers["a"].state == "drain"


def test_admin_drain_and_maint() -> None:
    b = two_primaries_one_backup()
    b.set_admin(b.servers["a"], "drain")
    assert picks(b, 4) == {"b": 4}
    assert b.sticky("a") is not None
    b.set_admin(b.servers["a"], "maint")
    assert b.sticky("a") is None
    b.set_admin(b.servers["a"], "ready")
    assert picks(b, 4) == {"a": 2, "b": 2}


def test_fall_failures_in_a_row_mark_down() -> None:
    b = backend([{"name": "a", "address": "127.0.0.1:1"}], check={"fall": 3, "rise": 2})
    a = b.servers["a"]
    b.record_check(a, False, 0.0, "x")
    b.record_check(a, False, 2.0, "x")
    b.record_check(a, True, 4.0, "ok")  # resets the run
    b.record_check(a, False, 6.0, "x")
    b.record_check(a, False, 8.0, "x")
    assert a.up
    b.record_check(a, False, 10.0, "x")
    assert not a.up
    assert a.check_failures == 5


def test_rise_successes_in_a_row_bring_it_back() -> None:
    b = backend([{"name": "a", "address": "127.0.0.1:1"}], check={"fall": 1, "rise": 2})
    a = b.servers["a"]
    b.record_check(a, False, 0.0, "x")
    assert not a.up
    b.record_check(a, True, 2.0, "ok")
    assert not a.up
    b.record_check(a, True, 4.0, "ok")
    assert a.up


def test_haproxy_check_defaults() -> None:
    b = backend([{"name": "a", "address": "127.0.0.1:1"}])
    check = b.spec.check
    assert (check.inter, check.fall, check.rise, check.timeout_s) == (2.0, 3, 2, 2.0)


def test_passive_connect_errors_mark_down_early() -> None:
    b = backend(
        [{"name": "a", "address": "127.0.0.1:1"}, {"name": "b", "address": "127.0.0.1:2"}],
        passive={"error_limit": 2},
    )
    a = b.servers["a"]
    b.observe_connect_error(a, 0.0)
    assert a.up
    b.observe_connect_error(a, 0.1)
    assert not a.up
    assert picks(b, 3) == {"b": 3}


def test_slow_start_ramps_the_weight_after_coming_back() -> None:
    b = backend(
        [{"name": "a", "address": "127.0.0.1:1", "weight": 10}], slowstart=10.0, check={"fall": 1}
    )
    a = b.servers["a"]
    b.set_up(a, False, 0.0, "test")
    b.set_up(a, True, 100.0, "test")
    assert a.eff_weight == 1
    b.tick(105.0)
    assert a.eff_weight == 5
    b.tick(111.0)
    assert a.eff_weight == 10


def test_reconfigure_keeps_state_of_servers_that_stay() -> None:
    b = two_primaries_one_backup()
    a = b.servers["a"]
    a.requests = 7
    spec = BackendSpec.model_validate(
        {
            "name": "be",
            "servers": [
                {"name": "a", "address": "127.0.0.1:1", "weight": 4},
                {"name": "c", "address": "127.0.0.1:4"},
            ],
        }
    )
    b.reconfigure(spec)
    assert b.servers["a"] is a
    assert a.requests == 7
    assert a.weight == 4
    assert set(b.servers) == {"a", "c"}
