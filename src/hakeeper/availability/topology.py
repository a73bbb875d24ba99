"""A service's structure as a small TOML file, and its closed-form availability.

Components are leaves with ``mtbf`` and ``mttr`` (or a bare ``availability`` for things you
only know the SLA of, e.g. a provider's power feed). Groups combine components or other
groups by name, so any nesting is one table per level::

    top = "shop"                       # the component or group that is the service

    [component.node]
    mtbf = "2000h"
    mttr = "4h"

    [component.power]
    availability = "99.99%"

    [group.web]
    kind = "k-of-n"                    # series | parallel | k-of-n
    k = 2                              # k-of-n only: how many must be up
    member = "node"                    # `member` + `count` = that many identical copies,
    count = 3                          #   or `members = ["a", "b", ...]`
    failover = "5s"                    # parallel / k-of-n: switch-over time, counted as
                                       #   repair time (see hakeeper.availability.calc)

    [group.shop]
    kind = "series"
    members = ["power", "web"]

Errors name the file, the key path (``group.web.k``) and what to write instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hakeeper.availability import calc
from hakeeper.config.loader import read_toml
from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import parse_availability
from hakeeper.model.durations import parse_duration

GroupKind = Literal["series", "parallel", "k-of-n"]


def _read(parser: Callable[[str], float], value: Any) -> Any:
    """Parse a string with `parser`; pydantic only attaches the key path to a ValueError."""
    if not isinstance(value, str):
        return value
    try:
        return parser(value)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("value: ")) from exc


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mtbf: float | None = None
    mttr: float | None = None
    availability: float | None = None

    @field_validator("mtbf", "mttr", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _read(partial(parse_duration, what="value", unit_required=True), value)

    @field_validator("availability", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        return _read(partial(parse_availability, what="value"), value)

    def figures(self, where: str) -> calc.Figures:
        if self.availability is not None:
            if self.mtbf is not None or self.mttr is not None:
                raise ConfigError(f"{where}: give either availability or mtbf+mttr, not both")
            if not 0 <= self.availability <= 1:
                raise ConfigError(f"{where}.availability: must be between 0 and 100 %")
            return calc.Figures(self.availability)
        if self.mtbf is None or self.mttr is None:
            raise ConfigError(
                f'{where}: needs mtbf and mttr (e.g. mtbf = "2000h", mttr = "30m") '
                'or availability (e.g. availability = "99.99%")'
            )
        try:
            return calc.component(self.mtbf, self.mttr)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


class GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: GroupKind
    k: int | None = Field(default=None, ge=1)
    members: list[str] | None = None
    member: str | None = None
    count: int | None = Field(default=None, ge=1)
    failover: float = Field(default=0.0, ge=0)
    active: int | None = Field(default=None, ge=1)

    @field_validator("failover", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _read(partial(parse_duration, what="value", unit_required=True), value)

    def member_names(self, where: str) -> list[str]:
        if self.members is not None and (self.member is not None or self.count is not None):
            raise ConfigError(f"{where}: use either members = [...] or member + count, not both")
        if self.members is not None:
            if not self.members:
                raise ConfigError(f"{where}.members: empty; list at least one name")
            return list(self.members)
        if self.member is None or self.count is None:
            raise ConfigError(
                f'{where}: needs members = ["a", "b"] or member = "name" with count = N'
            )
        return [self.member] * self.count

    def required(self, n: int, where: str) -> int:
        """How many members must be up."""
        if self.kind == "series":
            if self.k is not None or self.failover:
                raise ConfigError(
                    f"{where}: a series group takes no k or failover; "
                    'use kind = "k-of-n" for redundancy'
                )
            return n
        if self.kind == "parallel":
            if self.k is not None:
                raise ConfigError(f'{where}.k: a parallel group needs one; use kind = "k-of-n"')
            return 1
        if self.k is None:
            raise ConfigError(f"{where}: kind k-of-n needs k = <how many must be up>")
        if self.k > n:
            raise ConfigError(f"{where}.k: k = {self.k} but the group has only {n} members")
        return self.k


class TopologySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top: str
    component: dict[str, ComponentSpec] = Field(default_factory=dict)
    group: dict[str, GroupSpec] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One node of the evaluated tree: its name, what it is, its figures, its members."""

    name: str
    kind: str  # "component", "series", "parallel", "k-of-n"
    figures: calc.Figures
    required: int = 1
    failover: float = 0.0
    members: tuple[Evaluated, ...] = ()


def load(path: Path) -> TopologySpec:
    """Read and validate a topology file."""
    return parse(read_toml(path), str(path))


def parse(data: Mapping[str, Any], source: str = "topology") -> TopologySpec:
    """Validate decoded TOML; errors carry `source` and the key path."""
    try:
        spec = TopologySpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from exc
    clash = sorted(set(spec.component) & set(spec.group))
    if clash:
        raise ConfigError(f"{source}: {', '.join(clash)} is both a component and a group; rename")
    if spec.top not in spec.component and spec.top not in spec.group:
        raise ConfigError(
            f"{source}: top = {spec.top!r} names no component or group; "
            f"defined: {', '.join([*spec.group, *spec.component]) or 'nothing'}"
        )
    return spec


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; check the spelling (see docs/availability.md)"
        lines.append(f"{source}: {path}: {message}")
    return "\n".join(lines)


def evaluate(spec: TopologySpec, source: str = "topology") -> Evaluated:
    """The closed-form figures of every component and group, from `spec.top` down."""
    return _evaluate(spec, spec.top, source, ())


def _evaluate(spec: TopologySpec, name: str, source: str, stack: tuple[str, ...]) -> Evaluated:
    if name in stack:
        cycle = " → ".join([*stack[stack.index(name) :], name])
        raise ConfigError(f"{source}: groups contain each other ({cycle}); break the cycle")
    if name in spec.component:
        where = f"{source}: component.{name}"
        return Evaluated(name, "component", spec.component[name].figures(where))
    group = spec.group[name]
    where = f"{source}: group.{name}"
    names = group.member_names(where)
    members = []
    for index, member in enumerate(names):
        if member not in spec.component and member not in spec.group:
            key = "member" if group.member is not None else f"members[{index}]"
            raise ConfigError(
                f"{where}.{key}: no component or group named {member!r}; "
                f"defined: {', '.join([*spec.group, *spec.component])}"
            )
        members.append(_evaluate(spec, member, source, (*stack, name)))
    k = group.required(len(members), where)
    try:
        figures = calc.group(k, [m.figures for m in members], group.failover, group.active)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return Evaluated(name, group.kind, figures, k, group.failover, tuple(members))
