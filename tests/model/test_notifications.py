"""The notify_* lists of a clone notification, as Pacemaker sets them."""

from __future__ import annotations

from hakeeper.model.notifications import notify_variables


def test_pre_promote_lists_the_promoted_node_and_every_active_instance() -> None:
    found = notify_variables(
        resource="pgsqld",
        nodes=["n1", "n2", "n3"],
        members=["n2", "n3"],
        roles={"n2": "started", "n3": "started"},
        kind="pre",
        operation="promote",
        acting=["n3"],
    )
    assert found["notify_type"] == "pre"
    assert found["notify_operation"] == "promote"
    assert (found["notify_promote_resource"], found["notify_promote_uname"]) == ("pgsqld:2", "n3")
    assert found["notify_active_uname"] == "n2 n3"
    assert found["notify_slave_uname"] == found["notify_unpromoted_uname"] == "n2 n3"
    assert found["notify_master_uname"] == ""
    assert found["notify_start_uname"] == found["notify_stop_uname"] == ""
    assert found["notify_inactive_resource"] == "pgsqld:0"
    assert found["notify_available_uname"] == "n2 n3"
    assert found["notify_all_uname"] == "n1 n2 n3"


def test_post_demote_shows_the_demoted_node_among_the_unpromoted() -> None:
    found = notify_variables(
        resource="db",
        nodes=["a", "b"],
        members=["a", "b"],
        roles={"a": "started", "b": "promoted"},
        kind="post",
        operation="demote",
        acting=["a"],
    )
    assert found["notify_demote_uname"] == "a"
    assert found["notify_master_resource"] == "db:1"
    assert found["notify_slave_uname"] == "a"
