"""``config plan`` and ``config apply``'s bodies, shared by the CLI and the REST API.

A new cluster file's text is validated, refused when it renames the cluster or switches the
coordination backend, compared with the config in force (fence passwords redacted), and
planned on the live state; nothing is written until `write`, which fails if another config
was applied since the plan was read.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass

from hakeeper.api import targets
from hakeeper.config import parse, to_spec, warnings
from hakeeper.config.loader import file_from_text
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.fencing.device import redact
from hakeeper.model.cluster import ClusterSpec, FenceDevice
from hakeeper.model.transition import Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import what_if
from hakeeper.runtime.snapshot import observe_cluster


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    source: str  # where the text came from (a path, "request body")
    text: str
    spec: ClusterSpec
    diff: tuple[str, ...]
    base_revision: int  # mod_revision of the stored config read; 0 when none was stored
    transition: Transition
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.diff)


def load_new(text: str, source: str) -> tuple[ClusterSpec, list[str]]:
    """The validated spec of a new cluster file's text, and its warnings."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    cf = parse(data, source=source)
    return to_spec(cf), [f"{source}: warning: {w}" for w in warnings(cf)]


def _compatible(current: ClusterSpec, new: ClusterSpec, path: str) -> list[str]:
    """Refuse what cannot change on a running cluster; note what needs agent restarts."""
    if new.options.name != current.options.name:
        raise ConfigError(
            f"{path}: cluster.name {new.options.name!r} differs from the running cluster's "
            f"{current.options.name!r}; a cluster cannot be renamed by config apply"
        )
    if new.coordination.backend != current.coordination.backend:
        raise ConfigError(
            f"{path}: coordination.backend {new.coordination.backend!r} differs from the "
            f"running cluster's {current.coordination.backend!r}; moving engines needs a restart "
            "of the whole cluster, not config apply"
        )
    peers = {(n.name, n.address, n.raft_port) for n in current.nodes}
    notes = []
    if {(n.name, n.address, n.raft_port) for n in new.nodes} != peers or (
        new.coordination != current.coordination
    ):
        notes.append("nodes or coordination settings change: agents use them only after a restart")
    return notes


async def prepare(
    coord: Coordinator, current: ClusterSpec, current_text: str, text: str, source: str, now: float
) -> ApplyPlan:
    """Everything shown before the question; writes nothing."""
    new, notes = load_new(text, source)
    notes += _compatible(current, new, source)
    return await prepare_text(coord, current, current_text, text, new, notes, source, now)


async def prepare_text(
    coord: Coordinator,
    current: ClusterSpec,
    current_text: str,
    text: str,
    new: ClusterSpec,
    notes: list[str],
    source: str,
    now: float,
    what_ifs: tuple[str, ...] = (),
) -> ApplyPlan:
    """The plan of storing ``text`` (already validated; scheduled as ``new``), shown as coming
    from ``source``; the transition is scheduled after each of ``what_ifs`` (`plan --what-if`,
    ``hakeeper node add|remove``)."""
    store = targets.store_of(coord, current)
    stored = await store.config_record()
    base_text, base_name = (
        # A stored config that is not UTF-8 is shown as best it can be: applying a good
        # one over it is how it is repaired.
        (stored.raw.decode("utf-8", "replace"), "stored config")
        if stored
        else (current_text, "current")
    )
    # A fence password written inline (hakeeper check warns about it) is never shown.
    devices = current.fence_devices + new.fence_devices
    diff = tuple(
        _redacted(line, devices)
        for line in difflib.unified_diff(
            base_text.splitlines(), text.splitlines(), base_name, source, lineterm=""
        )
    )
    notes = [*notes, *_token_changes(base_text, text)]
    snapshot = await observe_cluster(store, new, now)
    state = snapshot.observed.state
    for question in what_ifs:
        state = what_if(state, question, tuple(n.name for n in new.nodes))
    tr = schedule(snapshot.spec, state)
    base_revision = stored.revision if stored else 0
    return ApplyPlan(source, text, new, diff, base_revision, tr, tuple(notes))


def _token_changes(before: str, after: str) -> list[str]:
    """What applying ``after`` does to the API's tokens (`hakeeper.api.live_access`: every
    node honours it within seconds), by name; nothing when ``before`` does not load."""
    try:
        old = file_from_text(before, "config in force").api.tokens
        new = file_from_text(after, "new config").api.tokens
    except ConfigError:
        return []
    added = sorted(set(new) - set(old))
    revoked = sorted(set(old) - set(new))
    changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
    parts = [
        f"{what} {', '.join(names)}"
        for what, names in (("added", added), ("revoked", revoked), ("changed", changed))
        if names
    ]
    if not parts:
        return []
    note = f"API tokens {'; '.join(parts)}: every node's API follows within seconds"
    if old and not new:
        note += "; with no [api.tokens] left, no token is accepted (keep the [api] section)"
    return [note]


def _redacted(line: str, devices: tuple[FenceDevice, ...]) -> str:
    for device in devices:
        line = redact(line, {key: str(value) for key, value in device.params.items()})
    return line


async def write(coord: Coordinator, current: ClusterSpec, plan: ApplyPlan) -> bool:
    """Store the text unless another config was applied since `prepare` read it."""
    return await targets.store_of(coord, current).publish_config(plan.text, plan.base_revision)
