"""The records a backup keeps: read in one revision, seeded back into a fresh key space, the
config guarded by its revision, and the cluster's identity made once."""

from __future__ import annotations

import pytest

from hakeeper.errors import CompareFailed
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.backup.cluster_fixtures import cluster_config, populated_store
from tests.fakes import LocalCoordinator


async def test_seeded_records_read_back_equal_in_a_fresh_key_space() -> None:
    store = await populated_store(cluster_config("/etc/hakeeper/secret"))
    before = await store.records().read()
    fresh = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    await fresh.records().seed(before, config_base=0, replace=False)
    after = await fresh.records().read()
    assert (after.config, after.runtime, after.events, after.identity) == (
        before.config, before.runtime, before.events, before.identity,
    )  # fmt: skip


async def test_a_config_applied_meanwhile_aborts_the_seed_with_nothing_written() -> None:
    store = await populated_store(cluster_config("/etc/hakeeper/secret"))
    records = await store.records().read()
    fresh = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    await fresh.publish_first_config("[cluster]\n")
    with pytest.raises(CompareFailed, match="nothing was restored"):
        await fresh.records().seed(records, config_base=0, replace=False)
    after = await fresh.records().read()
    assert after.runtime.empty
    assert after.events == ()
    assert after.config == "[cluster]\n"


async def test_the_cluster_identity_is_made_once() -> None:
    store = await populated_store(cluster_config("/etc/hakeeper/secret"))
    first = await store.records().identity()
    assert await store.records().identity() == first
    assert len(first) == 32
