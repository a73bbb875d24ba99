"""A real embedded-Raft coordination cluster on loopback: one process per member.

Each member is ``python -m hakeeper coord member`` with its own data dir and log. Used by the
contract suite, the failover benchmark and the demo; offers the same methods as
`hakeeper.lab.etcd_cluster.EtcdCluster` so callers need not know which engine runs.
Members authenticate each other with a cluster secret: the one given, else one of the
cluster's own in ``base_dir``. The group can grow and shrink: `start_learner` starts a new
member that joins as a learner (``coord member --join``) for a client's ``add_member``, and
`forget` drops a removed member from the peer list later clients are given.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from hakeeper.coord.raft import RaftCoordinator
from hakeeper.errors import CoordError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.processes import ManagedProcess, free_port
from hakeeper.model.timing import PROFILES, TimingProfile


class RaftCluster:
    backend = "raft"

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: Path,
        timing: TimingProfile = PROFILES["default"],
        host: str = "127.0.0.1",
        secret_file: Path | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.timing = timing
        self.secret_file = secret_file if secret_file is not None else lab_secret_file(base_dir)
        self.names = [f"m{i + 1}" for i in range(size)]
        # Each member holds its own copy, as on real hosts (rotation edits them one by one).
        self._host = host
        self.member_secret_files: dict[str, Path] = {}
        for name in self.names:
            self._copy_secret(name)
        self.endpoints = [f"{host}:{free_port(host)}" for _ in self.names]
        self._address = dict(zip(self.names, self.endpoints, strict=True))
        self._procs = {name: self._member(name) for name in self.names}
        self._clients: list[RaftCoordinator] = []

    def _copy_secret(self, name: str) -> None:
        # Each member holds its own copy, as on real hosts (rotation edits them one by one).
        copy = self.member_secret_files[name] = self.base_dir / f"{name}.secret"
        copy.touch(mode=0o600)  # private before the secret is in it
        copy.chmod(0o600)
        shutil.copyfile(self.secret_file, copy)

    def _member(self, name: str, *, join: bool = False) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "hakeeper", "coord", "member",
            "--address", self._address[name],
            "--peers", ",".join(self.endpoints),
            "--data-dir", str(self.base_dir / name),
            "--profile", self.timing.name,
            "--secret-file", str(self.member_secret_files[name]),
            *(["--join"] if join else []),
        ]  # fmt: skip
        return ManagedProcess(name, argv, self.base_dir / f"{name}.log")

    def address(self, name: str) -> str:
        return self._address[name]

    def start_learner(self) -> str:
        """Start a new member with a fresh data directory as a learner; return its name.
        It votes once a client's ``add_member(cluster.address(name))`` has committed."""
        name = f"m{len(self._address) + 1}"
        self._copy_secret(name)
        self._address[name] = f"{self._host}:{free_port(self._host)}"
        self.names.append(name)
        self.endpoints.append(self._address[name])
        self._procs[name] = self._member(name, join=True)
        self._procs[name].start()
        return name

    def forget(self, name: str) -> None:
        """Leave a removed member out of the peer list given to later clients (its process,
        data and restart command stay, to test what a removed member can do)."""
        if name in self.names:
            self.names.remove(name)
            self.endpoints.remove(self._address[name])

    async def start(self, ready_timeout: float = 30.0) -> None:
        for proc in self._procs.values():
            proc.start()
        client = await self.client(ready_timeout)
        if not await client.has_quorum():
            raise CoordError(f"raft cluster did not form:\n{self._tails()}")

    async def client(
        self, ready_timeout: float = 30.0, request_timeout: float = 5.0
    ) -> RaftCoordinator:
        """A connected non-voting client on every member; closed by `close()`."""
        try:
            coord = await RaftCoordinator.open(
                self.endpoints,
                timing=self.timing,
                secret_file=self.secret_file,
                ready_timeout=ready_timeout,
                request_timeout=request_timeout,
            )
        except CoordError as exc:
            raise CoordError(f"{exc}\nmember logs:\n{self._tails()}") from exc
        self._clients.append(coord)
        return coord

    async def leader(self, timeout: float = 30.0) -> str:
        """Name of the member that leads now, once a commit has gone through it."""
        probe = self._clients[0] if self._clients else await self.client()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await probe.has_quorum():
                address = probe.consensus_leader()
                for name, addr in self._address.items():
                    if addr == address and self._procs[name].running:
                        return name
            await asyncio.sleep(0.05)
        raise CoordError(f"no raft leader within {timeout}s:\n{self._tails()}")

    def pid(self, name: str) -> int | None:
        return self._procs[name].pid

    def running(self, name: str) -> bool:
        return self._procs[name].running

    def kill(self, name: str) -> None:
        self._procs[name].kill()

    async def stop(self, name: str) -> None:
        await asyncio.to_thread(self._procs[name].kill)

    async def restart(self, name: str) -> None:
        await self.stop(name)
        self._procs[name].start()

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()
        for proc in self._procs.values():
            await asyncio.to_thread(proc.kill)

    async def __aenter__(self) -> RaftCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _tails(self) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail()}" for n, p in self._procs.items())
