"""Progress of long backup work, told to a callback (the CLI renders it with rich)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Action = Literal["write", "read", "verify"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Where one piece of work stands: objects and bytes done so far, of the totals when
    they are known (a writer learns an object's size only once it has read it)."""

    action: Action
    backup_id: str
    current: str | None
    objects_done: int
    objects_total: int
    bytes_done: int
    bytes_total: int | None


Progress = Callable[[ProgressEvent], None]


class ProgressCounter:
    """Counts objects and bytes of one piece of work and tells ``progress`` after each
    chunk and each finished object."""

    __slots__ = (
        "_action",
        "_backup_id",
        "_objects_total",
        "_progress",
        "bytes_done",
        "bytes_total",
        "objects_done",
    )

    def __init__(
        self,
        action: Action,
        backup_id: str,
        objects_total: int,
        bytes_total: int | None,
        progress: Progress | None,
    ) -> None:
        self._action: Action = action
        self._backup_id = backup_id
        self._objects_total = objects_total
        self._progress = progress
        self.bytes_total = bytes_total
        self.objects_done = 0
        self.bytes_done = 0

    def add_bytes(self, name: str, count: int) -> None:
        self.bytes_done += count
        self._tell(name)

    def object_done(self, name: str) -> None:
        self.objects_done += 1
        self._tell(name)

    def _tell(self, name: str) -> None:
        if self._progress is not None:
            self._progress(
                ProgressEvent(
                    self._action,
                    self._backup_id,
                    name,
                    self.objects_done,
                    self._objects_total,
                    self.bytes_done,
                    self.bytes_total,
                )
            )
