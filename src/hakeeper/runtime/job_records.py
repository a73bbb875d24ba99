"""The records of periodic controller jobs (scheduled backups, drills) in the key space.

Handed out by `hakeeper.runtime.store.ClusterStore.jobs`. Only the controller writes them,
guarded by its term, so that one run per period holds for the whole cluster and a deposed
controller's late write is refused; `status` reads them for its warnings.
"""

from __future__ import annotations

from hakeeper.coord.base import Coordinator, Put
from hakeeper.model.records import JobRecord
from hakeeper.runtime.election import term_guard
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import DECODE_ERRORS, decode_job, encode_job


class JobBook:
    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self._coord = coord
        self._keys = keys

    async def records(self) -> dict[str, JobRecord]:
        """Every job's record, by name; a torn record is left out (the job runs again)."""
        prefix = self._keys.jobs
        found: dict[str, JobRecord] = {}
        for kv in await self._coord.range(prefix):
            name = kv.key[len(prefix) :]
            try:
                found[name] = decode_job(kv.value, name)
            except DECODE_ERRORS:
                continue
        return found

    async def write(self, term: int, record: JobRecord) -> bool:
        """The controller's write, guarded by its ``term``; False when the term has ended."""
        result = await self._coord.txn(
            [term_guard(self._keys, term)], [Put(self._keys.job(record.name), encode_job(record))]
        )
        return result.succeeded
