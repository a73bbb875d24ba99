"""The configured cluster model: what a primitive's operations default to."""

from __future__ import annotations

from hakeeper.model.cluster import DEFAULT_OP_TIMEOUT, Op, Primitive


def test_an_op_without_a_configured_timeout_gets_the_default() -> None:
    web = Primitive("web", "process", ops=(Op("monitor", interval=5.0, timeout=3.0),))
    assert web.op_timeout("start") == DEFAULT_OP_TIMEOUT


def test_a_configured_op_timeout_is_used() -> None:
    web = Primitive("web", "process", ops=(Op("start", timeout=90.0),))
    assert web.op_timeout("start") == 90.0


def test_an_op_given_without_timeout_gets_the_default() -> None:
    assert Op("stop").timeout == DEFAULT_OP_TIMEOUT
