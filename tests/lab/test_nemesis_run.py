"""The nemesis's judgement of when the session store is whole again after a fault."""

from __future__ import annotations

from hakeeper.lab.nemesis_run import store_not_whole


def test_a_store_is_whole_with_one_primary_and_every_replica_on_its_epoch() -> None:
    roles = {"n1": ("replica", 7), "n2": ("primary", 7), "n3": ("replica", 7)}
    assert store_not_whole(roles) == ""


def test_a_restarted_empty_replica_is_not_yet_a_copy() -> None:
    roles = {"n1": ("replica", 0), "n2": ("primary", 7), "n3": ("replica", 7)}
    assert "on n1" in store_not_whole(roles)


def test_replicas_without_a_primary_are_not_whole() -> None:
    # The keeper of the data refused to promote; the others restarted empty.
    roles = {"n1": ("replica", 0), "n2": ("replica", 6), "n3": ("replica", 0)}
    assert "0 primaries" in store_not_whole(roles)


def test_a_deposed_primary_still_answering_is_not_whole() -> None:
    roles = {"n1": ("primary", 6), "n2": ("primary", 7), "n3": ("replica", 7)}
    assert "2 primaries" in store_not_whole(roles)


def test_a_silent_store_is_named() -> None:
    roles = {"n1": None, "n2": ("primary", 7), "n3": ("replica", 7)}
    assert store_not_whole(roles) == "no store serving on n1"
