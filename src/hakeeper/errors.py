"""The one exception tree of hakeeper.

Every error a caller can act on derives from `HakeeperError` and says what failed and how to
fix it. Backends translate their own failures (aiohttp, PySyncObj, OS errors) into these at the
boundary with ``raise ... from exc``; nothing above a backend sees a foreign exception.

    HakeeperError
    ├── ConfigError              bad input in a config file or on the command line
    └── CoordError               the coordination engine could not do what was asked
        ├── Unreachable          no endpoint / peer answered in time
        ├── NoQuorum             reached, but no majority: nothing can be written or renewed
        ├── LeaseExpired         the lease is gone (expired or revoked) on the engine
        ├── CompareFailed        a guarded write lost its race (only from TxnResult.check())
        ├── Compacted            a watch asked for history the engine no longer keeps
        ├── EngineMismatch       the members disagree about who the cluster is
        ├── DataDirFormat        a member's data directory holds a format this version cannot read
        └── TTLTooShort          a lease TTL below what the engine can honour
    SessionStoreError            the session store refused or could not answer a request
    UnreadableFormat             stored data in a format version this release does not read
    VersionMismatch              two ends share no version of a wire format

A lost race is not an exception: ``txn`` returns ``TxnResult(succeeded=False)``. Callers that
want an exception call ``result.check()``.
"""

from __future__ import annotations


class HakeeperError(Exception):
    """Base of every error hakeeper raises on purpose."""


class ConfigError(HakeeperError):
    """Bad configuration or arguments; the message names the key and the fix."""


class CoordError(HakeeperError):
    """The coordination engine could not complete the request."""


class Unreachable(CoordError):
    """No engine endpoint or peer answered within the deadline."""


class NoQuorum(CoordError):
    """The engine answered but cannot reach a majority, so it cannot commit."""


class LeaseExpired(CoordError):
    """The lease no longer exists on the engine (expired or revoked)."""


class CompareFailed(CoordError):
    """A compare-and-set transaction's comparison did not hold."""


class Compacted(CoordError):
    """A watch start revision is older than the history the engine still keeps."""


class EngineMismatch(CoordError):
    """The members of the coordination cluster disagree about its membership or identity."""


class DataDirFormat(CoordError):
    """A member's data directory was written in a format this version does not read."""


class TTLTooShort(CoordError):
    """A lease TTL is below the minimum the engine's election timing can honour."""


class SessionStoreError(HakeeperError):
    """The session store answered with an error, or did not answer in time."""


class UnreadableFormat(HakeeperError):
    """Stored data is in a format version this release does not read; the message names both
    versions and the fix (usually: upgrade this node)."""


class VersionMismatch(HakeeperError):
    """Two ends of a wire share no protocol version; the message names both ranges."""
