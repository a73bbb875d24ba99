"""What `hakeeper check` says about backups: a schedule whose newest backup is older than two
periods (a failing or stopped schedule), a store that cannot be read, a key file that is
missing or open to others, backups without encryption. Read from the store itself, so the
check holds on any host that can reach it, whether or not the cluster is up."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hakeeper.backup.catalog import list_backups
from hakeeper.backup.settings import backup_settings
from hakeeper.backup.writer import utc_now
from hakeeper.config.schema import ClusterFile
from hakeeper.errors import HakeeperError
from hakeeper.model.durations import short_duration
from hakeeper.runtime.safety_checks import Finding

CREATE = "run `hakeeper backup create`, then see `hakeeper events` for why the schedule failed"


async def backup_findings(cf: ClusterFile, now: datetime | None = None) -> list[Finding]:
    """Nothing when the file has no [backup] section (backups are configured by choice)."""
    section = cf.backup
    if section is None:
        return []
    try:
        settings = backup_settings(section, cluster_secret=Path(cf.coordination.secret_file))
        listing = await list_backups(settings.store)
    except HakeeperError as exc:
        return [Finding("error", f"backups: {exc}", "fix the [backup] section or the file named")]
    found: list[Finding] = []
    if settings.keyring is None:
        found.append(
            Finding("warning", "backups are not encrypted", "set [backup] key_file (docs/dr.md)")
        )
    if section.schedule is not None:
        newest = listing.newest
        at = now or utc_now()
        if newest is None:
            found.append(Finding("error", f"no backup in {listing.store} yet", CREATE))
        elif (at - newest.created_at).total_seconds() > 2 * section.schedule:
            age = short_duration((at - newest.created_at).total_seconds())
            found.append(
                Finding(
                    "error",
                    f"backups overdue: the newest ({newest.backup_id}) is {age} old, the "
                    f"schedule is every {short_duration(section.schedule)}",
                    CREATE,
                )
            )
    return found
