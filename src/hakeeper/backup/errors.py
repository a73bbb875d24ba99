"""The errors of the backup package: each names the backup, the problem and the fix.

    HakeeperError
    └── BackupError                 a backup could not be written, read or trusted
        ├── BadObjectName           an object name or backup id outside the bounds
        ├── BackupNotFound          no complete backup of that id in the store
        ├── MissingObject           the manifest names an object the store does not hold
        ├── TruncatedObject         an object ends before its recorded size or final chunk
        ├── CorruptObject           an object's bytes differ from what the manifest recorded
        ├── ManifestTampered        the manifest fails its checksum or authentication
        ├── ForeignBackup           the backup belongs to another cluster
        ├── NewerFormat             written in a format this hakeeper cannot read
        ├── WrongKey                encrypted with another key, or no key was given
        └── StoreUnavailable        the store could not be reached or refused the request

Reading refuses before anything is applied: a caller that restores verifies the whole
backup first (`hakeeper.backup.verify`), so a refusal changes nothing.
"""

from __future__ import annotations

from hakeeper.errors import HakeeperError


class BackupError(HakeeperError):
    """A backup could not be written, read or trusted."""


class BadObjectName(BackupError):
    """An object name or backup id is empty, too long, absolute, climbs out or holds a
    control character."""


class BackupNotFound(BackupError):
    """The store holds no complete backup of that id."""


class MissingObject(BackupError):
    """An object the manifest lists is not in the store."""


class TruncatedObject(BackupError):
    """An object ends before the size (or final chunk) the manifest recorded."""


class CorruptObject(BackupError):
    """An object's bytes do not match its recorded size, checksum or authentication tag."""


class ManifestTampered(BackupError):
    """The manifest's bytes do not match its checksum or authentication code."""


class ForeignBackup(BackupError):
    """The backup was made by another cluster than the one the caller expects."""


class NewerFormat(BackupError):
    """The backup's format version is newer than this hakeeper reads."""


class WrongKey(BackupError):
    """The backup is encrypted with a key the caller does not hold (or gave none)."""


class StoreUnavailable(BackupError):
    """The backup store could not be reached, or refused the request."""
