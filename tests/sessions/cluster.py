"""Three real store processes on 127.0.0.x and a test-side controller that fails them over.

The controller does what the cluster runtime does for a promotable clone: take a new epoch,
fence a majority of the live nodes with it (from then on they refuse the old primary),
read their positions and promote the most up-to-date one (highest ``(log_epoch, seq)``).
Nodes are named by their client addresses here; the controller speaks to each one's peer
port (`control`) with the test directory's cluster secret, as the resource agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from hakeeper.errors import SessionStoreError
from hakeeper.lab.processes import ManagedProcess, free_port
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.position import Position, Role, most_up_to_date
from hakeeper.sessions.tls import PeerTls
from tests.sessions.servers import cluster_secret, start_store, wait_store

CONTROL_TIMEOUT = 2.0


@dataclass
class StoreCluster:
    tmp: Path
    hosts: tuple[str, ...] = ("127.0.0.31", "127.0.0.32", "127.0.0.33")
    write_timeout: float = 1.0
    extra: tuple[str, ...] = ()
    addresses: list[str] = field(default_factory=list)
    peer_addresses: dict[str, str] = field(default_factory=dict)  # client address → peer
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    epoch: int = 0
    primary: str | None = None
    restarts: int = 0
    tls: PeerTls | None = None  # TLS on the peer link; the nodes get its files too
    # One client port and one peer port on every host, as the resource agent lays them out.
    same_ports: bool = False

    def start(self) -> None:
        if self.same_ports:
            port, peer_port = free_port(self.hosts[0]), free_port(self.hosts[0])
            self.addresses = [f"{host}:{port}" for host in self.hosts]
            self.peer_addresses = {f"{host}:{port}": f"{host}:{peer_port}" for host in self.hosts}
        else:
            self.addresses = [f"{host}:{free_port(host)}" for host in self.hosts]
            self.peer_addresses = {
                address: f"{host}:{free_port(host)}"
                for host, address in zip(self.hosts, self.addresses, strict=True)
            }
        for address in self.addresses:
            self._launch(address, wait=False)
        for address in self.addresses:
            wait_store(self.procs[address], address)

    def _launch(self, address: str, wait: bool = True) -> None:
        name = f"store-{address.replace(':', '-')}-{self.restarts}"
        self.restarts += 1
        self.procs[address] = start_store(
            self.tmp,
            name,
            address,
            peers=list(self.peer_addresses.values()),
            peer_address=self.peer_addresses[address],
            epoch=self.epoch,
            extra=("--write-timeout", str(self.write_timeout), *self.extra, *self._tls_args()),
            wait=wait,
        )

    def _tls_args(self) -> tuple[str, ...]:
        tls = self.tls
        if tls is None:
            return ()
        return (
            *("--peer-tls-cert", str(tls.cert_file), "--peer-tls-key", str(tls.key_file)),
            *("--peer-tls-ca", str(tls.ca_file)),
        )

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()

    # --- faults ------------------------------------------------------------------------------

    def kill(self, address: str) -> None:
        self.procs[address].kill()

    def restart(self, address: str) -> None:
        """A crashed node comes back empty, knowing the current epoch (its assignment's)."""
        self.procs[address].kill()
        self._launch(address)

    def freeze(self, address: str) -> None:
        self.procs[address].signal(signal.SIGSTOP)

    def thaw(self, address: str) -> None:
        self.procs[address].signal(signal.SIGCONT)

    # --- controller --------------------------------------------------------------------------

    @property
    def secret_file(self) -> Path:
        return cluster_secret(self.tmp)

    def control(self, address: str, timeout: float = CONTROL_TIMEOUT) -> SessionClient:
        """A client on the peer port of the node serving clients on ``address``."""
        return SessionClient(
            self.peer_addresses[address],
            timeout=timeout,
            secret_file=self.secret_file,
            ssl=self.tls.client_context() if self.tls is not None else None,
        )

    async def position(self, address: str) -> Position:
        async with self.control(address) as client:
            return await client.position()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[StoreCluster]:
        """Started, the first node promoted, every replica caught up; closed on the way out."""
        try:
            await asyncio.to_thread(self.start)
            await self.promote_first()
            await self.wait_replicated()
            yield self
        finally:
            self.close()

    async def promote_first(self) -> None:
        self.epoch = 1
        self.primary = self.addresses[0]
        async with self.control(self.primary) as client:
            await client.promote(self.epoch)

    async def fail_over(self, lost: str) -> str:
        """Fence the others with a new epoch and promote the most up-to-date of them."""
        epoch = self.epoch + 1
        positions: dict[str, Position] = {}
        for address in self.addresses:
            if address == lost:
                continue
            try:
                async with self.control(address) as client:
                    positions[address] = await client.fence(epoch)
            except SessionStoreError:
                continue
        if len(positions) < len(self.addresses) // 2 + 1:
            raise RuntimeError(f"cannot fence a majority for epoch {epoch}: {positions}")
        chosen = most_up_to_date(positions)
        async with self.control(chosen) as client:
            await client.promote(epoch)
        self.epoch = epoch
        self.primary = chosen
        return chosen

    async def wait_replicated(self, timeout: float = 15.0) -> None:
        """Until every node is at the primary's epoch (caught up by snapshot or stream)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                positions = [await self.position(a) for a in self.addresses]
                if all(p.log_epoch == self.epoch for p in positions) and any(
                    p.role is Role.PRIMARY for p in positions
                ):
                    return
            except SessionStoreError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"nodes not caught up with epoch {self.epoch}")
            await asyncio.sleep(0.1)
