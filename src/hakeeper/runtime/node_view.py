"""What a running node shows to the faces its daemon serves (the REST API).

The daemon owns the executor and the membership; a face gets only this read-only view, so
it can answer "does this node run X" from the executor's own state (as Patroni's
``/primary`` answers from the local PostgreSQL), without reaching into the daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.store import ClusterStore


@dataclass(frozen=True, slots=True)
class NodeView:
    node: str
    #: The config in force (it changes with ``config apply``).
    spec: Callable[[], ClusterSpec]
    store: ClusterStore
    #: ``{(resource, instance): role}`` of what runs on this node now.
    local: Callable[[], dict[tuple[str, int], str]]
    #: The engine client the actions write through (the one the daemon itself uses).
    coord: Coordinator
    #: Whether this node's member lease is valid (it is a member and may run resources).
    member: Callable[[], bool]
    #: What the daemon's loops measured (renewals, scheduler runs, fences, failovers).
    observations: Observations


#: A face the daemon runs in its task group until shutdown (cancelled then).
Face = Callable[[NodeView], Coroutine[Any, Any, None]]
