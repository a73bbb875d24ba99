from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from hakeeper.backup.retention import RetentionPolicy, to_prune
from hakeeper.errors import ConfigError
from tests.backup.conftest import T0

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Backup:
    backup_id: str
    created_at: datetime


def daily(count: int) -> list[Backup]:
    """One backup a day, the newest at T0, ``b0`` newest."""
    return [Backup(f"b{i}", T0 - i * DAY) for i in range(count)]


def test_keep_last_prunes_all_but_the_newest_n() -> None:
    assert to_prune(daily(5), RetentionPolicy(keep_last=2), T0) == ("b2", "b3", "b4")


def test_max_age_prunes_the_older_ones() -> None:
    policy = RetentionPolicy(max_age=timedelta(days=2, hours=1))
    assert to_prune(daily(5), policy, T0) == ("b3", "b4")


def test_either_rule_prunes() -> None:
    policy = RetentionPolicy(keep_last=4, max_age=timedelta(days=1, hours=1))
    assert to_prune(daily(5), policy, T0) == ("b2", "b3", "b4")


def test_the_newest_backup_is_kept_however_old() -> None:
    policy = RetentionPolicy(max_age=timedelta(hours=1))
    assert to_prune(daily(3), policy, T0 + 30 * DAY) == ("b1", "b2")


def test_order_of_the_input_does_not_matter() -> None:
    backups = daily(4)
    policy = RetentionPolicy(keep_last=2)
    assert to_prune(list(reversed(backups)), policy, T0) == to_prune(backups, policy, T0)


def test_no_rule_prunes_nothing() -> None:
    assert to_prune(daily(5), RetentionPolicy(), T0) == ()


def test_no_backups_prunes_nothing() -> None:
    assert to_prune([], RetentionPolicy(keep_last=1), T0) == ()


def test_the_clock_decides_age() -> None:
    policy = RetentionPolicy(max_age=timedelta(days=3))
    backups = daily(3)
    assert to_prune(backups, policy, T0) == ()
    assert to_prune(backups, policy, T0 + 2 * DAY) == ("b2",)


@pytest.mark.parametrize("keep_last", [0, -1])
def test_keeping_no_backup_is_refused(keep_last: int) -> None:
    with pytest.raises(ConfigError, match="keep at least 1"):
        RetentionPolicy(keep_last=keep_last)


def test_a_zero_age_is_refused() -> None:
    with pytest.raises(ConfigError, match="positive age"):
        RetentionPolicy(max_age=timedelta(0))
