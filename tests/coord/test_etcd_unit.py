"""The etcd JSON gateway encoding, without a server: proto3 JSON as etcd 3.4 sends it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hakeeper.coord.base import KV, Cmp, Delete, Get, Put, WatchEvent
from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.coord.etcd_json import (
    api_prefix,
    b64,
    decode_kv,
    decode_txn,
    decode_watch,
    encode_cmp,
    encode_op,
    encode_put,
    encode_txn,
    find_error,
    int64,
    key_range,
    prefix_end,
    unb64,
    validate_endpoints,
)
from hakeeper.errors import (
    Compacted,
    ConfigError,
    CoordError,
    LeaseExpired,
    NoQuorum,
)

HEADER = {"cluster_id": "15118495548433857066", "member_id": "1366", "revision": "7"}


def enc(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_base64_round_trip_and_empty() -> None:
    assert b64("/k") == "L2s="
    assert b64(b"\x00\xff") == "AP8="
    assert unb64("AP8=") == b"\x00\xff"
    assert unb64(None) == b""
    assert unb64("") == b""
    with pytest.raises(CoordError):
        unb64("!!")


def test_int64_fields_arrive_as_strings_or_are_omitted() -> None:
    assert int64({"revision": "9223372036854775807"}, "revision") == 2**63 - 1
    assert int64({"revision": 5}, "revision") == 5
    assert int64({}, "revision") == 0
    with pytest.raises(CoordError):
        int64({"revision": "x"}, "revision")


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"/a/", b"/a0"),
        (b"a", b"b"),
        (b"a\xff", b"b"),
        (b"a\xff\xff", b"b"),
        (b"\xff", b"\x00"),
        (b"", b"\x00"),
        ("/é".encode(), b"/\xc3\xaa"),
    ],
)
def test_prefix_range_end_is_computed_on_bytes(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


def test_key_range_with_and_without_prefix() -> None:
    assert key_range("/a", False) == {"key": enc("/a")}
    assert key_range("/a/", True) == {"key": enc("/a/"), "range_end": enc("/a0")}


@pytest.mark.parametrize(
    ("server", "prefix"),
    [("3.3.27", "/v3beta"), ("3.4.23", "/v3"), ("3.5.9", "/v3"), ("3.6.0-rc.1", "/v3")],
)
def test_version_chooses_the_api_prefix(server: str, prefix: str) -> None:
    assert api_prefix({"etcdserver": server, "etcdcluster": "3.4.0"}) == prefix


@pytest.mark.parametrize("doc", [{}, {"etcdserver": "banana"}, {"etcdserver": "3.2.1"}])
def test_unusable_versions_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(CoordError):
        api_prefix(doc)


def test_endpoints_are_normalised() -> None:
    assert validate_endpoints([" http://127.0.0.1:2379/ ", "https://h:1"]) == [
        "http://127.0.0.1:2379",
        "https://h:1",
    ]


@pytest.mark.parametrize(
    "endpoints",
    [
        [],
        ["127.0.0.1:2379"],
        ["http://127.0.0.1"],
        ["ftp://127.0.0.1:2379"],
        ["http://127.0.0.1:2379/v3"],
        ["http://127.0.0.1:notaport"],
        ["http://127.0.0.1:2379", "http://127.0.0.1:2379"],
    ],
)
def test_bad_endpoints_are_config_errors(endpoints: list[str]) -> None:
    with pytest.raises(ConfigError, match="etcd"):
        EtcdCoordinator(endpoints)


def test_min_ttl_is_etcds_own_rounded_up() -> None:
    assert EtcdCoordinator(["http://127.0.0.1:1"]).min_ttl == 2.0
    assert EtcdCoordinator(["http://127.0.0.1:1"], election_timeout=0.5).min_ttl == 1.0
    assert EtcdCoordinator(["http://127.0.0.1:1"], election_timeout=3).min_ttl == 5.0
    assert EtcdCoordinator(["http://127.0.0.1:1"]).backend == "etcd"


@pytest.mark.parametrize(
    ("cmp", "wire"),
    [
        (
            Cmp("/k", "value", "==", b"v"),
            {"key": enc("/k"), "target": "VALUE", "result": "EQUAL", "value": enc("v")},
        ),
        (
            Cmp("/k", "create_revision", "==", 0),
            {"key": enc("/k"), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
        ),
        (
            Cmp("/k", "mod_revision", "<", 12),
            {"key": enc("/k"), "target": "MOD", "result": "LESS", "mod_revision": "12"},
        ),
        (
            Cmp("/k", "version", ">", 1),
            {"key": enc("/k"), "target": "VERSION", "result": "GREATER", "version": "1"},
        ),
        (
            Cmp("/k", "lease", "!=", 7),
            {"key": enc("/k"), "target": "LEASE", "result": "NOT_EQUAL", "lease": "7"},
        ),
    ],
)
def test_compares(cmp: Cmp, wire: dict[str, str]) -> None:
    assert encode_cmp(cmp) == wire


@pytest.mark.parametrize("cmp", [Cmp("/k", "value", "==", 1), Cmp("/k", "version", "==", b"1")])
def test_compare_operand_type_is_checked(cmp: Cmp) -> None:
    with pytest.raises(TypeError):
        encode_cmp(cmp)


def test_ops_and_txn() -> None:
    assert encode_op(Put("/k", b"v")) == {"request_put": {"key": enc("/k"), "value": enc("v")}}
    assert encode_put("/k", b"", 42) == {"key": enc("/k"), "value": "", "lease": "42"}
    assert encode_op(Delete("/d/", prefix=True)) == {
        "request_delete_range": {"key": enc("/d/"), "range_end": enc("/d0")}
    }
    assert encode_op(Get("/g")) == {"request_range": {"key": enc("/g")}}
    txn = encode_txn([Cmp("/k", "version", "==", 0)], [Put("/k", b"1")], [Get("/k")])
    assert [list(op) for op in (*txn["success"], *txn["failure"])] == [
        ["request_put"],
        ["request_range"],
    ]
    assert txn["compare"][0]["target"] == "VERSION"


def test_kv_with_omitted_zero_fields() -> None:
    # A key written with an empty value and no lease: proto3 omits value and lease.
    kv = decode_kv({"key": enc("/k"), "create_revision": "3", "mod_revision": "4", "version": "2"})
    assert kv == KV("/k", b"", 3, 4, 2, 0)


def test_txn_response_per_op_in_the_branch_taken() -> None:
    body = {
        "header": HEADER,
        "succeeded": True,
        "responses": [
            {"response_put": {"header": {"revision": "7"}}},
            {
                "response_range": {
                    "header": {"revision": "7"},
                    "kvs": [{"key": enc("/a"), "mod_revision": "7", "value": enc("1")}],
                    "count": "1",
                }
            },
            {"response_delete_range": {"header": {"revision": "7"}, "deleted": "2"}},
            {},  # an empty oneof message: decoded by the op sent
        ],
    }
    success = [Put("/a", b"1"), Get("/a"), Delete("/x", prefix=True), Delete("/y")]
    result = decode_txn(body, success, [])
    assert result.succeeded
    assert result.revision == 7
    assert result.responses == ((None, (KV("/a", b"1", 0, 7, 0, 0),), 2, 0))


def test_failed_txn_omits_succeeded_and_uses_the_failure_branch() -> None:
    body = {"header": HEADER, "responses": [{"response_range": {"header": {}}}]}
    result = decode_txn(body, [Put("/a", b"1")], [Get("/a")])
    assert not result.succeeded
    assert result.responses == ((),)


def test_txn_response_count_mismatch_is_an_error() -> None:
    with pytest.raises(CoordError):
        decode_txn({"header": HEADER, "succeeded": True}, [Put("/a", b"1")], [])


def test_watch_messages() -> None:
    created = decode_watch({"header": HEADER, "created": True})
    assert created.created
    assert not created.events
    events = decode_watch(
        {
            "header": HEADER,
            "events": [
                {"kv": {"key": enc("/w/a"), "mod_revision": "5", "create_revision": "5",
                        "version": "1", "value": enc("x")}},
                {"type": "DELETE", "kv": {"key": enc("/w/b"), "mod_revision": "6"}},
            ],
        }
    )  # fmt: skip
    assert events.events == (
        WatchEvent("put", KV("/w/a", b"x", 5, 5, 1)),
        WatchEvent("delete", KV("/w/b", b"", 0, 6, 0)),
    )
    assert [e.revision for e in events.events] == [5, 6]
    compacted = decode_watch({"header": HEADER, "canceled": True, "compact_revision": "3"})
    assert compacted.canceled
    assert compacted.compact_revision == 3


@pytest.mark.parametrize(
    ("body", "kind", "not_proposed"),
    [
        ({"error": "etcdserver: requested lease not found", "code": 5,
          "message": "etcdserver: requested lease not found"}, LeaseExpired, False),
        ({"message": "etcdserver: mvcc: required revision has been compacted", "code": 11},
         Compacted, False),
        ({"message": "etcdserver: no leader", "code": 14}, NoQuorum, True),
        ({"message": "etcdserver: request timed out", "code": 14}, NoQuorum, False),
        ({"message": "raft: stopped", "code": 2}, NoQuorum, False),
        ({"message": "something odd", "code": 4}, NoQuorum, False),
        ({"message": "illegal base64 data at input byte 0", "code": 3}, CoordError, False),
        ({"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader",
                    "http_status": "Service Unavailable"}}, NoQuorum, True),
    ],
)  # fmt: skip
def test_errors_are_classified(
    body: dict[str, Any], kind: type[CoordError], not_proposed: bool
) -> None:
    failure = find_error(body)
    assert failure is not None
    assert failure.kind is kind
    assert failure.not_proposed is not_proposed


def test_results_are_not_errors() -> None:
    assert find_error({"header": HEADER, "ID": "1", "TTL": "2"}) is None
    # LeaseGrantResponse has a string field named error; empty means none.
    assert find_error({"header": HEADER, "ID": "1", "TTL": "2", "error": ""}) is None
    assert find_error({"result": {"header": HEADER, "created": True}}) is None
