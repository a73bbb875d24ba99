"""`hakeeper.coord.base.Coordinator` on a real etcd cluster (3.4+) through its JSON gateway.

Plain HTTP/JSON with aiohttp: no grpc, no protobuf, no etcd client library. Wire encoding
lives in `hakeeper.coord.etcd_json`, TLS and credentials in `hakeeper.coord.etcd_security`,
single requests and the auth token in `hakeeper.coord.etcd_transport`; this module does
failover, the watch and error translation.

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

A production etcd (TLS, client certificates, an RBAC user limited to the cluster's prefix)
is reached with ``ca_file``, ``cert_file``/``key_file`` and ``user``/``password_file``;
``scope`` names the prefix that user may read, which the revision and quorum probes read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hakeeper.coord.base import KV, Cmp, CoordinatorContext, Get, Lease, Op, TxnResult, WatchEvent
from hakeeper.coord.etcd_json import (
    EtcdFailure,
    Json,
    WatchMessage,
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
from hakeeper.coord.etcd_security import (
    EtcdSecurity,
    access_fix,
    access_problem,
)
from hakeeper.coord.etcd_transport import (
    EndpointFailed,
    EtcdTransport,
    StreamBroken,
    raise_tls_failures,
    token_refused,
)
from hakeeper.errors import (
    Compacted,
    ConfigError,
    CoordError,
    EngineMismatch,
    LeaseExpired,
    NoQuorum,
    TTLTooShort,
    Unreachable,
)

__all__ = ["EtcdCoordinator"]

_FIX = "check that etcd runs and that --listen-client-urls includes these"
_QUORUM_FIX = "a majority of members must be up and connected"


class EtcdCoordinator:
    """A client of one etcd cluster; owns its aiohttp session. See the module docstring."""

    #: etcd guards itself with its own TLS and users, not the cluster secret.
    needs_cluster_secret: ClassVar[bool] = False

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        request_timeout: float = 2.0,
        election_timeout: float = 1.0,
        heartbeat: float = 0.1,
        watch_idle: float = 5.0,
        watch_reconnect_timeout: float = 15.0,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        user: str | None = None,
        password_file: str | Path | None = None,
        scope: str = "",
    ) -> None:
        self._endpoints = validate_endpoints(endpoints)
        security = EtcdSecurity(
            ca_file=_path(ca_file),
            cert_file=_path(cert_file),
            key_file=_path(key_file),
            user=user,
            password_file=_path(password_file),
        )
        self._transport = EtcdTransport(self._endpoints, security, request_timeout=request_timeout)
        self._user = user
        self._scope = scope
        # The revision and quorum probes read one key the user may read (count only).
        self._cheap_range: Json = {"key": b64(scope or b"\x00"), "count_only": True}
        self._request_timeout = request_timeout
        self._election_timeout = election_timeout
        self._heartbeat = heartbeat
        self._watch_idle = watch_idle
        self._watch_reconnect_timeout = watch_reconnect_timeout
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

    @classmethod
    async def open_for(cls, context: CoordinatorContext) -> EtcdCoordinator:
        """A client of the cluster file's etcd endpoints, with its TLS files and user, whose
        credentials must reach ``context.scope`` (a member or a tool: the same client)."""
        coordination = context.spec.coordination
        return await cls.open(
            list(coordination.endpoints),
            election_timeout=context.spec.timing.election_max,
            heartbeat=context.spec.timing.heartbeat,
            ca_file=coordination.ca_file,
            cert_file=coordination.cert_file,
            key_file=coordination.key_file,
            user=coordination.user,
            password_file=coordination.password_file,
            scope=context.scope,
        )

    async def connect(self) -> None:
        """Ask every endpoint for its version and cluster id, at once; then authenticate
        (with a user) and check that the credentials may read ``scope``.

        Raises `ConfigError` if TLS failed with every endpoint or etcd refused the
        credentials (naming what failed and the fix), `Unreachable` (naming every endpoint
        and its answer) if none answers within ``request_timeout``, and `EngineMismatch` if
        two endpoints belong to different clusters.
        """
        if self._closed:
            raise CoordError("etcd: this coordinator was closed; open a new one")
        self._transport.start()
        answers = await asyncio.gather(*(self._probe(ep) for ep in self._endpoints))
        failures = [
            f"{ep}: {answer.reason}"
            for ep, answer in zip(self._endpoints, answers, strict=True)
            if isinstance(answer, EndpointFailed)
        ]
        if len(failures) == len(self._endpoints):
            raise_tls_failures([a for a in answers if isinstance(a, EndpointFailed)])
            hint = ""
            if not self._transport.https and all("disconnected" in f for f in failures):
                hint = " (an etcd serving TLS drops plain http: list https:// endpoints)"
            raise Unreachable(
                f"etcd: no endpoint answered within {self._request_timeout:g}s: "
                f"{'; '.join(failures)} — {_FIX}{hint}"
            )
        # Checked only after every probe finished, so no probe outlives a failed connect.
        for endpoint, answer in zip(self._endpoints, answers, strict=True):
            if not isinstance(answer, EndpointFailed):
                self._check_cluster(endpoint, answer)
        self._current = next(
            i for i, answer in enumerate(answers) if not isinstance(answer, EndpointFailed)
        )
        if self._user is not None:
            await self._authenticate()
        await self._check_access()

    async def _probe(self, endpoint: str) -> Json | EndpointFailed:
        """The member's status answer (which needs no token), or why it gave none."""
        try:
            body = await self._transport.post(endpoint, "/maintenance/status", {})
        except EndpointFailed as exc:
            return exc
        failure = find_error(body)
        if failure is None:
            return body
        return EndpointFailed(endpoint, failure.message, maybe_sent=False)

    async def _authenticate(self) -> None:
        """Authenticate at the first endpoint that answers; `ConfigError` on bad credentials."""
        tried: list[str] = []
        n = len(self._endpoints)
        for step in range(n):
            index = (self._current + step) % n
            try:
                await self._transport.authenticate(self._endpoints[index])
            except (EndpointFailed, NoQuorum) as exc:
                tried.append(str(exc))
                continue
            self._current = index
            return
        raise Unreachable(f"etcd: no endpoint answered authentication: {'; '.join(tried)} — {_FIX}")

    async def _check_access(self) -> None:
        """A serializable (no quorum needed) read of ``scope``, so that missing or too narrow
        credentials fail at connect with their fix rather than at the first write."""
        endpoint = self._endpoints[self._current]
        probe = {**self._cheap_range, "serializable": True}
        try:
            body = await self._transport.post(endpoint, "/kv/range", probe)
        except EndpointFailed:
            return  # not a credentials problem; the first real request reports it
        failure = find_error(body)
        if failure is not None and access_problem(failure.message):
            raise ConfigError(
                f"etcd {endpoint}: reading {self._scope or 'the key space'!r} was refused "
                f"({failure.message}){access_fix(failure.message, self._user, self._scope)}"
            )

    async def close(self) -> None:
        """Close the session (and with it every open watch stream). Idempotent."""
        self._closed = True
        await self._transport.close()

    async def __aenter__(self) -> EtcdCoordinator:
        if not self._transport.started:
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
    def authentications(self) -> int:
        """How many tokens this client obtained: 1 after connect with a user, one more per
        renewal of an expired token (diagnostic)."""
        return self._transport.authentications

    @property
    def certificate_problem(self) -> str | None:
        """Why a renewed client certificate on disk is not in use yet, for status and logs;
        None when the files in use are the ones on disk."""
        return self._transport.certificate_problem

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

    async def lease_renewed_ago(self, lease_id: int, member: str | None = None) -> float | None:
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
        return header_revision(await self._post("/kv/range", self._cheap_range, idempotent=True))

    async def has_quorum(self) -> bool:
        """A linearizable read within 1.5 × election timeout. Never raises: False on any
        engine trouble or on the deadline, so it answers within ~2 × election timeout."""
        try:
            async with asyncio.timeout(1.5 * self._election_timeout):
                await self._post("/kv/range", self._cheap_range, idempotent=True)
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
            except StreamBroken as exc:
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
        """One watch stream on the current endpoint; `StreamBroken` when it fails."""
        endpoint = self._endpoints[self._current]
        create = {**request, "start_revision": str(start), "progress_notify": True}
        token = self._transport.token
        try:
            response = await self._transport.open_stream(
                endpoint, "/watch", {"create_request": create}
            )
        except EndpointFailed as exc:
            raise StreamBroken(str(exc)) from exc
        try:
            async with contextlib.aclosing(
                self._transport.stream_objects(endpoint, response, self._watch_idle)
            ) as objs:
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
                        await self._watch_canceled(endpoint, message.cancel_reason, token)
                    if message.events or message.created:
                        yield message  # created too: it proves the reconnect worked
        finally:
            response.close()

    async def _watch_canceled(self, endpoint: str, reason: str, token: str | None) -> None:
        """Raise what a canceled watch means: an expired token is renewed and the watch
        re-created; a refusal for lack of credentials or permission is final."""
        if self._user is not None and token_refused(reason):
            try:
                await self._transport.renew_token(endpoint, token)
            except EndpointFailed as exc:
                raise StreamBroken(str(exc)) from exc
        elif access_problem(reason):
            fix = access_fix(reason, self._user, self._scope)
            raise CoordError(f"etcd {endpoint} refused the watch ({reason}){fix}")
        raise StreamBroken(f"{endpoint}: watch canceled: {reason}")

    def _watch_failure(self, endpoint: str, failure: EtcdFailure) -> None:
        if failure.kind is Compacted:
            raise Compacted(f"etcd {endpoint}: {failure.message}: re-read, then watch again")
        if failure.kind is CoordError:
            raise CoordError(f"etcd {endpoint} refused the watch: {failure.message}")
        raise StreamBroken(f"{endpoint}: {failure.message}", no_leader=failure.kind is NoQuorum)

    # --- transport ------------------------------------------------------------------------

    async def _post(
        self, path: str, payload: Json, idempotent: bool, *, stream: bool = False
    ) -> Json:
        """POST to the current endpoint, failing over in order; the answer, errors raised.

        Each attempt is bounded by ``request_timeout``. See the module docstring for which
        failures move on to the next endpoint.
        """
        if not self._transport.started:
            await self.connect()
        tried: list[str] = []
        no_quorum: EtcdFailure | None = None
        last_exc: BaseException | None = None
        n = len(self._endpoints)
        for step in range(n):
            index = (self._current + step) % n
            endpoint = self._endpoints[index]
            try:
                body = await self._transport.post(endpoint, path, payload, stream=stream)
            except EndpointFailed as exc:
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
            raise failure.kind(
                f"etcd {endpoint}{path}: {failure.message}{_hint(failure)}"
                f"{access_fix(failure.message, self._user, self._scope)}"
            )
        self._rotate(self._current)
        if no_quorum is not None:
            raise NoQuorum(
                f"etcd: no member could reach a leader for {path}: {'; '.join(tried)} — "
                f"{_QUORUM_FIX}"
            )
        raise Unreachable(
            f"etcd: no endpoint answered {path}: {'; '.join(tried)} — {_FIX}"
        ) from last_exc

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


def _hint(failure: EtcdFailure) -> str:
    if failure.kind is LeaseExpired:
        return " (the lease expired or was revoked): grant a new lease"
    if failure.kind is Compacted:
        return ": that history was compacted; read the current state instead"
    if failure.kind is NoQuorum:
        return f": {_QUORUM_FIX}"
    return ""


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None
