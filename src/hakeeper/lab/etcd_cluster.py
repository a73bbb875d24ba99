"""A real etcd cluster on loopback: one ``etcd`` process per member, each with its own data
dir and log under ``base_dir``.

With ``tls=True`` every member serves client and peer traffic over TLS and requires a client
certificate (``--client-cert-auth``, peer TLS too), from a throwaway CA under ``base_dir/pki``
(`hakeeper.lab.etcd_pki`). With ``auth=True`` the cluster gets a root user and a user
``hakeeper`` whose role grants readwrite on ``prefix`` only, then ``auth enable``; the
passwords are random, in files of mode 0600 under ``base_dir/auth``; ``jwt=True`` makes etcd
issue signed JWTs (ES256, a throwaway key) instead of its default simple tokens.
`client()` connects with all of it, as a node would.

Offers the same methods as `hakeeper.lab.raft_cluster.RaftCluster` (names, endpoints, start,
leader, kill, stop, restart, pid, client, close) so the contract suite, the benchmark and the
demo need not know which engine runs. Only processes this object started are ever signalled,
always by PID; ``close()`` (also on ``__aexit__``) kills and reaps every one of them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.coord.etcd_json import b64, prefix_end
from hakeeper.errors import CoordError
from hakeeper.lab.etcd_pki import CertPair, KeyPair, LabCA, write_signing_key
from hakeeper.lab.processes import ManagedProcess, free_port

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
_SETUP_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
USER = "hakeeper"
ROLE = "hakeeper"


class EtcdCluster:
    backend = "etcd"

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: Path,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        host: str = "127.0.0.1",
        binary: str = "etcd",
        tls: bool = False,
        auth: bool = False,
        prefix: str = "/hakeeper/lab/",
        auth_token_ttl: int | None = None,
        jwt: bool = False,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"lab clusters stay on loopback; {host} is not 127.0.0.0/8")
        self.base_dir = base_dir
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.host = host
        self.binary = binary
        self.names = [f"e{i + 1}" for i in range(size)]
        self.endpoints: list[str] = []
        self._peer_urls: dict[str, str] = {}
        self._client_urls: dict[str, str] = {}
        self._token = ""
        self._procs: dict[str, ManagedProcess] = {}
        self._clients: list[EtcdCoordinator] = []
        self.tls = tls
        self.auth = auth
        self.prefix = prefix
        self.auth_token_ttl = auth_token_ttl
        self.jwt = jwt
        self._jwt_keys: KeyPair | None = None
        self.scheme = "https" if tls else "http"
        # Filled by start(): what a client of this cluster needs (None when not in use).
        self.ca_file: Path | None = None
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self.user: str | None = None
        self.password_file: Path | None = None
        self.root_password_file: Path | None = None
        self._ca: LabCA | None = None
        self._server_tls: dict[str, tuple[Path, Path]] = {}
        self._client_ssl: ssl.SSLContext | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, ready_timeout: float = 30.0, attempts: int = 3) -> None:
        """Start every member and wait until all report healthy.

        A port picked free can be taken before etcd binds it; then the whole cluster is
        started again on new ports (with a new token), up to ``attempts`` times.
        """
        if self.tls:
            self._make_pki()
        for attempt in range(1, attempts + 1):
            self._assign_ports()
            for name in self.names:
                self._launch(name, "new")
            try:
                await self._wait_healthy(ready_timeout)
                if self.auth:
                    await self._enable_auth()
                return
            except CoordError:
                died = [n for n, p in self._procs.items() if not p.running]
                await self._kill_all()
                if attempt == attempts or not died:
                    raise
                for name in self.names:  # a failed bootstrap leaves a half-made data dir
                    shutil.rmtree(self._dir(name) / "data", ignore_errors=True)

    async def client(self) -> EtcdCoordinator:
        """A connected coordinator on every member's endpoint; closed by `close()`."""
        coord = await EtcdCoordinator.open(
            self.endpoints,
            election_timeout=self.election_ms / 1000,
            heartbeat=self.heartbeat_ms / 1000,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            user=self.user,
            password_file=self.password_file,
            scope=self.prefix if self.auth else "",
        )
        self._clients.append(coord)
        return coord

    async def close(self) -> None:
        """Close every client, kill and reap every member still running, and remove their
        data dirs (their logs stay): etcd preallocates a 64 MB WAL segment and a spare per
        member, and a test suite that starts dozens of clusters kept ~22 GB of them until
        it ended, which filled a fresh machine's disk."""
        clients, self._clients = self._clients, []
        for coord in clients:
            await coord.close()
        await self._kill_all()
        for name in self.names:
            shutil.rmtree(self._dir(name) / "data", ignore_errors=True)

    async def __aenter__(self) -> EtcdCluster:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- faults ---------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        return proc.pid if proc is not None and proc.running else None

    def running(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.running

    def kill(self, name: str) -> None:
        """SIGKILL the member (a crash) and reap it."""
        self._proc(name).kill()

    def pause(self, name: str) -> None:
        """SIGSTOP the member: its sockets stay open but it answers nothing (a hung host)."""
        self._proc(name).signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._proc(name).signal(signal.SIGCONT)

    async def stop(self, name: str) -> None:
        await asyncio.to_thread(self._proc(name).kill)

    async def restart(self, name: str, ready_timeout: float = 30.0) -> None:
        """Start the member again on its data dir (``--initial-cluster-state existing``)."""
        await self.stop(name)
        self._launch(name, "existing")
        await self._wait_member(name, ready_timeout, require_health=False)

    async def member_add(self, name: str, ready_timeout: float = 30.0) -> None:
        """etcd's own way to grow (plain lab cluster): ``etcdctl member add``, then start the
        new member with ``--initial-cluster-state existing``; returns once it answers."""
        if self.tls or self.auth:
            raise ValueError("member_add drives the plain lab cluster (no TLS, no auth)")
        self._client_urls[name] = f"{self.scheme}://{self.host}:{free_port(self.host)}"
        self._peer_urls[name] = f"{self.scheme}://{self.host}:{free_port(self.host)}"
        await self._etcdctl("member", "add", name, f"--peer-urls={self._peer_urls[name]}")
        self.names.append(name)
        self.endpoints.append(self._client_urls[name])
        self._launch(name, "existing")
        await self._wait_member(name, ready_timeout, require_health=False)

    async def member_remove(self, name: str) -> None:
        """``etcdctl member remove`` of ``name`` (running or not); later clients skip it."""
        for line in (await self._etcdctl("member", "list")).splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) > 2 and fields[2] == name:
                await self._etcdctl("member", "remove", fields[0])
                break
        else:
            raise CoordError(f"etcd has no member {name!r}")
        self.endpoints.remove(self._client_urls[name])
        self.names.remove(name)

    async def _etcdctl(self, *args: str, timeout: float = 60.0) -> str:
        live = [self._client_urls[n] for n in self.names if self.running(n)]
        proc = await asyncio.create_subprocess_exec(
            "etcdctl", f"--endpoints={','.join(live)}", "--command-timeout=30s", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(timeout):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CoordError(f"etcdctl {' '.join(args)} did not finish in {timeout:g}s") from None
        if proc.returncode != 0:
            raise CoordError(f"etcdctl {' '.join(args)} failed: {out.decode(errors='replace')}")
        return out.decode()

    async def leader(self, timeout: float = 30.0) -> str:
        """The member every live member names as leader, and which says so itself."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._probe_session() as session:
            while loop.time() < deadline:
                found = await self._agreed_leader(session)
                if found is not None:
                    return found
                await asyncio.sleep(0.05)
        raise CoordError(f"etcd: no leader agreed within {timeout:g}s\n{self.log_tails()}")

    async def _agreed_leader(self, session: aiohttp.ClientSession) -> str | None:
        live = [n for n in self.names if self.running(n)]
        statuses = await asyncio.gather(*(self._status(session, n) for n in live))
        ids = {s[0]: n for n, s in zip(live, statuses, strict=True) if s is not None}
        leaders = {s[1] for s in statuses if s is not None}
        if len(ids) * 2 <= len(self.names) or len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    async def _status(self, session: aiohttp.ClientSession, name: str) -> tuple[str, str] | None:
        """(member_id, leader id) as the member reports them, or None."""
        try:
            async with session.post(
                self._client_urls[name] + "/v3/maintenance/status", json={}
            ) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return None
        if not isinstance(body, dict):
            return None
        member = str((body.get("header") or {}).get("member_id") or "")
        leader = str(body.get("leader") or "")
        return (member, leader) if member and leader and leader != "0" else None

    # --- internals ------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.base_dir / name

    def _proc(self, name: str) -> ManagedProcess:
        try:
            return self._procs[name]
        except KeyError:
            raise ValueError(f"no member {name!r} started; members: {self.names}") from None

    def _assign_ports(self) -> None:
        ports: set[int] = set()
        while len(ports) < 2 * len(self.names):
            ports.add(free_port(self.host))
        pool = sorted(ports)
        for i, name in enumerate(self.names):
            self._client_urls[name] = f"{self.scheme}://{self.host}:{pool[2 * i]}"
            self._peer_urls[name] = f"{self.scheme}://{self.host}:{pool[2 * i + 1]}"
        self.endpoints = [self._client_urls[n] for n in self.names]
        # A fresh token per start: a member of an old cluster still on these ports is refused.
        self._token = f"hakeeper-lab-{uuid.uuid4().hex}"

    def _argv(self, name: str, state: str) -> list[str]:
        member_dir = self._dir(name)
        initial = ",".join(f"{n}={self._peer_urls[n]}" for n in self.names)
        return [*self._base_argv(name, state, member_dir, initial), *self._security_argv(name)]

    def _base_argv(self, name: str, state: str, member_dir: Path, initial: str) -> list[str]:
        return [
            self.binary,
            "--name", name,
            "--data-dir", str(member_dir / "data"),
            "--listen-client-urls", self._client_urls[name],
            "--advertise-client-urls", self._client_urls[name],
            "--listen-peer-urls", self._peer_urls[name],
            "--initial-advertise-peer-urls", self._peer_urls[name],
            "--initial-cluster", initial,
            "--initial-cluster-token", self._token,
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", str(member_dir / "etcd.log"),
        ]  # fmt: skip

    def _security_argv(self, name: str) -> list[str]:
        argv: list[str] = []
        if self.tls and self.ca_file is not None:
            cert, key = self._server_tls[name]
            ca = str(self.ca_file)
            argv += [
                "--client-cert-auth", "--trusted-ca-file", ca,
                "--cert-file", str(cert), "--key-file", str(key),
                "--peer-client-cert-auth", "--peer-trusted-ca-file", ca,
                "--peer-cert-file", str(cert), "--peer-key-file", str(key),
            ]  # fmt: skip
        if self.jwt:
            if self._jwt_keys is None:
                self._jwt_keys = write_signing_key(self.base_dir / "jwt")
            ttl = self.auth_token_ttl if self.auth_token_ttl is not None else 300
            argv += [
                "--auth-token",
                f"jwt,pub-key={self._jwt_keys.public_file},priv-key={self._jwt_keys.private_file},"
                f"sign-method=ES256,ttl={ttl}s",
            ]
        elif self.auth_token_ttl is not None:
            argv += ["--auth-token-ttl", str(self.auth_token_ttl)]
        return argv

    # --- TLS and auth -----------------------------------------------------------------------

    def _make_pki(self) -> None:
        """The CA, one certificate per member, and the client certificate (made once)."""
        if self._ca is not None:
            return
        ca = LabCA(self.base_dir / "pki")
        for name in self.names:
            pair = ca.server(name, self.host)
            self._server_tls[name] = (pair.cert_file, pair.key_file)
        client = ca.client("client")
        self._ca = ca
        self.ca_file, self.cert_file, self.key_file = ca.ca_file, client.cert_file, client.key_file
        context = ssl.create_default_context(cafile=str(ca.ca_file))
        context.load_cert_chain(str(client.cert_file), str(client.key_file))
        self._client_ssl = context

    def issue_client_certificate(self, stem: str, common_name: str | None = None) -> CertPair:
        """Another client certificate from this cluster's CA (``tls=True`` only)."""
        if self._ca is None:
            raise ValueError("this lab cluster has no CA: start it with tls=True")
        return self._ca.client(stem, common_name)

    def _probe_session(
        self, timeout: aiohttp.ClientTimeout = _PROBE_TIMEOUT
    ) -> aiohttp.ClientSession:
        """A session for health probes and set-up: trusts the lab CA, shows the client
        certificate (with ``tls=True``)."""
        connector = aiohttp.TCPConnector(ssl=self._client_ssl or True)
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def _enable_auth(self) -> None:
        """Root, a user limited to ``prefix`` by its role, then ``auth enable`` — through the
        gateway, so no password ever stands in a command line."""
        auth_dir = self.base_dir / "auth"
        auth_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        root_pw, user_pw = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.root_password_file = _write_secret(auth_dir / "root.password", root_pw)
        key = self.prefix.encode()
        steps: list[tuple[str, dict[str, Any]]] = [
            ("/v3/auth/user/add", {"name": "root", "password": root_pw}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/role/add", {"name": ROLE}),
            (
                "/v3/auth/role/grant",
                {
                    "name": ROLE,
                    "perm": {
                        "permType": "READWRITE",
                        "key": b64(key),
                        "range_end": b64(prefix_end(key)),
                    },
                },
            ),
            ("/v3/auth/user/add", {"name": USER, "password": user_pw}),
            ("/v3/auth/user/grant", {"user": USER, "role": ROLE}),
            ("/v3/auth/enable", {}),
        ]
        endpoint = self.endpoints[0]
        async with self._probe_session(_SETUP_TIMEOUT) as session:
            for path, body in steps:
                await _setup_call(session, endpoint + path, body)
        self.user = USER
        self.password_file = _write_secret(auth_dir / "hakeeper.password", user_pw)

    def _launch(self, name: str, state: str) -> None:
        self._dir(name).mkdir(parents=True, exist_ok=True)
        proc = ManagedProcess(name, self._argv(name, state), self._dir(name) / "stdout.log")
        proc.start()
        self._procs[name] = proc

    async def _wait_healthy(self, timeout: float) -> None:
        await asyncio.gather(*(self._wait_member(n, timeout) for n in self.names))

    async def _wait_member(self, name: str, timeout: float, *, require_health: bool = True) -> None:
        """Until GET /health says true (or, for a rejoining member, until it answers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._probe_session() as session:
            while loop.time() < deadline:
                if not self.running(name):
                    raise CoordError(f"etcd member {name} exited:\n{self._tail(name)}")
                if await self._healthy(session, name, require_health):
                    return
                await asyncio.sleep(0.1)
        raise CoordError(f"etcd member {name} not healthy within {timeout:g}s:\n{self._tail(name)}")

    async def _healthy(self, session: aiohttp.ClientSession, name: str, strict: bool) -> bool:
        try:
            async with session.get(self._client_urls[name] + "/health") as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return False
        return not strict or (isinstance(body, dict) and str(body.get("health")) == "true")

    async def _kill_all(self) -> None:
        for proc in self._procs.values():
            await asyncio.to_thread(proc.kill)

    def _tail(self, name: str, lines: int = 20) -> str:
        proc = self._procs.get(name)
        zap = self._dir(name) / "etcd.log"
        try:
            log = "\n".join(zap.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            log = "(no etcd.log)"
        out = proc.log_tail(lines) if proc is not None else ""
        return f"--- {name} etcd.log ({zap})\n{log}\n--- {name} stdout/stderr\n{out}"

    def log_tails(self) -> str:
        """The end of every member's logs, for a failing test's message."""
        return "\n".join(self._tail(n) for n in self.names)


def _write_secret(path: Path, value: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(value + "\n")
    return path


async def _setup_call(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    """One auth set-up request; `CoordError` with etcd's answer (never the body: it may hold
    a password) if it is refused."""
    async with session.post(url, json=body) as response:
        answer = await response.json(content_type=None)
    if not isinstance(answer, dict) or "message" in answer or "error" in answer:
        message = answer.get("message") if isinstance(answer, dict) else answer
        raise CoordError(f"etcd lab: {url.rsplit('/v3', 1)[-1]} refused: {message}")
