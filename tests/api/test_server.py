"""The API on a fake engine: who may read and act, what an action writes, the health
endpoints, the stream and the OpenAPI document (the contract on a real cluster is in
test_contract.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from hakeeper.api.routes import ROUTES
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import OperatorAction
from hakeeper.runtime.status_report import collect_status
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import Served, api_section, served
from tests.cli.conftest import CLUSTER_TOML, KEYS, NOW, online, runs
from tests.fakes import LocalCoordinator


async def test_a_read_token_reads_the_document_of_status_json(
    api: Served, store: ClusterStore, spec: ClusterSpec
) -> None:
    status, body = await api.call("GET", "/v1/status", token="reader")
    assert status == 200
    # `hakeeper status --json` prints collect_status(...).to_dict(): the same function.
    assert body == (await collect_status(store, spec, time.time())).to_dict()
    assert body["cluster"] == "c1"
    assert {n["name"] for n in body["nodes"]} == {"n1", "n2", "n3"}


async def test_no_credential_reads_nothing_by_default(api: Served) -> None:
    status, body = await api.call("GET", "/v1/status")
    assert status == 401
    assert "Bearer" in body["error"]


async def test_anonymous_read_opens_reads_but_not_actions(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    async with served(coord, store, spec, api_section(anonymous_read=True)) as box:
        assert (await box.call("GET", "/v1/nodes"))[0] == 200
        status, _ = await box.call("POST", "/v1/resources/vip/move", body={"node": "n2"})
        assert status == 403
    assert await coord.range(KEYS.constraints) == []


async def test_an_expired_token_is_refused_and_says_how_to_replace_it(api: Served) -> None:
    status, body = await api.call("GET", "/v1/status", token="old")
    assert status == 401
    assert "expired" in body["error"]
    assert "token create" in body["error"]


async def test_a_read_token_cannot_act(api: Served, coord: LocalCoordinator) -> None:
    status, body = await api.call(
        "POST", "/v1/resources/vip/move", token="reader", body={"node": "n2"}
    )
    assert status == 403
    assert "operate" in body["error"]
    assert await coord.range(KEYS.constraints) == []


async def test_an_operator_moves_a_resource_and_the_event_names_them(
    api: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    await online(coord, "n1", "n2", "n3")
    status, body = await api.call(
        "POST", "/v1/resources/vip/move", token="operator", body={"node": "n2"}
    )
    assert status == 200
    assert body["exit_code"] == 0
    assert any("vip moved to n2" in line for line in body["lines"])
    assert await store.constraints_of("vip") == {"n2": "move"}
    actions = [e for e in await store.event_log("t").read() if isinstance(e, OperatorAction)]
    assert [(a.actor, a.action, a.target) for a in actions] == [
        ("operator", "resource.move", "vip n2")
    ]


async def test_an_unknown_name_is_a_400_that_lists_the_known_ones(api: Served) -> None:
    status, body = await api.call(
        "POST", "/v1/resources/nope/move", token="operator", body={"node": "n2"}
    )
    assert status == 400
    assert "vip" in body["error"]


async def test_fencing_needs_admin(api: Served, coord: LocalCoordinator) -> None:
    await online(coord, "n1", "n2")
    path, body = "/v1/nodes/n3/fence", {"confirm": True}
    assert (await api.call("POST", path, token="operator", body=body))[0] == 403
    status, answer = await api.call("POST", path, token="admin", body=body)
    assert status == 200
    assert answer["exit_code"] == 0


async def test_node_flags_through_the_api(api: Served, store: ClusterStore) -> None:
    ok = await api.call("POST", "/v1/nodes/n2/maintenance", token="operator", body={})
    assert ok[0] == 200
    assert (await store.node_flags("n2")).maintenance
    await api.call("POST", "/v1/nodes/n2/maintenance", token="operator", body={"off": True})
    await api.call("POST", "/v1/nodes/n2/standby", token="operator", body={})
    flags = await store.node_flags("n2")
    assert flags.standby
    assert not flags.maintenance


async def test_an_action_without_json_content_type_is_refused(
    api: Served, coord: LocalCoordinator
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            api.url + "/v1/resources/vip/move",
            data="node=n2",
            headers={"Authorization": "Bearer " + "o" * 43,
                     "Content-Type": "application/x-www-form-urlencoded"},
        ) as response,
    ):  # fmt: skip
        assert response.status == 415
    assert await coord.range(KEYS.constraints) == []


async def test_a_bad_body_is_a_400_naming_the_key(api: Served) -> None:
    status, body = await api.call(
        "POST", "/v1/resources/vip/move", token="operator", body={"node": "n2", "x": 1}
    )
    assert status == 400
    assert "x" in body["error"]


async def test_health_endpoints_answer_for_this_node_only(
    api: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    api.local[("vip", 0)] = "started"
    assert (await api.call("GET", "/health"))[0] == 200
    assert (await api.call("GET", "/holder/vip"))[0] == 200
    assert (await api.call("GET", "/holder/reports"))[0] == 503
    assert (await api.call("GET", "/controller"))[0] == 503
    assert (await api.call("GET", "/primary/web-clone"))[0] == 503
    assert (await api.call("GET", "/holder/nope"))[0] == 400
    api.member = False
    assert (await api.call("GET", "/health"))[0] == 503
    assert (await api.call("GET", "/holder/vip"))[0] == 503


async def test_events_since_a_revision_carry_their_revisions(
    api: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    await online(coord, "n1", "n2", "n3")
    await api.call("POST", "/v1/resources/vip/ban", token="operator", body={"node": "n3"})
    status, body = await api.call("GET", "/v1/events?since=0", token="reader")
    assert status == 200
    assert body["events"][-1]["kind"] == "operator.action"
    last = body["events"][-1]["revision"]
    status, later = await api.call("GET", f"/v1/events?since={last}", token="reader")
    assert later["events"] == []
    assert (await api.call("GET", "/v1/events?since=-1", token="reader"))[0] == 400


async def test_failover_history_reports_durations(api: Served, store: ClusterStore) -> None:
    from hakeeper.model.events import FailoverFinished

    await store.event_log("n1").append(FailoverFinished(NOW, "vip", "n1", "n2", 2.5))
    status, body = await api.call("GET", "/v1/failovers", token="reader")
    assert status == 200
    assert body["count"] == 1
    assert body["max_duration"] == 2.5


async def test_the_stream_sends_the_status_then_each_new_event(
    api: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    await online(coord, "n1", "n2", "n3")
    await runs(store, "vip", "n1")
    headers = {"Authorization": "Bearer " + "r" * 43}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(api.url + "/v1/events/stream", headers=headers) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await _next_message(response)
        assert first["event"] == "status"
        assert first["data"]["cluster"] == "c1"
        await api.call("POST", "/v1/resources/vip/clear", token="operator", body={})
        while (message := await _next_message(response))["event"] != "event":
            pass
        assert message["data"]["kind"] == "operator.action"
        assert message["id"]


async def _next_message(response: aiohttp.ClientResponse) -> dict[str, Any]:
    import json

    fields: dict[str, Any] = {}
    async with asyncio.timeout(10):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = json.loads(value) if key == "data" else value


async def test_the_openapi_document_lists_every_route(api: Served) -> None:
    status, doc = await api.call("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert listed == {(r.method, r.path) for r in ROUTES}


async def test_config_plan_shows_the_difference_and_writes_nothing(
    api: Served, store: ClusterStore
) -> None:
    await store.publish_first_config(CLUSTER_TOML)
    new = CLUSTER_TOML.replace("score = 100", "score = 50")
    status, body = await api.call("POST", "/v1/config/plan", token="admin", body={"text": new})
    assert status == 200
    assert body["changed"] is True
    assert "+score = 50" in body["diff"]
    assert await store.stored_config() == CLUSTER_TOML


async def test_config_apply_needs_admin_then_stores_the_text(
    api: Served, store: ClusterStore
) -> None:
    await store.publish_first_config(CLUSTER_TOML)
    new = CLUSTER_TOML.replace("score = 100", "score = 50")
    path = "/v1/config/apply"
    assert (await api.call("POST", path, token="operator", body={"text": new}))[0] == 403
    status, body = await api.call("POST", path, token="admin", body={"text": new})
    assert status == 200
    assert body["lines"][-1].startswith("applied")
    assert await store.stored_config() == new


async def test_config_apply_refuses_a_renamed_cluster_or_bad_toml(
    api: Served, store: ClusterStore
) -> None:
    await store.publish_first_config(CLUSTER_TOML)
    for text in (CLUSTER_TOML.replace('name = "c1"', 'name = "c2"'), "[cluster\n"):
        status, body = await api.call(
            "POST", "/v1/config/apply", token="admin", body={"text": text}
        )
        assert status == 400, body
    assert await store.stored_config() == CLUSTER_TOML


async def test_a_read_token_scrapes_the_prometheus_page(api: Served) -> None:
    status, body = await api.call("GET", "/metrics", token="reader")
    assert status == 200
    assert "hakeeper_up 1.0" in body
    assert "hakeeper_lease_renewal_duration_seconds_bucket" in body


async def test_no_credential_scrapes_nothing_by_default(api: Served) -> None:
    status, body = await api.call("GET", "/metrics")
    assert status == 401
    assert "hakeeper_up" not in str(body)
