"""Which lab node leads the embedded Raft now, asked from inside the lab's client namespace.

The VIP benchmark and the lab test crash a holder that is, or is not, the Raft leader. The
engine names its leader only to its peers and clients, so a short-lived non-voting client in
the lab network asks it: ``python -m hakeeper.lab.raft_leader CONFIG`` prints the node name.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hakeeper.config.loader import load_spec
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.coord.raft_peers import member_address
from hakeeper.errors import CoordError, HakeeperError
from hakeeper.lab.netns_lab import NetnsLab
from hakeeper.runtime.connect import open_coordinator

PROBE_TIMEOUT = 30.0


async def leader_of(config: Path, timeout: float = PROBE_TIMEOUT) -> str:
    """The name of the node whose engine leads, once a commit has gone through it."""
    spec = load_spec(config)
    coord = await open_coordinator(spec, ready_timeout=timeout)
    try:
        if not isinstance(coord, RaftCoordinator):
            raise HakeeperError(f"{config}: only the embedded raft backend has a leader to name")
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await coord.has_quorum():
                address = coord.consensus_leader()
                for node in spec.nodes:
                    if address == member_address(node):
                        return node.name
            await asyncio.sleep(0.05)
        raise CoordError(f"no raft leader within {timeout:g}s: is a majority of the lab up?")
    finally:
        await coord.close()


def raft_leader(lab: NetnsLab, timeout: float = PROBE_TIMEOUT) -> str:
    """Ask from the lab's client namespace (needs root, like the lab)."""
    argv = [sys.executable, "-m", "hakeeper.lab.raft_leader", str(lab.config_path)]
    done = lab.exec("client", argv, timeout=timeout + 15.0)
    if done.returncode != 0:
        raise HakeeperError(f"raft leader probe failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


if __name__ == "__main__":
    print(asyncio.run(leader_of(Path(sys.argv[1]))))
