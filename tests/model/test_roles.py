"""One role vocabulary: every named subset is spelled with the words of `Role`."""

from __future__ import annotations

from typing import get_args

import pytest

from hakeeper.model import roles
from hakeeper.model.roles import (
    EVENT_ROLES,
    INSTANCE_ROLES,
    ROLE_SELECTORS,
    RUNNING_ROLES,
    TARGET_ROLES,
    EventRole,
    InstanceRole,
    LocalRole,
    PlacedRole,
    ReportedRole,
    Role,
    RoleSelector,
    TargetRole,
    event_role,
    selected_roles,
)


@pytest.mark.parametrize(
    "subset",
    [InstanceRole, PlacedRole, LocalRole, ReportedRole, TargetRole, RoleSelector],
    ids=str,
)
def test_every_subset_uses_only_the_words_of_role(subset: object) -> None:
    assert set(get_args(subset)) <= set(get_args(Role))


def test_the_tuples_list_exactly_their_literal() -> None:
    assert get_args(InstanceRole) == INSTANCE_ROLES
    assert get_args(TargetRole) == TARGET_ROLES
    assert get_args(EventRole) == EVENT_ROLES
    assert get_args(RoleSelector) == ROLE_SELECTORS
    assert set(get_args(PlacedRole)) == RUNNING_ROLES


def test_a_plain_instance_is_started_in_the_event_log_whatever_its_role() -> None:
    assert event_role("started", promotable=False) == "started"
    assert event_role("promoted", promotable=False) == "started"


def test_a_promotable_instance_is_the_primary_or_a_replica_in_the_event_log() -> None:
    assert event_role("promoted", promotable=True) == "primary"
    assert event_role("started", promotable=True) == "replica"


def test_a_selector_takes_the_primary_or_the_replicas_and_none_takes_every_running_one() -> None:
    assert selected_roles("promoted") == {"promoted"}
    assert selected_roles("unpromoted") == {"started"}
    assert selected_roles(None) == RUNNING_ROLES


def test_no_other_module_of_the_model_declares_a_role_literal() -> None:
    from pathlib import Path

    model = Path(roles.__file__).parent
    for path in model.glob("*.py"):
        if path.name == "roles.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert 'Literal["started"' not in text, path.name
