"""The cluster file: what it accepts, and that every refusal names the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hakeeper.config import load, parse, to_spec, warnings
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import DEFAULT_OP_TIMEOUT, MANUAL_FAILBACK_STICKINESS
from hakeeper.model.scores import INF
from hakeeper.runtime.fence_plan import device_of

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster" / "cluster.toml"


def minimal(**sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"nodes": {"n1": {}, "n2": {}, "n3": {}}}
    doc.update(sections)
    return doc


def error(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(doc, source="cluster.toml")
    return str(info.value)


def test_the_example_loads_into_the_model() -> None:
    spec = to_spec(load(EXAMPLE))
    assert [n.name for n in spec.nodes] == ["n1", "n2", "n3"]
    assert spec.options.failback == "manual"
    assert {c.id for c in spec.clones} == {"db", "web-clone"}


def test_a_bad_duration_names_file_key_and_fix() -> None:
    doc = minimal(resources={"web": {"agent": "process", "ops": {"monitor": {"interval": "5x"}}}})
    assert error(doc) == (
        'cluster.toml: resources.web.ops.monitor.interval: "5x" is not a duration (use 5s, 500ms)'
    )


def test_an_op_without_timeout_in_the_file_gets_the_model_default() -> None:
    doc = minimal(resources={"web": {"agent": "process", "ops": {"monitor": {"interval": "5s"}}}})
    web = to_spec(parse(doc)).primitive("web")
    assert web is not None
    assert web.op_timeout("monitor") == DEFAULT_OP_TIMEOUT


def test_the_loaded_spec_carries_the_timing_of_its_profile() -> None:
    spec = to_spec(parse(minimal(cluster={"profile": "wan"})))
    assert (spec.timing.name, spec.timing.member_ttl) == ("wan", 10.0)


def test_a_misspelt_key_suggests_the_right_one() -> None:
    doc = minimal(resources={"web": {"agent": "process", "stikiness": 10}})
    assert 'resources.web.stikiness: unknown key (did you mean "stickiness"?)' in error(doc)


def test_a_bad_choice_lists_the_allowed_values() -> None:
    doc = minimal(resources={"web": {"agent": "process", "on_fail": "reboot"}})
    assert 'resources.web.on_fail: "reboot" is not one of restart, stop, fence' in error(doc)


def test_a_bad_agent_lists_the_agent_forms() -> None:
    doc = minimal(resources={"web": {"agent": "docker"}})
    assert "ocf:<provider>:<type>" in error(doc)


def test_scores_accept_inf_words_and_integers() -> None:
    doc = minimal(
        resources={"web": {"agent": "process"}},
        constraints={
            "location": [
                {"resource": "web", "node": "n1", "score": "inf"},
                {"resource": "web", "node": "n2", "score": "-inf"},
                {"resource": "web", "node": "n3", "score": 25},
            ]
        },
    )
    spec = to_spec(parse(doc))
    assert [loc.score for loc in spec.locations] == [INF, -INF, 25]


def test_a_bad_score_says_what_a_score_is() -> None:
    doc = minimal(
        resources={"web": {"agent": "process"}},
        constraints={"location": [{"resource": "web", "node": "n1", "score": "lots"}]},
    )
    assert "constraints.location[0].score: 'lots' is not a score (use an integer" in error(doc)


def test_a_colocation_naming_a_missing_resource_is_refused() -> None:
    doc = minimal(
        resources={"web": {"agent": "process"}},
        constraints={"colocation": [{"resource": "web", "with": "ip"}]},
    )
    assert 'constraints.colocation[0].with: "ip" does not exist' in error(doc)


def test_a_resource_in_two_groups_is_refused() -> None:
    doc = minimal(
        resources={"a": {"agent": "process"}, "b": {"agent": "process"}},
        groups={"g1": {"members": ["a", "b"]}, "g2": {"members": ["b"]}},
    )
    assert 'groups.g2.members[0]: "b" is already a member of group g1' in error(doc)


def test_an_order_cycle_is_refused_with_the_cycle() -> None:
    doc = minimal(
        resources={x: {"agent": "process"} for x in "abc"},
        constraints={
            "order": [
                {"first": "a", "then": "b"},
                {"first": "b", "then": "c"},
                {"first": "c", "then": "a"},
            ]
        },
    )
    assert "constraints.order: order cycle a then b then c then a" in error(doc)


def test_a_colocation_cycle_is_refused() -> None:
    doc = minimal(
        resources={x: {"agent": "process"} for x in "ab"},
        constraints={
            "colocation": [{"resource": "a", "with": "b"}, {"resource": "b", "with": "a"}]
        },
    )
    assert "colocation cycle" in error(doc)


def test_constraining_a_group_member_points_at_the_group() -> None:
    doc = minimal(
        resources={"a": {"agent": "process"}, "b": {"agent": "process"}},
        groups={"g": {"members": ["a", "b"]}},
        constraints={"location": [{"resource": "a", "node": "n1", "score": 5}]},
    )
    assert '"a" is inside g; constrain g instead' in error(doc)


def test_a_location_on_an_unknown_node_is_refused() -> None:
    doc = minimal(
        resources={"a": {"agent": "process"}},
        constraints={"location": [{"resource": "a", "node": "n9", "score": 5}]},
    )
    assert 'constraints.location[0].node: "n9" is not a node' in error(doc)


def test_a_primary_role_needs_a_promotable_clone() -> None:
    doc = minimal(
        resources={"a": {"agent": "process"}},
        constraints={"location": [{"resource": "a", "node": "n1", "score": 5, "role": "primary"}]},
    )
    assert 'role "primary" needs a promotable clone' in error(doc)


def test_a_promotable_clone_of_a_group_is_refused() -> None:
    doc = minimal(
        resources={"a": {"agent": "process"}},
        groups={"g": {"members": ["a"]}},
        clones={"c": {"resource": "g", "promotable": True}},
    )
    assert "a promotable clone holds one resource" in error(doc)


def test_on_fail_demote_outside_a_promotable_clone_is_refused() -> None:
    doc = minimal(resources={"web": {"agent": "process", "on_fail": "demote"}})
    assert (
        'resources.web.on_fail: "demote" is only for the resource of a promotable clone'
        in error(doc)
    )


def test_on_fail_demote_in_a_promotable_clone_loads() -> None:
    doc = minimal(
        resources={"db": {"agent": "ocf:heartbeat:Stateful", "on_fail": "demote"}},
        clones={"c": {"resource": "db", "promotable": True}},
    )
    db = to_spec(parse(doc)).primitive("db")
    assert db is not None
    assert db.meta.on_fail == "demote"


def on_fail_and_timeout(doc: dict[str, Any], rid: str) -> tuple[str, float]:
    """The ``on_fail`` and ``failure_timeout`` resource ``rid`` ends up with."""
    prim = to_spec(parse(doc)).primitive(rid)
    assert prim is not None
    return prim.meta.on_fail, prim.meta.failure_timeout


def test_the_session_store_in_a_promotable_clone_defaults_to_demote_with_a_failure_timeout() -> (
    None
):
    doc = minimal(
        resources={"store": {"agent": "sessions", "params": {"port": 11311}}},
        clones={"s": {"resource": "store", "promotable": True}},
    )
    assert on_fail_and_timeout(doc, "store") == ("demote", 10.0)


def test_the_cluster_file_overrides_the_session_stores_defaults() -> None:
    doc = minimal(
        resources={"store": {"agent": "sessions", "on_fail": "restart", "failure_timeout": "1m"}},
        clones={"s": {"resource": "store", "promotable": True}},
    )
    assert on_fail_and_timeout(doc, "store") == ("restart", 60.0)


def test_other_resources_keep_restart_and_no_failure_timeout_by_default() -> None:
    doc = minimal(
        resources={"db": {"agent": "ocf:heartbeat:Stateful"}, "web": {"agent": "sessions"}},
        clones={"c": {"resource": "db", "promotable": True}},
    )
    for rid in ("db", "web"):  # a session store outside a promotable clone too
        assert on_fail_and_timeout(doc, rid) == ("restart", 0.0)


def test_etcd_needs_endpoints() -> None:
    doc = minimal(coordination={"backend": "etcd"})
    assert 'coordination: backend "etcd" needs endpoints' in error(doc)


def test_raft_peers_come_from_node_addresses() -> None:
    doc = minimal(coordination={"raft_port": 7500, "secret_file": "/srv/hk/secret"})
    doc["nodes"]["n1"] = {"address": "127.0.0.11", "raft_port": 7481}
    spec = to_spec(parse(doc))
    assert [(n.address, n.raft_port) for n in spec.nodes] == [
        ("127.0.0.11", 7481),
        ("n2", 7500),
        ("n3", 7500),
    ]
    assert spec.coordination.secret_file == "/srv/hk/secret"


def test_an_inline_secret_is_refused_with_the_secret_file_fix() -> None:
    doc = minimal(coordination={"secret": "s3cret-s3cret-s3cret"})
    assert "would be replicated with the config" in error(doc)
    assert "secret_file" in error(doc)


def test_a_relative_secret_file_is_refused() -> None:
    doc = minimal(coordination={"secret_file": "secret"})
    assert "give an absolute path" in error(doc)


def test_every_problem_is_reported_at_once() -> None:
    doc = minimal(
        resources={"a": {"agent": "process", "on_fail": "x", "priority": "high"}},
    )
    assert len(error(doc).splitlines()) == 2


def test_unknown_top_level_section_is_refused() -> None:
    assert "resourcse: unknown key" in error(minimal(resourcse={}))


def test_balancer_and_sessions_sections_are_reserved() -> None:
    parse(minimal(balancer={"listen": ":80"}, sessions={"port": 11211}))


def test_manual_failback_gives_a_high_default_stickiness() -> None:
    spec = to_spec(parse(minimal(cluster={"failback": "manual"})))
    assert spec.options.default_stickiness == MANUAL_FAILBACK_STICKINESS


def test_the_availability_target_is_read_as_the_cli_reads_one() -> None:
    spec = to_spec(parse(minimal(cluster={"availability_target": "99.95%"})))
    assert spec.options.availability_target == pytest.approx(0.9995)


@pytest.mark.parametrize("value", ["0%", "101%", "lots", True])
def test_an_availability_target_that_is_no_availability_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="availability"):
        parse(minimal(cluster={"availability_target": value}))


def test_the_event_log_bound_is_read_in_durations_and_defaults_to_400_days() -> None:
    assert to_spec(parse(minimal())).options.events_max_age == 400 * 86400.0
    spec = to_spec(parse(minimal(cluster={"events_max_age": "30d", "events_max_count": 5000})))
    assert (spec.options.events_max_age, spec.options.events_max_count) == (30 * 86400.0, 5000)


@pytest.mark.parametrize("bound", [{"events_max_age": "1m"}, {"events_max_count": 10}])
def test_an_event_log_bound_too_small_to_keep_a_failover_is_refused(bound: object) -> None:
    with pytest.raises(ConfigError, match="events_max"):
        parse(minimal(cluster=bound))


def test_fencing_without_devices_or_watchdog_warns() -> None:
    found = warnings(parse(minimal()))
    assert any("no [fencing.devices.*] and no watchdog" in w for w in found)


def test_two_nodes_without_quorum_ignore_warns() -> None:
    found = warnings(parse({"nodes": {"n1": {}, "n2": {}}}))
    assert any("two nodes" in w for w in found)


def test_unreadable_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("[nodes\n")
    with pytest.raises(ConfigError, match=r"cluster\.toml: not valid TOML"):
        load(path)


def with_suspicion(after: str, *, kind: str = "power", profile: str = "fast") -> dict[str, Any]:
    return minimal(
        cluster={"profile": profile},
        fencing={
            "suspect_after": after,
            "devices": {"pdu": {"agent": "fence_pdu", "kind": kind}},
        },
    )


def test_suspect_after_and_the_device_kind_reach_the_model() -> None:
    spec = to_spec(parse(with_suspicion("400ms")))
    assert spec.suspect_after == pytest.approx(0.4)
    assert spec.fence_devices[0].kind == "power"


def test_suspecting_after_one_late_renewal_is_refused() -> None:
    assert "1.5 × the renew interval" in error(with_suspicion("250ms"))


def test_suspecting_no_sooner_than_the_lease_expires_is_refused() -> None:
    assert "not below the member TTL" in error(with_suspicion("1s"))


def test_suspicion_without_a_power_fence_device_is_refused() -> None:
    assert "needs fencing = true and a power fence device" in error(
        with_suspicion("400ms", kind="fabric")
    )


def fence_device(**fields: Any) -> dict[str, Any]:
    return minimal(fencing={"devices": {"ipmi": {"agent": "fence_ipmilan", **fields}}})


def test_a_device_prestarts_its_agent_only_when_asked() -> None:
    assert not device_of(to_spec(parse(fence_device())).fence_devices[0]).prestart
    assert device_of(to_spec(parse(fence_device(prestart=True))).fence_devices[0]).prestart


def test_a_newline_in_a_fence_parameter_names_the_key() -> None:
    text = error(fence_device(params={"passwd": "p1\naction=on"}))
    assert "cluster.toml: fencing.devices.ipmi.params.passwd: contains a newline" in text


def test_a_carriage_return_in_a_host_map_value_names_the_node() -> None:
    text = error(fence_device(hosts={"n1": "10.0.1.11\r"}))
    assert "fencing.devices.ipmi.hosts.n1: contains a carriage return" in text


def test_a_nul_in_a_resource_parameter_names_the_list_item() -> None:
    doc = minimal(resources={"app": {"agent": "process", "params": {"command": ["a", "b\0"]}}})
    assert "resources.app.params.command[1]: contains a NUL byte" in error(doc)


@pytest.mark.parametrize("char", ["\t", "\x01", "\x1f", "\x7f"])
def test_every_control_character_in_a_resource_parameter_is_refused(char: str) -> None:
    doc = minimal(resources={"db": {"agent": "process", "params": {"command": f"x{char}y"}}})
    assert "resources.db.params.command: contains" in error(doc)


def test_a_control_character_in_a_parameter_name_is_refused_escaped() -> None:
    text = error(fence_device(params={"a\nb": "x"}))
    assert 'fencing.devices.ipmi.params."a\\nb": contains a newline' in text


def test_a_list_as_fence_parameter_is_refused() -> None:
    text = error(fence_device(params={"ipaddr": ["10.0.0.1"]}))
    assert "fencing.devices.ipmi.params.ipaddr: a fence agent takes one string" in text


def test_a_node_name_with_a_trailing_newline_is_refused() -> None:
    assert "nodes.n1\n" in error({"nodes": {"n1\n": {}, "n2": {}, "n3": {}}})


def test_a_resource_name_with_a_trailing_newline_is_refused() -> None:
    assert "resources.web\n" in error(minimal(resources={"web\n": {"agent": "process"}}))


def test_an_agent_with_a_trailing_newline_is_refused() -> None:
    doc = minimal(resources={"web": {"agent": "systemd:nginx\n"}})
    assert "is not an agent" in error(doc)


def test_a_unit_starting_with_a_dash_is_a_valid_agent() -> None:
    spec = to_spec(parse(minimal(resources={"root": {"agent": "systemd:-.mount"}})))
    assert spec.primitives[0].agent == "systemd:-.mount"
