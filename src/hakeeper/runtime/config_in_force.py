"""The config one node runs: the stored one (``config apply``), else its last good one.

The cluster runs one config. The first agent of a new cluster publishes its own file; every
node then adopts each config ``config apply`` stores, if it loads. One that does not is
refused where it is read (shared/DESIGN.md section 4, rule 5): an event and a log line, and
the node keeps the config in force. The last adopted one is kept in the state dir (mode
0600: it holds fence parameters), so a restart while the stored one is refused runs it
rather than an older file.

A config that changes the nodes, the coordination or the timing profile is adopted, with a
warning: the member lease, the watchdog and the suspicion watch keep the timing they
started with until the agent restarts. One that no longer names this node means `hakeeper
node remove` drained it: the node stops (``on_removed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from hakeeper.config.file_modes import open_private
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import ConfigRefused
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.executor import Executor
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.stored_config import short_reason, stored_spec

log = logging.getLogger(__name__)

#: The last config this node adopted, in its state dir (read when the stored one is refused).
LAST_GOOD_CONFIG = "cluster.toml"
EVENT_TIMEOUT = 10.0
WATCH_RETRY = 1.0


class ConfigInForce:
    """This node's config (`spec`), kept in step with the stored one."""

    def __init__(
        self,
        spec: ClusterSpec,
        node: str,
        state_dir: Path,
        text: str,
        *,
        on_removed: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.node = node
        self._text = text
        self._last_good_path = state_dir / LAST_GOOD_CONFIG
        self._on_removed = on_removed

    async def adopt_stored(self, store: ClusterStore, events: EventLog) -> None:
        """At start: publish this file if the cluster has no config yet, else adopt the
        stored one; if that is refused, the last good one (when it differs from the file)."""
        text = self._text
        stored = await store.publish_first_config(text)
        if stored is None or stored.raw == text.encode():
            self._keep_last_good(text)
            return
        if await self.use(stored.raw, stored.revision, events):
            return
        saved = self._last_good()
        if saved is not None and saved != text:
            await self.use(saved.encode(), 0, events, source="last good config")

    async def follow(self, store: ClusterStore, executor: Executor, events: EventLog) -> None:
        """Adopt every config ``config apply`` writes; an invalid one changes nothing."""
        while True:
            try:
                async with contextlib.aclosing(store.config_changes()) as changes:
                    async for stored in changes:
                        before = self.spec
                        if await self.use(stored.raw, stored.revision, events, executor):
                            executor.forget_agents(changed_primitives(before, self.spec))
            except CoordError as exc:
                log.warning("event=config_watch_failed error=%r", str(exc))
                await asyncio.sleep(WATCH_RETRY)

    async def use(
        self,
        raw: bytes,
        revision: int,
        events: EventLog,
        executor: Executor | None = None,
        *,
        source: str = "",
    ) -> bool:
        """Adopt a config if it loads; otherwise refuse it and keep the one in force."""
        source = source or f"stored config rev {revision}"
        try:
            spec = stored_spec(raw, source)
            if executor is not None:
                executor.check_agents(spec, changed_primitives(self.spec, spec))
            if spec.options.name != self.spec.options.name:
                raise ConfigError(
                    f"{source}: cluster name changed from {self.spec.options.name!r} to "
                    f"{spec.options.name!r}; a cluster cannot be renamed by config apply"
                )
        except ConfigError as exc:
            await self._refuse(events, revision, source, short_reason(exc))
            return False
        except (ValueError, RecursionError) as exc:
            # Not a ConfigError: a reader's bug met a value it did not expect. Rule 5 holds
            # all the same: the node keeps its config and keeps running.
            await self._refuse(events, revision, source, f"{source}: {type(exc).__name__}")
            return False
        if spec.node(self.node) is None:
            # `hakeeper node remove` drained this node first: nothing to hand over; stop.
            log.warning("event=node_removed node=%s source=%s action=stop", self.node, source)
            self._on_removed()
            return False
        if spec.nodes != self.spec.nodes or spec.coordination != self.spec.coordination:
            log.warning(
                "event=config_needs_restart source=%s reason=nodes_or_coordination_changed", source
            )
        if spec.timing != self.spec.timing:
            log.warning(
                "event=config_needs_restart source=%s reason=profile_changed profile=%s "
                "waits_for_restart=member_lease,watchdog,suspicion",
                source,
                spec.timing.name,
            )
        self.spec = spec
        self._keep_last_good(raw.decode("utf-8"))
        log.info("event=config_adopted source=%s", source)
        return True

    async def _refuse(self, events: EventLog, revision: int, source: str, reason: str) -> None:
        log.error("event=config_rejected source=%s error=%r keeping=last_good", source, reason)
        event = ConfigRefused(ts=time.time(), node=self.node, revision=revision, reason=reason)
        try:
            async with asyncio.timeout(EVENT_TIMEOUT):
                await events.append(event)
        except (CoordError, TimeoutError) as exc:
            log.warning("event=config_refused_not_recorded error=%r", str(exc))

    def _keep_last_good(self, text: str) -> None:
        """Keep the config in force, written aside and renamed (never half a file)."""
        path = self._last_good_path
        if not text or self._last_good() == text:
            return
        scratch = path.with_name(path.name + ".new")
        try:
            fd = open_private(scratch, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(scratch, path)
        except OSError as exc:
            log.warning("event=last_good_config_not_kept path=%s error=%r", path, exc.strerror)

    def _last_good(self) -> str | None:
        try:
            return self._last_good_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None


def changed_primitives(before: ClusterSpec, after: ClusterSpec) -> set[str]:
    """The resources a new config adds or changes (their agents are built again)."""
    old = {p.id: p for p in before.primitives}
    return {p.id for p in after.primitives if old.get(p.id) != p}
