from __future__ import annotations

from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.manifest import Trust
from hakeeper.backup.progress import ProgressEvent
from hakeeper.backup.reader import open_backup
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, SAMPLE, MemorySource


async def test_a_writer_reports_objects_and_bytes_as_they_pass(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    events: list[ProgressEvent] = []
    summary = await write_backup(
        dir_store, source, cluster=CLUSTER, coord_revision=1, progress=events.append
    )
    assert {e.backup_id for e in events} == {summary.backup_id}
    assert all(e.action == "write" and e.objects_total == len(SAMPLE) for e in events)
    assert [e.bytes_done for e in events] == sorted(e.bytes_done for e in events)
    assert [e.objects_done for e in events] == sorted(e.objects_done for e in events)
    last = events[-1]
    assert (last.objects_done, last.bytes_done) == (len(SAMPLE), summary.bytes)
    done = [e.current for e in events if e.objects_done > 0]
    assert done[0] == next(iter(SAMPLE))


async def test_a_writer_reports_an_empty_object_as_done(dir_store: DirectoryStore) -> None:
    events: list[ProgressEvent] = []
    await write_backup(
        dir_store,
        MemorySource({"empty": b""}),
        cluster=CLUSTER,
        coord_revision=1,
        progress=events.append,
    )
    assert [(e.current, e.objects_done, e.bytes_done) for e in events] == [("empty", 1, 0)]


async def test_a_reader_reports_objects_and_bytes_read(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    summary = await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=1)
    events: list[ProgressEvent] = []
    reader = await open_backup(dir_store, summary.backup_id, Trust(), progress=events.append)
    for name in SAMPLE:
        async for _ in reader.read_object(name):
            pass
    assert all(e.action == "read" and e.bytes_total == summary.bytes for e in events)
    last = events[-1]
    assert (last.objects_done, last.objects_total, last.bytes_done) == (4, 4, summary.bytes)
