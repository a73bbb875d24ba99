"""The configured cluster model: what operations default to, the timing a spec carries."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hakeeper.errors import ConfigError
from hakeeper.model.cluster import DEFAULT_OP_TIMEOUT, ClusterOptions, ClusterSpec, Op, Primitive
from hakeeper.model.timing import PROFILES


def test_an_op_without_a_configured_timeout_gets_the_default() -> None:
    web = Primitive("web", "process", ops=(Op("monitor", interval=5.0, timeout=3.0),))
    assert web.op_timeout("start") == DEFAULT_OP_TIMEOUT


def test_a_configured_op_timeout_is_used() -> None:
    web = Primitive("web", "process", ops=(Op("start", timeout=90.0),))
    assert web.op_timeout("start") == 90.0


def test_an_op_given_without_timeout_gets_the_default() -> None:
    assert Op("stop").timeout == DEFAULT_OP_TIMEOUT


def test_a_spec_resolves_its_timing_profile_when_built() -> None:
    spec = ClusterSpec(options=ClusterOptions(profile="fast"))
    assert spec.timing == PROFILES["fast"]


def test_a_spec_built_again_with_another_profile_has_that_timing() -> None:
    spec = replace(ClusterSpec(), options=ClusterOptions(profile="wan"))
    assert spec.timing == PROFILES["wan"]


def test_a_spec_with_an_unknown_profile_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown timing profile 'lan': use one of fast"):
        ClusterSpec(options=ClusterOptions(profile="lan"))
