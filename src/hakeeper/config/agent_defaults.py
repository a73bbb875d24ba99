"""Meta defaults of the agents hakeeper ships whose safety depends on them.

The cluster file's value always wins; these apply only where a resource leaves the key out.

The session store (``agent = "sessions"``) in a promotable clone defaults to
``on_fail = "demote"`` and ``failure_timeout = 10s``. Its promote refuses when the answering
stores cannot vouch for every acknowledged write (a store restarted empty does not vouch:
`hakeeper.sessions`' fence round). Recovered as ``restart`` would (stop, start), that
refusal wiped the in-memory store of the one node still holding the data; demoted, the node
keeps its data and serves as a replica. The scheduler does not promote it again while that
fail count stands, and the timeout is what lets it try again once the node that holds the
last writes may be back; with no timeout only ``hakeeper resource cleanup`` would.
"""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.model.cluster import OnFail

#: The agent name of hakeeper's replicated session store.
SESSIONS_AGENT = "sessions"
#: How long a session store node whose promote was refused waits before it is a candidate
#: again (the time for the node that kept the last writes to answer again).
SESSIONS_FAILURE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class MetaDefaults:
    on_fail: OnFail = "restart"
    failure_timeout: float = 0.0


def meta_defaults(agent: str, *, promotable: bool) -> MetaDefaults:
    """The defaults of a resource of ``agent``; ``promotable``: it is a promotable clone's
    member (``on_fail = "demote"`` means nothing elsewhere)."""
    if agent == SESSIONS_AGENT and promotable:
        return MetaDefaults("demote", SESSIONS_FAILURE_TIMEOUT)
    return MetaDefaults()
