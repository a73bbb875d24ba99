"""A writer for the pre-vote partition test, run as a script inside the lab's client host.

It joins the embedded Raft group as a client and writes one key with a counter, one write
after another, for a given number of seconds; each write prints one JSON line: when it
ended (monotonic clock of this process), and whether it was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from hakeeper.coord.raft import RaftCoordinator
from hakeeper.errors import CoordError
from hakeeper.model.timing import PROFILES

PAUSE = 0.05  # between writes: ~20 a second, enough to see a stall of a fraction of one
WRITE_TIMEOUT = 10.0


async def write_for(peers: list[str], secret: Path, seconds: float) -> None:
    coord = await RaftCoordinator.open(
        peers, secret_file=secret, timing=PROFILES["fast"], ready_timeout=60.0,
        request_timeout=WRITE_TIMEOUT,
    )  # fmt: skip
    try:
        print(json.dumps({"ready": time.monotonic()}), flush=True)
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(
                    coord.put("prevote/counter", str(count).encode()), WRITE_TIMEOUT + 1
                )
                ok = True
            except (CoordError, TimeoutError):
                ok = False
            print(json.dumps({"at": time.monotonic(), "ok": ok}), flush=True)
            count += 1
            await asyncio.sleep(PAUSE)
    finally:
        await coord.close()


if __name__ == "__main__":
    asyncio.run(write_for(sys.argv[1].split(","), Path(sys.argv[2]), float(sys.argv[3])))
