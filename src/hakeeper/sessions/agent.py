"""The ``sessions`` resource agent: a store node per cluster node, as a promotable clone.

    [resources.store]
    agent = "sessions"
    params = { port = 11311, nodes = { n1 = "10.0.0.1", n2 = "10.0.0.2", n3 = "10.0.0.3" } }

    [clones.sessions]
    resource = "store"
    promotable = true

Each node runs the store server (``python -m hakeeper.sessions``) on
``<its address>:<port>`` for clients and ``<its address>:<peer_port>`` (default port + 1)
for the other nodes, which prove the cluster secret there (``secret_file``, the path of
``[coordination] secret_file``; it is passed to the store by path, never by value);
supervision is the ``process`` agent's. Every control call below goes to the peer port with
the secret's handshake. ``monitor`` answers RUNNING_PROMOTED on the primary, and reports
the node's promotion score (`fence_round.promotion_score`, from every node's position: -1
where a promote would be refused, else higher for the newest log), which the runtime writes
as the ``master-<resource>`` attribute, as PAF does with ``crm_master``. ``promote``
with the assignment's epoch E (the fencing token):

1. fences every reachable node with E (from then on they refuse the old primary's stream)
   and reads their positions; without a majority it fails and nothing changes. A node
   restarted empty (no log) does not count towards that majority while another answering
   node holds a log and some node did not answer (`fence_round.vouching`): it forgot what it
   acknowledged, and the missing node may hold a write no answering node has. The agent is
   meant to run with ``on_fail = "demote"`` (its default in a promotable clone): the refused
   node is demoted and keeps its data, instead of being restarted empty. A refused promote
   reports score -1, so the node is not chosen again until a monitor finds it can be;
2. if another node holds a more up-to-date copy (higher ``(log_epoch, seq)``) than this one,
   copies it here first, so no write acknowledged by a majority is lost whichever node the
   scheduler chose;
3. makes the local node the primary of E.

``demote`` makes the local node a replica (its unanswered writes are never acknowledged).
Nodes start as replicas that accept any primary's hello: the cluster's own fencing (rule 2)
keeps a vanished old primary from coming back, and promote's fence covers the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hakeeper.agents.base import (
    MetaData,
    OcfRc,
    OpRequest,
    OpResult,
    ParamSpec,
    log_op,
    make_result,
)
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.metadata import check_params
from hakeeper.agents.process import ProcessAgent, ProcessConfig
from hakeeper.errors import ConfigError, SessionStoreError
from hakeeper.model.address import HostPort
from hakeeper.model.cluster import Coordination
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.fence_round import (
    SCORE_REFUSED,
    ask_every,
    forgotten,
    promotion_score,
    refusal,
)
from hakeeper.sessions.position import Position, Role, most_up_to_date
from hakeeper.sessions.tls import PeerTls, peer_tls

log = logging.getLogger(__name__)

DEFAULT_SECRET_FILE = Path(Coordination().secret_file)
PARAMS = (
    ParamSpec("port", required=True, shortdesc="TCP port of the store on every node"),
    ParamSpec("nodes", required=True, shortdesc="table: cluster node name → its address"),
    ParamSpec("memory", default="64m", shortdesc="memory bound per node (LRU beyond)"),
    ParamSpec("stale_reads", default="false", shortdesc="replicas answer reads locally"),
    ParamSpec("stop_timeout", type="duration", default="10s", shortdesc="SIGTERM→SIGKILL"),
    ParamSpec("peer_port", shortdesc="TCP port of the peer listener (default: port + 1)"),
    ParamSpec(
        "secret_file",
        default=str(DEFAULT_SECRET_FILE),
        shortdesc="the cluster secret file ([coordination] secret_file)",
    ),
    ParamSpec("authfile", shortdesc="memcached -Y authfile clients must authenticate with"),
    ParamSpec("peer_tls_cert", shortdesc="peer TLS: node certificate (same path on every node)"),
    ParamSpec("peer_tls_key", shortdesc="peer TLS: its key (mode 0600)"),
    ParamSpec("peer_tls_ca", shortdesc="peer TLS: the CA that signed every node's certificate"),
)
TLS_PARAMS = ("peer_tls_cert", "peer_tls_key", "peer_tls_ca")
CONTROL_TIMEOUT = 2.0
SCORE_READ_TIMEOUT = 1.0


class SessionsAgent(ProcessAgent):
    def __init__(
        self,
        instance: str,
        config: ProcessConfig,
        *,
        state_dir: Path,
        port: int,
        nodes: Mapping[str, str],
        serve_args: tuple[str, ...],
        peer_port: int | None = None,
        secret_file: Path = DEFAULT_SECRET_FILE,
        tls: PeerTls | None = None,
    ) -> None:
        super().__init__(instance, config, state_dir=state_dir)
        self.port = port
        self.peer_port = peer_port if peer_port is not None else port + 1
        self.nodes = dict(nodes)
        self.serve_args = serve_args
        self.secret_file = secret_file
        self.tls = tls

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> SessionsAgent:
        """``context.secret_file`` (the cluster's ``[coordination] secret_file``, passed by
        the executor) is the default of ``params.secret_file``."""
        instance, params = context.instance, context.params
        check_params(f"sessions {instance}", params, PARAMS)
        port = params.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"sessions {instance}: params.port must be a TCP port number")
        nodes = params.get("nodes")
        if not isinstance(nodes, Mapping) or not nodes:
            raise ConfigError(
                f"sessions {instance}: params.nodes must map every node name to its address, "
                'e.g. { n1 = "10.0.0.1", n2 = "10.0.0.2", n3 = "10.0.0.3" }'
            )
        peer_port = params.get("peer_port", port + 1)
        if not isinstance(peer_port, int) or not 0 < peer_port < 65536 or peer_port == port:
            raise ConfigError(
                f"sessions {instance}: params.peer_port must be a TCP port number other than "
                "params.port"
            )
        default_secret = context.secret_file or DEFAULT_SECRET_FILE
        secret_file = Path(str(params.get("secret_file", default_secret)))
        if not secret_file.is_absolute():
            raise ConfigError(
                f"sessions {instance}: params.secret_file must be an absolute path, like "
                f"{DEFAULT_SECRET_FILE}"
            )
        serve_args: tuple[str, ...] = ("--memory", str(params.get("memory", "64m")))
        serve_args += ("--secret-file", str(secret_file))
        if "authfile" in params:
            authfile = Path(str(params["authfile"]))
            if not authfile.is_absolute():
                raise ConfigError(f"sessions {instance}: params.authfile must be an absolute path")
            serve_args += ("--authfile", str(authfile))
        tls_paths = [Path(str(params[name])) if name in params else None for name in TLS_PARAMS]
        if any(path is not None and not path.is_absolute() for path in tls_paths):
            raise ConfigError(f"sessions {instance}: params.peer_tls_* must be absolute paths")
        tls = peer_tls(*tls_paths)
        if tls is not None:
            serve_args += ("--peer-tls-cert", str(tls.cert_file), "--peer-tls-key")
            serve_args += (str(tls.key_file), "--peer-tls-ca", str(tls.ca_file))
        if str(params.get("stale_reads", "false")).lower() in ("true", "1", "yes"):
            serve_args += ("--stale-reads",)
        process_params: dict[str, object] = {"command": [sys.executable, "-V"]}
        if "stop_timeout" in params:
            process_params["stop_timeout"] = params["stop_timeout"]
        return cls(
            instance,
            ProcessConfig.from_params(process_params),
            state_dir=context.state_dir,
            port=port,
            nodes={str(k): str(v) for k, v in nodes.items()},
            serve_args=serve_args,
            peer_port=peer_port,
            secret_file=secret_file,
            tls=tls,
        )

    def meta_data(self) -> MetaData:
        return MetaData(
            name="sessions",
            shortdesc="hakeeper's replicated memcached-protocol session store",
            parameters=PARAMS,
        )

    # --- addresses ---------------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """Every node's peer address (the store's control and replication port)."""
        return [str(HostPort(host, self.peer_port)) for host in self.nodes.values()]

    def address_of(self, node: str) -> str:
        """The node's peer address, where the control calls go."""
        return str(HostPort(self._host(node), self.peer_port))

    def client_address_of(self, node: str) -> str:
        return str(HostPort(self._host(node), self.port))

    def _host(self, node: str) -> str:
        if node not in self.nodes:
            raise ConfigError(f"sessions {self.instance}: node {node!r} missing from params.nodes")
        return self.nodes[node]

    def argv_for(self, node: str) -> tuple[str, ...]:
        return (
            sys.executable,
            "-m",
            "hakeeper.sessions",
            "--listen",
            self.client_address_of(node),
            "--peer-listen",
            self.address_of(node),
            "--peers",
            ",".join(self.addresses),
            *self.serve_args,
        )

    def control_client(self, address: str, timeout: float = CONTROL_TIMEOUT) -> SessionClient:
        """A client for a node's peer port, proving the cluster secret (TLS if configured)."""
        ssl = self.tls.client_context() if self.tls is not None else None
        return SessionClient(address, timeout=timeout, secret_file=self.secret_file, ssl=ssl)

    # --- operations --------------------------------------------------------------------------

    async def start(self, req: OpRequest) -> OpResult:
        try:
            argv = self.argv_for(req.node)
        except ConfigError as exc:
            return log_op(self._result("start", OcfRc.ERR_CONFIGURED, str(exc)), node=req.node)
        self.config = dataclasses.replace(self.config, argv=argv)
        result = await super().start(req)
        if not result.ok:
            return result
        # Started means answering: wait (within the op's timeout) until the store does.
        deadline = time.monotonic() + max(1.0, req.timeout - result.duration)
        while True:
            try:
                await self._position(argv[argv.index("--peer-listen") + 1])
                return result
            except SessionStoreError as exc:
                if time.monotonic() > deadline:
                    return log_op(
                        self._result("start", OcfRc.ERR_GENERIC, f"store not answering: {exc}"),
                        node=req.node,
                    )
                await asyncio.sleep(0.1)

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        result = await super().monitor(req, probe=probe)
        if result.rc != OcfRc.SUCCESS:
            return result
        try:
            position = await self._position(self.address_of(req.node))
        except (SessionStoreError, ConfigError) as exc:
            return log_op(
                self._result(result.op, OcfRc.ERR_GENERIC, str(exc), interval=result.interval),
                node=req.node,
            )
        if position.role is Role.PRIMARY:
            result = self._result(result.op, OcfRc.RUNNING_PROMOTED, interval=result.interval)
        if probe:
            return result
        score = await self._promotion_score(req.node, position)
        return dataclasses.replace(result, promotion_score=score)

    async def _promotion_score(self, node: str, mine: Position) -> int:
        """The local node's promotion score (`fence_round.promotion_score`), from every other
        node's position, each read bounded by `SCORE_READ_TIMEOUT` (an unreachable node costs
        the monitor that much, once, as all are asked at once)."""
        me = self.address_of(node)
        # The primary's score needs no other node's answer.
        others = [] if mine.role is Role.PRIMARY else [a for a in self.addresses if a != me]
        answers = await ask_every(others, lambda a: self._position(a, SCORE_READ_TIMEOUT))
        return promotion_score(me, {**answers, me: mine}, len(self.addresses))

    async def promote(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        try:
            reason = await self._promote(req)
        except (SessionStoreError, ConfigError) as exc:
            reason = str(exc)
        rc = OcfRc.ERR_GENERIC if reason else OcfRc.SUCCESS
        result = make_result(
            "promote", rc, started=started, resource=self.instance, exit_reason=reason
        )
        if reason:
            # Not a candidate until a monitor finds otherwise: without this, the score the
            # scheduler chose this node by stands until the next monitor.
            result = dataclasses.replace(result, promotion_score=SCORE_REFUSED)
        return log_op(result, node=req.node, epoch=req.epoch)

    async def _promote(self, req: OpRequest) -> str:
        """'' once the local node is the primary of ``req.epoch``, else why not."""
        me = self.address_of(req.node)
        mine = await self._position(me)
        if mine.role is Role.PRIMARY and mine.log_epoch == req.epoch:
            return ""

        async def fence(address: str) -> Position:
            async with self.control_client(address) as client:
                return await client.fence(req.epoch)

        positions = await ask_every(self.addresses, fence)
        refused = refusal(me, positions, len(self.addresses))
        if refused:
            return refused
        empty = forgotten(positions, len(self.addresses))
        if empty:
            # Availability over what cannot be had back: the copies are gone either way.
            log.warning(
                "event=sessions.promoted_after_memory_loss node=%s restarted_empty=%s "
                'lost="writes that only the nodes restarted empty held, if any"',
                req.node,
                ",".join(empty),
            )
        best = most_up_to_date(positions)
        rank = (positions[best].log_epoch, positions[best].seq)
        if rank > (positions[me].log_epoch, positions[me].seq):
            async with self.control_client(best, CONTROL_TIMEOUT * 5) as source:
                log_epoch, seq, payload = await source.dump()
            async with self.control_client(me, CONTROL_TIMEOUT * 5) as target:
                await target.adopt(log_epoch, seq, payload)
        async with self.control_client(me) as client:
            await client.promote(req.epoch)
        return ""

    async def demote(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        try:
            async with self.control_client(self.address_of(req.node)) as c:
                await c.demote()
            reason = ""
        except (SessionStoreError, ConfigError) as exc:
            reason = str(exc)
        rc = OcfRc.ERR_GENERIC if reason else OcfRc.SUCCESS
        result = make_result(
            "demote", rc, started=started, resource=self.instance, exit_reason=reason
        )
        return log_op(result, node=req.node, epoch=req.epoch)

    async def _position(self, address: str, timeout: float = CONTROL_TIMEOUT) -> Position:
        async with self.control_client(address, timeout) as client:
            return await client.position()

    def _result(self, op: str, rc: int, reason: str = "", interval: float = 0.0) -> OpResult:
        return make_result(
            op,
            rc,
            started=time.monotonic(),
            resource=self.instance,
            exit_reason=reason,
            interval=interval,
        )
