"""The ``[backup]`` section made real: the store it names, the key file, the retention.

A command-line ``--store`` or ``--key-file`` wins over the section (a restore on a new site
may have no cluster file yet). The backup key is refused when it is the cluster secret's
file: whoever holds one must not hold the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.keys import BackupKeyring, load_keyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.retention import RetentionPolicy
from hakeeper.backup.store import BackupStore
from hakeeper.config.schema import BackupSection
from hakeeper.errors import ConfigError

NO_STORE = (
    'no backup store: add a [backup] section with store = "/var/backups/hakeeper" (or '
    '"s3://bucket/prefix") to the cluster file, or give --store'
)


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """Where backups go, the key that seals them (None: unencrypted), what to keep, how
    often the controller takes one and runs a drill (seconds; None: never)."""

    store: BackupStore
    keyring: BackupKeyring | None
    retention: RetentionPolicy
    schedule: float | None = None
    drill: float | None = None

    def trust(self) -> Trust:
        return Trust(self.keyring)


def open_store(
    where: str,
    *,
    endpoint: str | None = None,
    region: str = "us-east-1",
    credentials_file: str | None = None,
) -> BackupStore:
    """A directory (absolute path) or ``s3://bucket/prefix``; the S3 store needs the ``s3``
    extra and says so."""
    if where.startswith("s3://"):
        from hakeeper.backup.s3_store import S3Settings, S3Store  # boto3: the optional extra

        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        return S3Store(
            S3Settings(
                bucket=bucket,
                prefix=prefix,
                endpoint_url=endpoint,
                region=region,
                credentials_file=Path(credentials_file) if credentials_file else None,
            )
        )
    if not where.startswith("/") or any(ord(c) < 32 for c in where):
        raise ConfigError(f"backup store {where[:80]!a}: give an absolute directory or s3:// URL")
    return DirectoryStore(Path(where))


def backup_settings(
    section: BackupSection | None,
    *,
    store: str | None = None,
    key_file: Path | None = None,
    cluster_secret: Path | None = None,
) -> BackupSettings:
    """The settings from ``section`` with the command line's ``store``/``key_file`` first."""
    where = store or (section.store if section else None)
    if where is None:
        raise ConfigError(NO_STORE)
    key_path = key_file or (Path(section.key_file) if section and section.key_file else None)
    keyring = (
        load_keyring(key_path, cluster_secret_path=cluster_secret) if key_path is not None else None
    )
    return BackupSettings(
        store=open_store(
            where,
            endpoint=section.endpoint if section else None,
            region=section.region if section else "us-east-1",
            credentials_file=section.credentials_file if section else None,
        ),
        keyring=keyring,
        retention=RetentionPolicy(
            keep_last=section.keep_last if section else None,
            max_age=timedelta(seconds=section.max_age) if section and section.max_age else None,
        ),
        schedule=section.schedule if section else None,
        drill=section.drill if section else None,
    )
