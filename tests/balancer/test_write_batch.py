"""The write batch: writes of one loop pass go out together, in order, at its end."""

from __future__ import annotations

import asyncio

from hakeeper.balancer.write_batch import WriteBatch
from tests.balancer.conftest import FakeTransport


async def test_batched_writes_go_out_in_order_after_the_loop_pass() -> None:
    batch = WriteBatch(asyncio.get_running_loop())
    transport = FakeTransport()
    batch.write(transport, b"a")  # type: ignore[arg-type]
    batch.write(transport, b"b")  # type: ignore[arg-type]
    assert transport.written == []
    await asyncio.sleep(0)
    assert transport.written == [b"a", b"b"]


async def test_batched_data_for_a_transport_closed_meanwhile_is_dropped() -> None:
    batch = WriteBatch(asyncio.get_running_loop())
    transport = FakeTransport()
    batch.write(transport, b"a")  # type: ignore[arg-type]
    transport.closing = True
    batch.flush()
    assert transport.written == []
