"""The stored config, read where it is used: refused as one `ConfigError`, never a crash.

Bytes that are not UTF-8, too large, nest too deep or do not validate are one `ConfigError`
(shared/DESIGN.md section 4, rule 5: refused where it is read; every node keeps its last good
config), never another exception that would stop the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec


@dataclass(frozen=True, slots=True)
class StoredConfigProblem:
    revision: int
    reason: str

    def warning(self) -> str:
        return (
            f"the stored config (revision {self.revision}) is refused: {self.reason}; every "
            "node keeps running its last good config. Fix: hakeeper config apply "
            "<a valid cluster file>"
        )


REASON_LIMIT = 300


def short_reason(exc: ConfigError) -> str:
    """A refusal's first two lines, bounded, for events and ``status``."""
    text = "; ".join(str(exc).splitlines()[:2])
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def stored_text(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 (byte {exc.start}); write a cluster file with "
            "hakeeper config apply"
        ) from None


def stored_spec(raw: bytes, source: str) -> ClusterSpec:
    """The stored config's bytes to a validated spec; any failure is one ConfigError."""
    return spec_from_text(stored_text(raw, source), source)
