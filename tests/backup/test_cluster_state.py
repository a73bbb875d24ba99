"""What a backup of a cluster holds: every kept record from one read through the cluster
store, secrets only by reference, session stores through the seam at their epoch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hakeeper.backup.cluster_state import (
    CONFIG_OBJECT,
    EVENTS_OBJECT,
    RUNTIME_OBJECT,
    RuntimeDoc,
    collect_cluster,
    decode_cluster_objects,
)
from hakeeper.backup.keys import load_keyring, write_key_file
from hakeeper.backup.session_seam import SessionReseeder, SessionSnapshotter
from hakeeper.backup.writer import write_backup
from hakeeper.config.secret_file import write_secret_file
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.keys import KeySpace
from tests.backup.cluster_fixtures import MemorySessions, cluster_config, populated_store
from tests.backup.conftest import read_back
from tests.fakes import LocalCoordinator


async def test_collect_keeps_every_record_and_decodes_back_equal(tmp_path: Path) -> None:
    store = await populated_store(cluster_config(tmp_path / "secret"))
    content = await collect_cluster(store, "prod")
    before = await store.records().read()
    back = decode_cluster_objects(content.cluster_objects, content.identity.cluster_id, 0)
    assert back.config == before.config
    assert back.runtime == before.runtime
    assert back.events == before.events
    assert back.runtime.count() == 5


async def test_no_secret_value_is_in_any_object_of_a_backup(tmp_path: Path) -> None:
    from hakeeper.backup.dir_store import DirectoryStore

    secret_path = tmp_path / "secret"
    write_secret_file(secret_path)
    secret = secret_path.read_bytes().strip()
    key_path = tmp_path / "backup.key"
    write_key_file(key_path)
    key_text = key_path.read_bytes().strip()
    store = await populated_store(cluster_config(secret_path))
    content = await collect_cluster(store, "prod")
    backups = DirectoryStore(tmp_path / "backups")
    summary = await write_backup(
        backups, content, cluster=content.identity, coord_revision=content.revision,
        keyring=load_keyring(key_path),
    )  # fmt: skip
    objects = await read_back(backups, summary.backup_id, load_keyring(key_path))
    assert set(objects) == {CONFIG_OBJECT, RUNTIME_OBJECT, EVENTS_OBJECT}
    stored = b"".join(p.read_bytes() for p in backups.root.rglob("*") if p.is_file())
    for data in (*objects.values(), stored):
        assert secret not in data
        assert key_text not in data
    assert str(secret_path).encode() in objects[CONFIG_OBJECT]


async def test_session_stores_are_objects_with_their_epoch_in_the_manifest(
    tmp_path: Path,
) -> None:
    sessions = MemorySessions({"web": b"a=1\nb=2\n"}, {"web": 7})
    snapshotter: SessionSnapshotter = sessions
    reseeder: SessionReseeder = sessions  # the fake satisfies both protocols
    assert reseeder is snapshotter
    store = await populated_store(cluster_config(tmp_path / "secret"))
    content = await collect_cluster(store, "prod", snapshotter)
    assert content.epochs == {"sessions/web": 7}
    assert "sessions/web" in content.object_names()
    data = b"".join([c async for c in content.chunks("sessions/web")])
    assert data == b"a=1\nb=2\n"


async def test_writers_during_a_backup_never_give_a_torn_copy(tmp_path: Path) -> None:
    """Writers flip two nodes' flags one after the other while backups are taken: each
    backup's flags are the state after some prefix of the acknowledged writes."""
    store = await populated_store(cluster_config(tmp_path / "secret"))
    states: list[dict[str, bool]] = [{"n1": False, "n2": True}]  # n2 standby from the fixture

    async def writer() -> None:
        for i in range(1, 61):
            for node in ("n1", "n2"):
                await store.set_node_flags(node, NodeFlags(standby=bool(i % 2)))
                states.append(states[-1] | {node: bool(i % 2)})
                await asyncio.sleep(0)

    async def backups() -> list[dict[str, bool]]:
        seen = []
        for _ in range(30):
            content = await collect_cluster(store, "prod")
            flags = RuntimeDoc.model_validate_json(
                content.cluster_objects[RUNTIME_OBJECT]
            ).node_flags
            seen.append({n: n in flags and flags[n].standby for n in ("n1", "n2")})
            await asyncio.sleep(0)
        return seen

    _, seen = await asyncio.gather(writer(), backups())
    assert all(s in states for s in seen)
    assert len({tuple(sorted(s.items())) for s in seen}) > 1  # the writes did interleave


async def test_a_record_that_does_not_decode_is_left_out_and_named(tmp_path: Path) -> None:
    # One torn event must not stop every scheduled backup: the cluster leaves it out where
    # it reads it, and so does the backup, saying so.
    coord = LocalCoordinator()
    store = await populated_store(cluster_config(tmp_path / "secret"), coord=coord)
    torn = f"{KeySpace('prod').events}{0:016d}-foreign-0"
    await coord.put(torn, b"{torn")
    content = await collect_cluster(store, "prod")
    assert [key for key, _ in content.refused] == [torn]
    back = decode_cluster_objects(content.cluster_objects, content.identity.cluster_id, 0)
    assert len(back.events) == 1
    assert back.runtime.count() == 5
