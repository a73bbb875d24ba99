"""Topology files: nested groups evaluate to the closed forms; mistakes name file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hakeeper.availability import calc, topology
from hakeeper.errors import ConfigError
from hakeeper.model.durations import HOUR

EXAMPLE = Path(__file__).parents[2] / "examples" / "availability" / "topology.toml"


def evaluate(data: dict[str, Any]) -> topology.Evaluated:
    return topology.evaluate(topology.parse(data, "t.toml"), "t.toml")


def test_nested_series_of_parallel_pairs_matches_hand_computation() -> None:
    data = {
        "top": "svc",
        "component": {"a": {"availability": "99%"}, "b": {"availability": "90%"}},
        "group": {
            "pair": {"kind": "parallel", "member": "a", "count": 2},
            "svc": {"kind": "series", "members": ["pair", "b"]},
        },
    }
    # (1 − 0.01²) × 0.9
    assert evaluate(data).figures.availability == pytest.approx(0.9999 * 0.9)


def test_k_of_n_group_uses_k() -> None:
    data = {
        "top": "g",
        "component": {"n": {"availability": 0.9}},
        "group": {"g": {"kind": "k-of-n", "k": 2, "member": "n", "count": 3}},
    }
    assert evaluate(data).figures.availability == pytest.approx(0.972)


def test_failover_is_read_as_a_duration_and_charged() -> None:
    data = {
        "top": "g",
        "component": {"n": {"mtbf": "1000h", "mttr": "10h"}},
        "group": {"g": {"kind": "parallel", "member": "n", "count": 2, "failover": "1h"}},
    }
    node = calc.component(1000 * HOUR, 10 * HOUR)
    expected = calc.parallel_of([node, node], failover=HOUR)
    assert evaluate(data).figures.availability == pytest.approx(expected.availability)


def test_example_file_loads_and_is_below_its_weakest_series_member() -> None:
    result = topology.evaluate(topology.load(EXAMPLE))
    assert result.name == "shop"
    assert result.figures.availability < min(m.figures.availability for m in result.members)


def test_unknown_member_names_the_key_path() -> None:
    data = {
        "top": "g",
        "component": {"n": {"availability": 0.9}},
        "group": {"g": {"kind": "series", "members": ["n", "m"]}},
    }
    with pytest.raises(ConfigError, match=r"t\.toml: group\.g\.members\[1\]: no component .*'m'"):
        evaluate(data)


def test_cycle_is_refused_showing_it() -> None:
    data = {
        "top": "a",
        "group": {
            "a": {"kind": "series", "members": ["b"]},
            "b": {"kind": "series", "members": ["a"]},
        },
    }
    with pytest.raises(ConfigError, match="a → b → a"):
        evaluate(data)


def test_bad_duration_names_the_key_path() -> None:
    data = {"top": "n", "component": {"n": {"mtbf": "2000 hours", "mttr": "1h"}}}
    with pytest.raises(ConfigError, match=r"t\.toml: component\.n\.mtbf: unknown unit 'hours'"):
        topology.parse(data, "t.toml")


def test_misspelt_key_is_refused() -> None:
    data = {"top": "n", "component": {"n": {"mtbf": "1h", "mtr": "1h"}}}
    with pytest.raises(ConfigError, match=r"component\.n\.mtr: unknown key"):
        topology.parse(data, "t.toml")


def test_k_of_n_without_k_says_what_to_add() -> None:
    data = {
        "top": "g",
        "component": {"n": {"availability": 0.9}},
        "group": {"g": {"kind": "k-of-n", "member": "n", "count": 3}},
    }
    with pytest.raises(ConfigError, match="needs k ="):
        evaluate(data)


def test_component_needs_mtbf_and_mttr_or_availability() -> None:
    data = {"top": "n", "component": {"n": {"mtbf": "1h"}}}
    with pytest.raises(ConfigError, match="needs mtbf and mttr"):
        evaluate(data)


def test_top_must_name_something_defined() -> None:
    with pytest.raises(ConfigError, match="top = 'x' names no component"):
        topology.parse({"top": "x", "component": {"n": {"availability": 0.9}}}, "t.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("top = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        topology.load(bad)
