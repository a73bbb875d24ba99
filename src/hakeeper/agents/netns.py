"""Work inside a named network namespace from one thread, without moving the whole process.

``setns(2)`` changes the namespace of the calling thread only. `entered` moves the calling
thread into ``/run/netns/<name>`` for a block and back afterwards; sockets created inside
the block belong to that namespace for their whole life, wherever they are used later.
Meant for worker threads (`run_in`): an event loop's own thread must never change namespace.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from hakeeper.errors import ConfigError

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)
P = ParamSpec("P")
T = TypeVar("T")


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into network namespace {what}: {os.strerror(err)}")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """The calling thread inside network namespace ``name`` (None: stay) for the block.

    ConfigError when the namespace does not exist; OSError (EPERM) without CAP_SYS_ADMIN.
    """
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(netns_path(name), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"network namespace {name!r} does not exist (no {netns_path(name)}); "
                "create it first or drop the netns parameter"
            ) from exc
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own, "of this thread (restoring)")
    finally:
        os.close(own)


def call_in(name: str | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` on the calling thread inside namespace ``name``."""
    with entered(name):
        return fn(*args, **kwargs)


def call_in_thread(name: str | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` inside namespace ``name`` on a short-lived thread, blocking until done.

    ``/proc/<pid>/ns/net`` shows the namespace of a process's *main* thread: a main thread
    that entered a lab namespace, even briefly, looks like a process of that namespace to
    anything that kills "every process of the host" (the lab fence device). Sync code that
    may run on a main thread enters namespaces through this instead of `call_in`.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(functools.partial(call_in, name, fn, *args, **kwargs)).result()


async def run_in(name: str | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` on a worker thread inside namespace ``name``; the loop thread stays put."""
    # Imported here: a fence agent uses this module without a loop, and asyncio's import
    # alone would add tens of milliseconds to every fence.
    import asyncio

    return await asyncio.to_thread(functools.partial(call_in, name, fn, *args, **kwargs))


def namespace_inode(name: str) -> int:
    """The inode that identifies namespace ``name`` (compare with ``/proc/<pid>/ns/net``)."""
    return os.stat(netns_path(name)).st_ino
