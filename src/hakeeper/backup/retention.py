"""Which backups to prune: a pure decision, the clock given by the caller.

A backup is pruned when it is beyond the newest ``keep_last``, or older than ``max_age``;
the newest complete backup is always kept, whatever the policy says. Backups in progress
are not complete and so never reach this function (see `hakeeper.backup.catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from hakeeper.errors import ConfigError


class Dated(Protocol):
    """What retention needs to know of a backup."""

    @property
    def backup_id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


_D = TypeVar("_D", bound=Dated)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep the newest ``keep_last`` backups and none older than ``max_age`` (either may be
    left out; with neither, nothing is pruned)."""

    keep_last: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.keep_last is not None and self.keep_last < 1:
            raise ConfigError(
                f"retention keep_last = {self.keep_last}: keep at least 1 backup "
                "(the newest is always kept)"
            )
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ConfigError(f"retention max_age = {self.max_age}: give a positive age")


def newest_first(backups: Sequence[_D]) -> list[_D]:
    return sorted(backups, key=lambda b: (b.created_at, b.backup_id), reverse=True)


def to_prune(backups: Sequence[Dated], policy: RetentionPolicy, now: datetime) -> tuple[str, ...]:
    """The ids of ``backups`` that ``policy`` prunes at ``now``, oldest last."""
    doomed: list[str] = []
    for index, backup in enumerate(newest_first(backups)):
        if index == 0:
            continue
        beyond_count = policy.keep_last is not None and index >= policy.keep_last
        too_old = policy.max_age is not None and now - backup.created_at > policy.max_age
        if beyond_count or too_old:
            doomed.append(backup.backup_id)
    return tuple(doomed)
