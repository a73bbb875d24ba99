"""`hakeeper.coord.base.Coordinator` on a real etcd cluster (3.4+) through its JSON gateway.

Plain HTTP/JSON with aiohttp: no grpc, no protobuf, no etcd client library. Wire encoding
lives in `hakeeper.coord.etcd_json`; this module does I/O, failover and error translation.

Usage::

    async with await EtcdCoordinator.open(["http://127.0.0.1:2379"]) as coord:
        await coord.put("/k", b"v")

Failover: requests go to the last endpoint that answered; a member that cannot be reached
moves the request to the next one (round robin). A write whose fate is unknown (sent, then the
connection broke or timed out) is *not* resent elsewhere — it raises `Unreachable` so the
caller re-reads first; reads, keepalives and writes etcd refused before proposing ("no leader")
are tried on every member.

Every request carries the gRPC metadata ``hasleader=true`` (as the gateway header
``Grpc-Metadata-hasleader``): a member cut off from the majority then refuses at once with
"no leader" instead of holding the request until its own 7 s timeout, and cancels watch
streams it can no longer keep current, so they move to a member that can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from hakeeper.coord.base import KV, Cmp, Get, Lease, Op, TxnResult, WatchEvent
from hakeeper.coord.etcd_json import (
    EtcdFailure,
    Json,
    WatchMessage,
    api_prefix,
    b64,
    decode_kvs,
    decode_txn,
    decode_watch,
    encode_put,
    encode_txn,
    find_error,
    header_revision,
    int64,
    key_range,
    validate_endpoints,
)
from hakeeper.errors import (
    Compacted,
    CoordError,
    EngineMismatch,
    LeaseExpired,
    NoQuorum,
    TTLTooShort,
    Unreachable,
)

_LEADER_HEADER = {"Grpc-Metadata-hasleader": "true"}
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)
_FIX = "check that etcd runs and that --listen-client-urls includes these"
_QUORUM_FIX = "a majority of members must be up and connected"


class _EndpointFailed(Exception):
    """One endpoint failed at the transport level; ``maybe_sent`` if the request left."""

    def __init__(self, endpoint: str, reason: str, *, maybe_sent: bool) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
        self.maybe_sent = maybe_sent


class _StreamBroken(Exception):
    """A watch stream ended or went silent; the watch resumes on another endpoint."""

    def __init__(self, reason: str, *, no_leader: bool = False) -> None:
        super().__init__(reason)
        self.no_leader = no_leader


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__


class EtcdCoordinator:
    """A client of one etcd cluster; owns its aiohttp session. See the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        request_timeout: float = 2.0,
        election_timeout: float = 1.0,
        heartbeat: float = 0.1,
        watch_idle: float = 5.0,
        watch_reconnect_timeout: float = 15.0,
    ) -> None:
        self._endpoints = validate_endpoints(endpoints)
        self._request_timeout = request_timeout
        self._election_timeout = election_timeout
        self._heartbeat = heartbeat
        self._watch_idle = watch_idle
        self._watch_reconnect_timeout = watch_reconnect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._api: dict[str, str] = {}
        self._current = 0
        self._cluster: tuple[str, str] | None = None  # (cluster_id, endpoint that said so)
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(cls, endpoints: Sequence[str], **options: Any) -> EtcdCoordinator:
        """Construct and `connect`; the caller owns the result (``async with`` closes it)."""
        coord = cls(endpoints, **options)
        try:
            await coord.connect()
        except BaseException:
            await coord.close()
            raise
        return coord

    async def connect(self) -> None:
        """Ask every endpoint for its version and cluster id, at once.

        Raises `Unreachable` (naming every endpoint and its answer) if none answers within
        ``request_timeout``, and `EngineMismatch` if two endpoints belong to different clusters.
        """
        if self._closed:
            raise CoordError("etcd: this coordinator was closed; open a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(raise_for_status=False)
        answers = await asyncio.gather(*(self._probe(ep) for ep in self._endpoints))
        failures = [
            f"{ep}: {answer}"
            for ep, answer in zip(self._endpoints, answers, strict=True)
            if isinstance(answer, str)
        ]
        if len(failures) == len(self._endpoints):
            raise Unreachable(
                f"etcd: no endpoint answered within {self._request_timeout:g}s: "
                f"{'; '.join(failures)} — {_FIX}"
            )
        # Checked only after every probe finished, so no probe outlives a failed connect.
        for endpoint, answer in zip(self._endpoints, answers, strict=True):
            if not isinstance(answer, str):
                self._check_cluster(endpoint, answer)
        self._current = next(i for i, answer in enumerate(answers) if not isinstance(answer, str))

    async def _probe(self, endpoint: str) -> Json | str:
        """The member's status answer, or why it gave none."""
        try:
            body = await self._post_one(endpoint, "/maintenance/status", {})
        except _EndpointFailed as exc:
            return exc.reason
        failure = find_error(body)
        return body if failure is None else failure.message

    async def close(self) -> None:
        """Close the session (and with it every open watch stream). Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> EtcdCoordinator:
        if self._session is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- properties -----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return "etcd"

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    @property
    def current_endpoint(self) -> str:
        """The endpoint the next request (or watch stream) goes to first (diagnostic)."""
        return self._endpoints[self._current]

    @property
    def min_ttl(self) -> float:
        """etcd's own floor, ``ceil(1.5 × election timeout)``: it silently raises shorter TTLs."""
        return float(math.ceil(1.5 * self._election_timeout))

    # --- leases ---------------------------------------------------------------------------

    async def grant(self, ttl: float) -> Lease:
        """Grant ``ceil(ttl)`` seconds (etcd TTLs are whole seconds). Not retried elsewhere
        once sent: a lost answer leaves at most an unused lease, which expires."""
        if ttl < self.min_ttl:
            raise TTLTooShort(self._ttl_message(ttl))
        asked = max(1, math.ceil(ttl))
        body = await self._post("/lease/grant", {"TTL": str(asked)}, idempotent=False)
        lease = Lease(int64(body, "ID"), float(int64(body, "TTL")))
        if lease.ttl > asked:
            with contextlib.suppress(CoordError):
                await self.revoke(lease)
            raise TTLTooShort(
                f"{self._ttl_message(ttl)}; etcd itself raised it to {lease.ttl:g}s, so its "
                f"--election-timeout is longer than the {self._election_timeout:g}s configured "
                "here: give this client etcd's real election timeout"
            )
        return lease

    def _ttl_message(self, ttl: float) -> str:
        return (
            f"lease TTL {ttl:g}s is below etcd's minimum {self.min_ttl:g}s "
            f"(1.5 × election timeout {self._election_timeout:g}s, rounded up to whole "
            "seconds): raise the TTL or lower etcd's --election-timeout"
        )

    async def keepalive(self, lease: Lease) -> bool:
        """Renew for the granted TTL from when the etcd leader applies it. False once the lease
        is gone; `NoQuorum`/`Unreachable` when no member can reach a leader."""
        try:
            body = await self._post(
                "/lease/keepalive", {"ID": str(lease.id)}, idempotent=True, stream=True
            )
        except LeaseExpired:  # etcd 3.4 answers TTL 0, but a gone lease is never an error
            return False
        return int64(body, "TTL") > 0

    async def revoke(self, lease: Lease) -> None:
        """Revoke and delete the lease's keys in one revision; a lease already gone is fine."""
        with contextlib.suppress(LeaseExpired):
            await self._post("/lease/revoke", {"ID": str(lease.id)}, idempotent=True)

    async def lease_renewed_ago(self, lease_id: int) -> float | None:
        """etcd's LeaseTimeToLive reports whole seconds, too coarse to suspect anyone by."""
        return None

    # --- key space ------------------------------------------------------------------------

    async def get(self, key: str) -> KV | None:
        """Linearizable read of one key."""
        body = await self._post("/kv/range", key_range(key, False), idempotent=True)
        kvs = decode_kvs(body)
        return kvs[0] if kvs else None

    async def range(self, prefix: str) -> list[KV]:
        """Linearizable read of every key under ``prefix``; etcd returns them sorted by key."""
        body = await self._post("/kv/range", key_range(prefix, True), idempotent=True)
        return list(decode_kvs(body))

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        """Write one key; the new revision. `LeaseExpired` if ``lease`` is gone."""
        payload = encode_put(key, value, lease.id if lease else 0)
        return header_revision(await self._post("/kv/put", payload, idempotent=False))

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (or every key under it) in one revision; how many were deleted."""
        body = await self._post("/kv/deleterange", key_range(key, prefix), idempotent=False)
        return int64(body, "deleted")

    async def txn(
        self, compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One atomic etcd txn; a read-only one may be retried on another member."""
        read_only = all(isinstance(op, Get) for op in (*success, *failure))
        body = await self._post("/kv/txn", encode_txn(compare, success, failure), read_only)
        return decode_txn(body, success, failure)

    async def revision(self) -> int:
        """The current revision, from a linearizable count-only range."""
        return header_revision(await self._post("/kv/range", _CHEAP_RANGE, idempotent=True))

    async def has_quorum(self) -> bool:
        """A linearizable read within 1.5 × election timeout. Never raises: False on any
        engine trouble or on the deadline, so it answers within ~2 × election timeout."""
        try:
            async with asyncio.timeout(1.5 * self._election_timeout):
                await self._post("/kv/range", _CHEAP_RANGE, idempotent=True)
        except (CoordError, TimeoutError):
            return False
        return True

    # --- watch ----------------------------------------------------------------------------

    async def watch(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncGenerator[WatchEvent]:
        """Every change under ``prefix`` from ``start_revision`` (default: the revision after
        the current one, fixed on first iteration so a reconnect cannot skip anything).

        A broken or silent stream is re-created on the next endpoint from the revision after
        the last one delivered: no gap, no repeat. Raises `Compacted` if etcd no longer has
        that history, `Unreachable` if no endpoint takes the watch for
        ``watch_reconnect_timeout`` seconds. Closing the generator closes the HTTP stream.
        """
        next_rev = start_revision if start_revision is not None else await self.revision() + 1
        request = key_range(prefix, True)
        loop = asyncio.get_running_loop()
        give_up_at: float | None = None
        while True:
            try:
                async with contextlib.aclosing(self._watch_once(request, next_rev)) as stream:
                    async for message in stream:
                        give_up_at = None
                        fresh = [e for e in message.events if e.revision >= next_rev]
                        if fresh:
                            next_rev = fresh[-1].revision + 1
                        for event in fresh:
                            yield event
            except _StreamBroken as exc:
                now = loop.time()
                give_up_at = give_up_at or now + self._watch_reconnect_timeout
                if now >= give_up_at:
                    kind, fix = (NoQuorum, _QUORUM_FIX) if exc.no_leader else (Unreachable, _FIX)
                    raise kind(
                        f"etcd: watch on {prefix!r} could not be resumed at revision "
                        f"{next_rev} within {self._watch_reconnect_timeout:g}s: {exc} — {fix}"
                    ) from exc
                self._rotate(self._current)
                await asyncio.sleep(min(0.5, self._heartbeat * 2))

    async def _watch_once(self, request: Json, start: int) -> AsyncGenerator[WatchMessage]:
        """One watch stream on the current endpoint; `_StreamBroken` when it fails."""
        endpoint = self._endpoints[self._current]
        create = {**request, "start_revision": str(start), "progress_notify": True}
        timeout = aiohttp.ClientTimeout(total=None, connect=self._request_timeout, sock_read=None)
        try:
            url = endpoint + await self._api_prefix(endpoint) + "/watch"
            response = await self._require_session().post(
                url, json={"create_request": create}, headers=_LEADER_HEADER, timeout=timeout
            )
        except (_EndpointFailed, *_TRANSPORT_ERRORS) as exc:
            raise _StreamBroken(f"{endpoint}: {_describe(exc)}") from exc
        try:
            async with contextlib.aclosing(self._stream_objects(endpoint, response)) as objs:
                async for obj in objs:
                    failure = find_error(obj)
                    if failure is not None:
                        self._watch_failure(endpoint, failure)
                    result = obj.get("result") or {}
                    self._check_cluster(endpoint, result)
                    message = decode_watch(result)
                    if message.compact_revision or "compact" in message.cancel_reason:
                        raise Compacted(
                            f"etcd: watch start revision {start} is older than the compacted "
                            f"history (compacted up to {message.compact_revision}): re-read the "
                            "current state, then watch from its revision + 1"
                        )
                    if message.canceled:
                        raise _StreamBroken(f"{endpoint}: watch canceled: {message.cancel_reason}")
                    if message.events or message.created:
                        yield message  # created too: it proves the reconnect worked
        finally:
            response.close()

    def _watch_failure(self, endpoint: str, failure: EtcdFailure) -> None:
        if failure.kind is Compacted:
            raise Compacted(f"etcd {endpoint}: {failure.message}: re-read, then watch again")
        if failure.kind is CoordError:
            raise CoordError(f"etcd {endpoint} refused the watch: {failure.message}")
        raise _StreamBroken(f"{endpoint}: {failure.message}", no_leader=failure.kind is NoQuorum)

    async def _stream_objects(
        self, endpoint: str, response: aiohttp.ClientResponse
    ) -> AsyncGenerator[Json]:
        """Newline-delimited JSON objects; on ``watch_idle`` of silence, check the member is
        alive (etcd's progress notifications come only every ~10 minutes)."""
        buffer = b""
        while True:
            try:
                async with asyncio.timeout(self._watch_idle):
                    chunk = await response.content.readany()
            except TimeoutError:
                if not await self._alive(endpoint):
                    raise _StreamBroken(f"{endpoint}: silent and not answering") from None
                continue
            except _TRANSPORT_ERRORS as exc:
                raise _StreamBroken(f"{endpoint}: {_describe(exc)}") from exc
            if not chunk:
                if buffer.strip():  # an error answer may lack the final newline
                    yield self._parse(endpoint, buffer)
                raise _StreamBroken(f"{endpoint}: stream closed (HTTP {response.status})")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield self._parse(endpoint, line)

    async def _alive(self, endpoint: str) -> bool:
        try:
            body = await self._post_one(endpoint, "/maintenance/status", {})
        except _EndpointFailed:
            return False
        return find_error(body) is None

    # --- transport ------------------------------------------------------------------------

    async def _post(
        self, path: str, payload: Json, idempotent: bool, *, stream: bool = False
    ) -> Json:
        """POST to the current endpoint, failing over in order; the answer, errors raised.

        Each attempt is bounded by ``request_timeout``. See the module docstring for which
        failures move on to the next endpoint.
        """
        if self._session is None:
            await self.connect()
        tried: list[str] = []
        no_quorum: EtcdFailure | None = None
        last_exc: BaseException | None = None
        n = len(self._endpoints)
        for step in range(n):
            index = (self._current + step) % n
            endpoint = self._endpoints[index]
            try:
                body = await self._post_one(endpoint, path, payload, stream=stream)
            except _EndpointFailed as exc:
                tried.append(str(exc))
                last_exc = exc
                if exc.maybe_sent and not idempotent:
                    self._rotate(index)
                    raise Unreachable(
                        f"etcd {endpoint} did not answer {path} ({exc.reason}); it may or may "
                        "not have been applied: re-read before retrying"
                    ) from exc
                continue
            failure = find_error(body)
            if failure is None:
                self._current = index
                self._check_cluster(endpoint, body)
                return body
            if failure.kind is NoQuorum and (idempotent or failure.not_proposed):
                tried.append(f"{endpoint}: {failure.message}")
                no_quorum = failure
                continue
            if failure.kind is NoQuorum:
                self._rotate(index)
            raise failure.kind(f"etcd {endpoint}{path}: {failure.message}{_hint(failure)}")
        self._rotate(self._current)
        if no_quorum is not None:
            raise NoQuorum(
                f"etcd: no member could reach a leader for {path}: {'; '.join(tried)} — "
                f"{_QUORUM_FIX}"
            )
        raise Unreachable(
            f"etcd: no endpoint answered {path}: {'; '.join(tried)} — {_FIX}"
        ) from last_exc

    async def _post_one(
        self, endpoint: str, path: str, payload: Json, *, stream: bool = False
    ) -> Json:
        """One POST to one endpoint: the parsed answer (errors included), or `_EndpointFailed`.

        For a streamed call only the first object is read and its ``result`` unwrapped.
        """
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        try:
            url = endpoint + await self._api_prefix(endpoint) + path
            async with self._require_session().post(
                url, json=payload, headers=_LEADER_HEADER, timeout=timeout
            ) as response:
                raw = await (response.content.readline() if stream else response.read())
        except aiohttp.ClientConnectorError as exc:
            raise _EndpointFailed(endpoint, _describe(exc), maybe_sent=False) from exc
        except _TRANSPORT_ERRORS as exc:
            raise _EndpointFailed(endpoint, _describe(exc), maybe_sent=True) from exc
        body = self._parse(endpoint, raw)
        result = body.get("result")
        return result if stream and isinstance(result, dict) else body

    async def _api_prefix(self, endpoint: str) -> str:
        """``/v3`` or ``/v3beta`` for this member, read once from ``GET /version``."""
        if endpoint not in self._api:
            timeout = aiohttp.ClientTimeout(total=self._request_timeout)
            try:
                async with self._require_session().get(
                    endpoint + "/version", timeout=timeout
                ) as response:
                    doc = json.loads(await response.read())
            except aiohttp.ClientConnectorError as exc:
                raise _EndpointFailed(endpoint, _describe(exc), maybe_sent=False) from exc
            except _TRANSPORT_ERRORS as exc:
                raise _EndpointFailed(endpoint, _describe(exc), maybe_sent=False) from exc
            if not isinstance(doc, dict):
                raise _EndpointFailed(endpoint, "GET /version is not etcd's", maybe_sent=False)
            try:
                self._api[endpoint] = api_prefix(doc)
            except CoordError as exc:
                raise _EndpointFailed(endpoint, str(exc), maybe_sent=False) from exc
        return self._api[endpoint]

    @staticmethod
    def _parse(endpoint: str, raw: bytes) -> Json:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _EndpointFailed(
                endpoint, f"answered non-JSON {raw[:80]!r}", maybe_sent=True
            ) from exc
        if not isinstance(body, dict):
            raise _EndpointFailed(endpoint, f"answered {raw[:80]!r}", maybe_sent=True)
        return body

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise CoordError("etcd: the coordinator is closed or not connected")
        return self._session

    def _rotate(self, failed_index: int) -> None:
        self._current = (failed_index + 1) % len(self._endpoints)

    def _check_cluster(self, endpoint: str, body: Json) -> None:
        """Every endpoint must report the same ``header.cluster_id``."""
        cluster_id = str((body.get("header") or {}).get("cluster_id") or "")
        if not cluster_id:
            return
        if self._cluster is None:
            self._cluster = (cluster_id, endpoint)
            return
        known, source = self._cluster
        if cluster_id != known:
            raise EngineMismatch(
                f"etcd endpoints {source} (cluster id {int(known):x}) and {endpoint} (cluster "
                f"id {int(cluster_id):x}) belong to different etcd clusters: list only the "
                "client URLs of one cluster's members"
            )


_CHEAP_RANGE: Json = {"key": b64(b"\x00"), "count_only": True}


def _hint(failure: EtcdFailure) -> str:
    if failure.kind is LeaseExpired:
        return " (the lease expired or was revoked): grant a new lease"
    if failure.kind is Compacted:
        return ": that history was compacted; read the current state instead"
    if failure.kind is NoQuorum:
        return f": {_QUORUM_FIX}"
    return ""
