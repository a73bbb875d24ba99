"""How a PySyncObj node of hakeeper's embedded Raft is configured from a timing profile."""

from __future__ import annotations

import logging

from hakeeper.coord.pysyncobj_compat import SyncObjConf
from hakeeper.model.timing import TimingProfile

log = logging.getLogger(__name__)

_RAFT_STATES = {0: "follower", 1: "candidate", 2: "leader"}


def _log_state_change(old: int, new: int) -> None:
    log.info(
        "event=raft_state from=%s to=%s", _RAFT_STATES.get(old, old), _RAFT_STATES.get(new, new)
    )


def sync_conf(
    timing: TimingProfile, journal: str | None, dump: str | None, *, bind: str | None, learner: bool
) -> SyncObjConf:
    """The node's configuration; ``bind`` is its own address (None: a client or learner)."""
    return SyncObjConf(
        autoTick=True,
        autoTickPeriod=min(0.02, timing.heartbeat / 2),
        appendEntriesPeriod=timing.heartbeat,
        appendEntriesUseBatch=False,
        raftMinTimeout=timing.election_min,
        raftMaxTimeout=timing.election_max,
        leaderFallbackTimeout=timing.election_max,
        # Followers exchange nothing in steady state; PySyncObj drops a link that reads
        # nothing for connectionTimeout, and a vote request sent while it is down is
        # lost, which turned one election into two. Keep links up, redial fast.
        connectionTimeout=max(60.0, 20 * timing.election_max),
        connectionRetryTime=max(timing.heartbeat, 0.05),
        commandsWaitLeader=True,
        journalFile=journal,
        fullDumpFile=dump,
        useFork=False,
        # A learner never compacts: its snapshot would name no member for itself, and
        # the voter it becomes reads what it wrote. Snapshots sent by the leader still land.
        logCompactionMinEntries=10**9 if learner else 5000,
        logCompactionMinTime=10**9 if learner else 60,
        dynamicMembershipChange=True,
        # PySyncObj listens on every address unless told; a member listens on its own only.
        bindAddress=bind,
        onStateChanged=_log_state_change,
    )
