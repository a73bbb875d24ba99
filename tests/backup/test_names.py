from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from hakeeper.backup.errors import BadObjectName
from hakeeper.backup.names import (
    MAX_NAME_LENGTH,
    check_backup_id,
    check_object_name,
    new_backup_id,
)


@pytest.mark.parametrize("name", ["config", "sessions/web", "runtime/flags.json", "a-b_c+d=e@f:g"])
def test_a_relative_name_of_plain_characters_is_accepted(name: str) -> None:
    assert check_object_name(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("sessions/../../etc", "'..' segment"),
        ("..", "'..' segment"),
        ("./config", "'.' segment"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("con\x00fig", "control character"),
        ("line\nbreak", "control character"),
        ("esc\x1b[31m", "control character"),
        ("del\x7f", "control character"),
        ("back\\slash", "letters, digits"),
        ("sp ace", "letters, digits"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("/".join(["a"] * 17), "segments"),
    ],
)
def test_a_name_outside_the_bounds_is_refused_with_the_reason(name: str, says: str) -> None:
    with pytest.raises(BadObjectName, match=re.escape(says)):
        check_object_name(name)


def test_a_backup_id_is_the_creation_time_and_a_random_token() -> None:
    backup_id = new_backup_id(datetime(2026, 12, 6, 10, 25, 0, tzinfo=UTC))
    assert backup_id.startswith("20261206T102500Z-")
    assert check_backup_id(backup_id) == backup_id


def test_backup_ids_sort_by_creation_time() -> None:
    start = datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC)
    ids = [new_backup_id(start + timedelta(seconds=s)) for s in (0, 1, 3600)]
    assert sorted(ids) == ids


@pytest.mark.parametrize("text", ["", "latest", "../20261206T102500Z-3f9a1c2b", "20261206T102500Z"])
def test_anything_but_a_backup_id_is_refused_as_one(text: str) -> None:
    with pytest.raises(BadObjectName, match="not a backup id"):
        check_backup_id(text)
