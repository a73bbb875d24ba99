"""PySyncObj, imported once, with its process-wide side effect undone and its apply guarded.

``pysyncobj.tcp_connection`` imports ``pysyncobj/win_inet_pton.py``, which replaces
``socket.inet_ntop`` with a Windows-only version on every platform (its
``socket.inet_ntop = inet_ntop`` sits outside the ``os.name == 'nt'`` check). Any code in the
same process that formats an address afterwards (pyroute2 in the ``vip`` agent, for one)
then fails. Everything in hakeeper imports PySyncObj through this module.

PySyncObj retries an entry whose apply raised on every tick, forever: one malformed entry
would wedge every member at the same index. `GuardedSyncObj` applies such an entry as a
no-op instead, logs why, and answers its submitter with `Skipped`. Every member meets the same
entry with the same code, so every member skips it alike and the replicas stay identical.

PySyncObj's follower cuts its log after every append's starting point; `GuardedSyncObj`
first moves that point past what it provably shares with the leader
(`hakeeper.coord.raft_follower`), so only a real conflict is cut, never an applied entry.

PySyncObj's membership entries (``dynamicMembershipChange``) change its node list and apply
as no-ops to the state machine; `GuardedSyncObj` also hands each one, in log order, to its
``on_member_entry`` so that the replicated record of the voter list follows the log.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import pickle as pysyncobj_pickle
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import SyncObjExceptionWrongVer
from pysyncobj.tcp_connection import CONNECTION_STATE, set_keepalive
from pysyncobj.transport import TCPTransport

from hakeeper.coord.raft_follower import Append, shared_append

socket.inet_ntop = _socket.inet_ntop

MEMBERSHIP_ENTRY = b"\x02"  # PySyncObj's _COMMAND_TYPE.MEMBERSHIP, the entry's first byte

log = logging.getLogger(__name__)

__all__ = [
    "CONNECTION_STATE",
    "FAIL_REASON",
    "POLL_EVENT_TYPE",
    "GuardedSyncObj",
    "Skipped",
    "SyncObj",
    "SyncObjConf",
    "SyncObjConsumer",
    "TCPTransport",
    "called_back",
    "globalDnsResolver",
    "ignore_result",
    "replicated",
    "set_keepalive",
]


@dataclass(frozen=True, slots=True)
class Skipped:
    """What a submitter receives for an entry that was applied as a no-op, and why."""

    reason: str


async def called_back(start: Callable[..., None], *args: Any, timeout: float) -> tuple[Any, int]:
    """Call ``start(*args, callback=...)`` and wait, at most ``timeout``, for PySyncObj to
    call back from its thread; return its (result, error). TimeoutError otherwise."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Any, int]] = loop.create_future()

    def resolve(result: Any, error: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody waits
            loop.call_soon_threadsafe(_settle, done, (result, error))

    start(*args, callback=resolve)
    return await asyncio.wait_for(done, timeout)


def _settle(future: asyncio.Future[tuple[Any, int]], value: tuple[Any, int]) -> None:
    if not future.done():  # a late second answer after a timeout is dropped
        future.set_result(value)


def ignore_result(_result: Any, _error: int) -> None:
    """Callback for fire-and-forget commands: the next tick decides again if needed."""


class GuardedSyncObj(SyncObj):  # type: ignore[misc]
    """`SyncObj` whose apply of one log entry never raises."""

    skipped = 0  # entries this member applied as no-ops (diagnostics)

    def __init__(
        self, *args: Any, on_member_entry: Callable[[str, str], None] | None = None, **kw: Any
    ) -> None:
        # Called with ("add" | "rem", address) for each membership entry applied, in log
        # order. Set before SyncObj.__init__, which counts every attribute that exists by
        # then as its own: one set later would be pickled into each snapshot.
        self.on_member_entry = on_member_entry
        super().__init__(*args, **kw)

    # SyncObj calls ``self.__doApplyCommand``, which Python names ``_SyncObj__doApplyCommand``;
    # defining that name here is how a subclass wraps it.
    def _SyncObj__doApplyCommand(self, command: Any) -> Any:
        try:
            result = SyncObj._SyncObj__doApplyCommand(self, command)
            if command[:1] == MEMBERSHIP_ENTRY and self.on_member_entry is not None:
                kind, address = pysyncobj_pickle.loads(command[1:])[:2]
                self.on_member_entry(str(kind), str(address))
            return result
        except SyncObjExceptionWrongVer:
            raise  # PySyncObj's own upgrade protocol (unused by hakeeper): it logs and waits
        except Exception as exc:  # noqa: BLE001 - any failure of one entry is that entry's
            reason = f"{type(exc).__name__}: {exc}"[:300]
            self.skipped += 1
            log.error(
                "event=raft_entry_skipped reason=%r bytes=%d (applied as a no-op on every "
                "member; the submitter gets an error)",
                reason,
                len(command) if isinstance(command, bytes | bytearray) else -1,
            )
            return Skipped(reason)

    # The transport's callback is ``self.__onMessageReceived``, bound when SyncObj starts:
    # defined here, this is the one it calls.
    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> Any:
        if (
            isinstance(message, dict)
            and message.get("type") == "append_entries"
            and "prevLogIdx" in message
            and "transmission" not in message
            and message.get("term", -1) >= self._getTerm()
        ):
            message = self._shared(message)
        return SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _shared(self, message: dict[str, Any]) -> dict[str, Any]:
        log_ = self._SyncObj__raftLog
        if len(log_) == 0:
            return message
        asked = Append(message["prevLogIdx"], message["prevLogTerm"], message.get("entries", []))
        found = shared_append(log_, self._SyncObj__raftCommitIndex, message["term"], asked)
        if found is asked:
            return message
        return {
            **message,
            "prevLogIdx": found.prev_index,
            "prevLogTerm": found.prev_term,
            "entries": list(found.entries),
        }
