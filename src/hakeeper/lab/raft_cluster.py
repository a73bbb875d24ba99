"""A real embedded-Raft coordination cluster on loopback: one process per member.

Each member is ``python -m hakeeper coord member`` with its own data dir and log. Used by the
contract suite, the failover benchmark and the demo; offers the same methods as
`hakeeper.lab.etcd_cluster.EtcdCluster` so callers need not know which engine runs.
Members authenticate each other with a cluster secret: the one given, else one of the
cluster's own in ``base_dir``.
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
        self.member_secret_files = {n: base_dir / f"{n}.secret" for n in self.names}
        for copy in self.member_secret_files.values():
            copy.touch(mode=0o600)  # private before the secret is in it
            copy.chmod(0o600)
            shutil.copyfile(self.secret_file, copy)
        self.endpoints = [f"{host}:{free_port(host)}" for _ in self.names]
        self._address = dict(zip(self.names, self.endpoints, strict=True))
        self._procs = {name: self._member(name) for name in self.names}
        self._clients: list[RaftCoordinator] = []

    def _member(self, name: str) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "hakeeper", "coord", "member",
            "--address", self._address[name],
            "--peers", ",".join(self.endpoints),
            "--data-dir", str(self.base_dir / name),
            "--profile", self.timing.name,
            "--secret-file", str(self.member_secret_files[name]),
        ]  # fmt: skip
        return ManagedProcess(name, argv, self.base_dir / f"{name}.log")

    async def start(self, ready_timeout: float = 30.0) -> None:
        for proc in self._procs.values():
            proc.start()
        client = await self.client(ready_timeout)
        if not await client.has_quorum():
            raise CoordError(f"raft cluster did not form:\n{self._tails()}")

    async def client(self, ready_timeout: float = 30.0) -> RaftCoordinator:
        """A connected non-voting client on every member; closed by `close()`."""
        try:
            coord = await RaftCoordinator.open(
                self.endpoints,
                timing=self.timing,
                secret_file=self.secret_file,
                ready_timeout=ready_timeout,
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
