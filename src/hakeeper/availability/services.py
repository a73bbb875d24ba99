"""What counts as "up" for resources and services, from a small TOML file.

Until the cluster config carries this, ``hakeeper availability report --services FILE``
reads it from here::

    target = "99.95%"          # default SLA target of every service (optional)

    [resource.vip]
    exclusive = true           # up while its one instance runs (two at once is reported)

    [resource.web]
    required = 2               # a clone: up while at least 2 instances run

    [resource.db]
    exclusive = true
    role = "primary"           # only instances in this role count (started|primary|replica)

    [service.shop]
    resources = ["vip", "web", "db"]   # up while all of them are up
    target = "99.9%"                   # overrides the default target

A resource seen in the event log but not listed here counts as up while at least one of its
instances runs, in any role. Errors name the file, the key path and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hakeeper.config.loader import read_toml
from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import parse_availability


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """When a resource is up: at least `required` instances in `role` (any role if None)."""

    name: str
    exclusive: bool = False
    required: int = 1
    role: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """A service is up while every one of its resources is up."""

    name: str
    resources: tuple[str, ...]
    target: float | None = None


@dataclass(frozen=True, slots=True)
class Services:
    resources: Mapping[str, ResourceRule] = field(default_factory=dict)
    services: Mapping[str, ServiceRule] = field(default_factory=dict)
    target: float | None = None

    def rule(self, resource: str) -> ResourceRule:
        return self.resources.get(resource, ResourceRule(resource))


class _Resource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exclusive: bool = False
    required: int = Field(default=1, ge=1)
    role: Literal["started", "primary", "replica"] | None = None


def _fraction(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return parse_availability(value, "value")
    except ConfigError as exc:  # pydantic attaches the key path only to a ValueError
        raise ValueError(str(exc).removeprefix("value: ")) from exc


class _Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resources: list[str] = Field(min_length=1)
    target: float | None = Field(default=None, gt=0, le=1)

    _target = field_validator("target", mode="before")(_fraction)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: float | None = Field(default=None, gt=0, le=1)
    resource: dict[str, _Resource] = Field(default_factory=dict)
    service: dict[str, _Service] = Field(default_factory=dict)

    _target = field_validator("target", mode="before")(_fraction)


def load(path: Path) -> Services:
    return parse(read_toml(path), str(path))


def parse(data: Mapping[str, Any], source: str = "services") -> Services:
    try:
        spec = _File.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; check the spelling (see docs/availability.md)"
            problems.append(f"{source}: {path}: {message}")
        raise ConfigError("\n".join(problems)) from exc
    resources = {
        name: ResourceRule(name, r.exclusive, r.required, r.role)
        for name, r in spec.resource.items()
    }
    for name, rule in resources.items():
        if rule.exclusive and rule.required != 1:
            raise ConfigError(
                f"{source}: resource.{name}: an exclusive resource runs one instance; "
                "drop `required` or set exclusive = false"
            )
    services = {
        name: ServiceRule(name, tuple(s.resources), s.target) for name, s in spec.service.items()
    }
    return Services(resources, services, spec.target)
