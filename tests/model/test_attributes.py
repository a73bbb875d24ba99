"""Node attributes: which are in force, and the promotion scores read off them."""

from __future__ import annotations

import pytest

from hakeeper.errors import ConfigError
from hakeeper.model.attributes import (
    NodeAttribute,
    promotion_attribute,
    promotion_scores,
    public_by_node,
    visible,
)


def test_the_promotion_attribute_drops_a_clone_instance_suffix() -> None:
    assert promotion_attribute("pgsqld") == "master-pgsqld"
    assert promotion_attribute("pgsqld:2") == "master-pgsqld"


def test_transient_attributes_of_a_node_that_is_not_a_member_are_not_in_force() -> None:
    attrs = [
        NodeAttribute("n1", "master-db", "5", "reboot"),
        NodeAttribute("n2", "master-db", "7", "reboot"),
        NodeAttribute("n2", "rack", "a", "forever"),
    ]
    shown = visible(attrs, online={"n1"})
    assert [(a.node, a.name) for a in shown] == [("n1", "master-db"), ("n2", "rack")]


def test_a_transient_value_hides_a_permanent_one_of_the_same_name() -> None:
    attrs = [
        NodeAttribute("n1", "master-db", "5", "reboot"),
        NodeAttribute("n1", "master-db", "100", "forever"),
    ]
    assert promotion_scores(visible(attrs, {"n1"})) == {"db": {"n1": 5}}


def test_private_and_unparsable_attributes_are_no_promotion_score() -> None:
    attrs = [
        NodeAttribute("n1", "master-db", "oops"),
        NodeAttribute("n2", "master-db", "3", private=True),
        NodeAttribute("n3", "master-db", "-INFINITY"),
    ]
    assert promotion_scores(attrs) == {"db": {"n3": -1_000_000}}
    assert public_by_node(attrs) == {"n1": {"master-db": "oops"}, "n3": {"master-db": "-INFINITY"}}


@pytest.mark.parametrize(
    ("name", "value"),
    [("a/b", "1"), ("a b", "1"), ("", "1"), ("x" * 201, "1"), ("ok", "1\n2"), ("ok", "v" * 1025)],
)
def test_names_and_values_that_cannot_be_one_key_or_line_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        NodeAttribute("n1", name, value)
