"""Who may use the API follows the cluster's config: a token added or revoked with
``hakeeper config apply`` is honoured by every node's API within seconds, no restart.

How the config reaches a running node decides how this follows it. ``config apply`` writes
the cluster file into the coordination engine, and each daemon adopts it from there (or
refuses it and keeps its last good one): the file on the node's disk is not what changes, so
a SIGHUP re-read of that file would miss the change. Instead this follows the daemon: when
the config in force (`NodeView.spec`) is a new one, the daemon has just adopted a stored
config, and the API reads that stored text and takes its access keys (`ACCESS_KEYS`).
Following the daemon's adoption, not the stored key itself, means a config the daemon
refuses changes no token either.

A stored config that does not load, or names another cluster, changes nothing: the token
table in force stays as it is (never emptied by a bad config). The listener's keys (address,
TLS, bounds) need an agent restart: a change of them is logged, not applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hakeeper.config.api_section import ApiSection
from hakeeper.config.loader import file_from_text
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.node_view import NodeView

log = logging.getLogger(__name__)

#: What a running API takes from a newly adopted config.
ACCESS_KEYS = ("tokens", "client_certs", "anonymous_read", "host_names")
#: How often the config in force is looked at (a local comparison, no I/O).
CHECK_EVERY = 1.0
READ_TIMEOUT = 15.0
RETRY_AFTER_ERROR = 2.0


def access_from(current: ApiSection, text: str, source: str, cluster: str) -> ApiSection:
    """``current`` with the access keys of the cluster file ``text``; a `ConfigError` (and
    nothing changed) when the file does not load or names another cluster."""
    new = file_from_text(text, source)
    if new.cluster.name != cluster:
        raise ConfigError(f"{source}: names cluster {new.cluster.name!r}, not {cluster!r}")
    restart = [
        key
        for key in ApiSection.model_fields
        if key not in ACCESS_KEYS and getattr(new.api, key) != getattr(current, key)
    ]
    if restart:
        log.warning(
            "event=config_needs_restart source=%s reason=api_listener_changed keys=%s",
            source, ",".join(restart),
        )  # fmt: skip
    return current.model_copy(update={key: getattr(new.api, key) for key in ACCESS_KEYS})


class LiveAccess:
    """The `ApiSection` in force for identifying callers, kept up to date by `run`."""

    def __init__(
        self, view: NodeView, start: ApiSection, adopt: Callable[[ApiSection], None]
    ) -> None:
        self._view = view
        self.section = start
        self._adopt = adopt

    async def run(self) -> None:
        seen: ClusterSpec | None = None
        while True:
            spec = self._view.spec()
            if spec is not seen:
                try:
                    await self.reload(spec.options.name)
                except (CoordError, TimeoutError) as exc:
                    log.warning("event=api_access_read_failed error=%r", str(exc) or "timeout")
                    await asyncio.sleep(RETRY_AFTER_ERROR)
                    continue  # seen unchanged: read again
                seen = spec
            await asyncio.sleep(CHECK_EVERY)

    async def reload(self, cluster: str) -> None:
        """Take the access keys of the stored config, if it loads; else keep them."""
        async with asyncio.timeout(READ_TIMEOUT):
            record = await self._view.store.config_record()
        if record is None:
            return  # nothing stored yet: the node's own file is the config
        source = f"stored config rev {record.revision}"
        try:
            text = record.raw.decode("utf-8")
            section = access_from(self.section, text, source, cluster)
        except (ConfigError, UnicodeDecodeError) as exc:
            reason = str(exc).splitlines()[0][:300]
            log.error("event=api_access_kept source=%s reason=%r", source, reason)
            return
        if section == self.section:
            return
        self.section = section
        self._adopt(section)
        log.info(
            "event=api_access_changed source=%s tokens=%d client_certs=%d anonymous_read=%s",
            source, len(section.tokens), len(section.client_certs), section.anonymous_read,
        )  # fmt: skip
