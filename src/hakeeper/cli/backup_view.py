"""How backup, verify and restore show their work: a rich progress bar on stderr (objects
and bytes), so that stdout holds only the summary or the ``--json`` document."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hakeeper.backup.progress import ProgressEvent

err_console = Console(stderr=True, soft_wrap=True)


class ProgressView:
    """Feeds a rich progress bar from the backup library's progress events."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        key = f"{event.action} {event.backup_id}"
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._bar.add_task(key, total=event.bytes_total)
        self._bar.update(
            task,
            completed=event.bytes_done,
            total=event.bytes_total,
            description=f"{event.action} {event.objects_done}/{event.objects_total} objects",
        )


@contextlib.contextmanager
def progress_view(enabled: bool) -> Iterator[ProgressView | None]:
    """A progress view while the block runs (None when disabled, e.g. with ``--json``)."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        yield ProgressView(bar)
