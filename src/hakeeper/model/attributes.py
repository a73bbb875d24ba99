"""Node attributes, as Pacemaker's attribute manager keeps them, and the promotion score.

A node attribute is ``name = value`` on one node, written by resource agents (through the
tools of `hakeeper.runtime.crm_tools`) or an operator:

- ``lifetime = "reboot"`` (Pacemaker's *transient* attributes, the CIB's status section): it
  counts only while its node is a member, and the node clears all of its own when its daemon
  starts (a reboot, or a restart of the daemon that is one to the agents);
- ``lifetime = "forever"`` (the CIB's nodes section): kept until deleted.

``private`` attributes (``attrd_updater --private``) are readable by the tools but never
shown (``status``) and never used by the scheduler, as Pacemaker keeps them out of the CIB.

The promotion score of a promotable clone's resource ``R`` on a node is the attribute
``master-R`` of that node (what ``crm_master`` and ``crm_attribute --promotion`` write); a
transient value wins over a permanent one of the same name, as in Pacemaker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hakeeper.errors import ConfigError
from hakeeper.model.scores import parse_score
from hakeeper.model.text import control_problem

Lifetime = Literal["reboot", "forever"]
LIFETIMES: tuple[Lifetime, ...] = ("reboot", "forever")

PROMOTION_PREFIX = "master-"
MAX_NAME = 200
MAX_VALUE = 1024
# A clone instance's suffix (``db:2``): the promotion score belongs to the resource.
_INSTANCE_SUFFIX = re.compile(r":[0-9]+$")


@dataclass(frozen=True, slots=True)
class NodeAttribute:
    node: str
    name: str
    value: str
    lifetime: Lifetime = "reboot"
    private: bool = False

    def __post_init__(self) -> None:
        attribute_name_problem("node", self.node)
        attribute_name_problem("attribute name", self.name)
        if len(self.value) > MAX_VALUE:
            raise ConfigError(f"attribute {self.name!r}: a value is at most {MAX_VALUE} characters")
        problem = control_problem(self.value)
        if problem:
            raise ConfigError(f"attribute {self.name!r}: the value {problem}")


def attribute_name_problem(what: str, name: str) -> None:
    """Refuse a node or attribute name that cannot be one key segment of one line."""
    if not name or len(name) > MAX_NAME or "/" in name or " " in name:
        raise ConfigError(f"{what} {name!r}: 1 to {MAX_NAME} characters, without '/' or spaces")
    problem = control_problem(name)
    if problem:
        raise ConfigError(f"{what} {name!r} {problem}")


def promotion_attribute(resource: str) -> str:
    """The attribute holding the promotion score of ``resource`` (an instance name too)."""
    return PROMOTION_PREFIX + _INSTANCE_SUFFIX.sub("", resource)


def visible(attributes: Iterable[NodeAttribute], online: Iterable[str]) -> list[NodeAttribute]:
    """The attributes in force: permanent ones, and transient ones of nodes that are members;
    a transient value hides a permanent one of the same node and name."""
    members = set(online)
    chosen: dict[tuple[str, str], NodeAttribute] = {}
    for attr in sorted(attributes, key=lambda a: a.lifetime != "forever"):
        if attr.lifetime == "reboot" and attr.node not in members:
            continue
        chosen[(attr.node, attr.name)] = attr
    return [chosen[k] for k in sorted(chosen)]


def promotion_scores(attributes: Iterable[NodeAttribute]) -> dict[str, dict[str, int]]:
    """Resource → node → score from the ``master-*`` attributes in force (unparsable skipped:
    Pacemaker treats a non-number as no score)."""
    scores: dict[str, dict[str, int]] = {}
    for attr in attributes:
        if attr.private or not attr.name.startswith(PROMOTION_PREFIX):
            continue
        try:
            score = parse_score(attr.value)
        except ConfigError:
            continue
        scores.setdefault(attr.name[len(PROMOTION_PREFIX) :], {})[attr.node] = score
    return scores


def public_by_node(attributes: Iterable[NodeAttribute]) -> Mapping[str, dict[str, str]]:
    """Node → name → value of the non-private attributes (what location rules may match)."""
    found: dict[str, dict[str, str]] = {}
    for attr in attributes:
        if not attr.private:
            found.setdefault(attr.node, {})[attr.name] = attr.value
    return found
