"""The seam between backups and the session stores, as structural protocols.

The session store (layer 7, `hakeeper.sessions`) takes a consistent snapshot of one store at
one epoch and sequence, and reseeds a store from one; backups (also layer 7) must not import
it, so they name only these shapes. The CLI (layer 8) hands the real implementations in; a
session store's classes satisfy them without importing this module. A backup names each
store's object ``sessions/<store>`` and records the store's epoch in its manifest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol


class StoreSnapshot(Protocol):
    """One session store, taken at one epoch and sequence."""

    @property
    def epoch(self) -> int: ...

    @property
    def seq(self) -> int: ...

    @property
    def keys(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The snapshot's bytes, opaque to backups."""
        ...


class SessionSnapshotter(Protocol):
    def store_names(self) -> Sequence[str]:
        """The session stores to back up, e.g. ``("web",)``."""
        ...

    async def snapshot(self, store: str) -> StoreSnapshot: ...


class SessionReseeder(Protocol):
    async def reseed(self, store: str, epoch: int, chunks: AsyncIterator[bytes]) -> int:
        """Load ``store`` from a snapshot's bytes at ``epoch``; the number of keys loaded."""
        ...


def session_object(store: str) -> str:
    """The backup object that holds session store ``store``."""
    return f"sessions/{store}"


SESSION_PREFIX = "sessions/"
