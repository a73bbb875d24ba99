"""The versions of every format hakeeper writes or speaks, in one place.

A format's version is a small integer. A daemon speaks a *range* of versions of each wire
format (the oldest it still speaks .. the newest it knows): two ends agree on the highest
version both speak, so during a rolling upgrade a newer daemon talks to an older one in the
older one's version and to its upgraded peers in the newer one. A stored format (a data
directory, the cluster store) is written in one version; a daemon reads the versions of its
range and refuses a newer one with `UnreadableFormat` instead of misreading it.

Version numbers travel in one byte on the Raft peer wire, hence the bound of 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hakeeper.errors import UnreadableFormat, VersionMismatch

MAX_VERSION = 255


class Format(StrEnum):
    """Every versioned format; the value is the name errors and ``upgrade plan`` print."""

    RAFT_PEER_WIRE = "raft peer wire"
    RAFT_DATA_DIR = "raft data directory"
    CLUSTER_STORE = "cluster store"
    SESSION_PEER_WIRE = "session peer wire"


@dataclass(frozen=True, slots=True)
class VersionRange:
    """The versions of one format a daemon speaks or reads: ``oldest`` .. ``newest``."""

    oldest: int
    newest: int

    def __post_init__(self) -> None:
        if not 1 <= self.oldest <= self.newest <= MAX_VERSION:
            raise ValueError(
                f"version range {self.oldest}..{self.newest} is not within 1..{MAX_VERSION} "
                "with the oldest first"
            )

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.oldest <= version <= self.newest

    def __str__(self) -> str:
        return str(self.newest) if self.oldest == self.newest else f"{self.oldest}..{self.newest}"

    def capped(self, newest: int) -> VersionRange:
        """This range with its newest version lowered to ``newest`` (a node pinned to the
        wire of the release it upgrades from). ValueError when ``newest`` is outside it."""
        if newest not in self:
            raise ValueError(f"cannot cap versions {self} at {newest}: outside the range")
        return VersionRange(self.oldest, newest)


#: What this release speaks and reads. Raft peer wire: 1 is the handshake before versions
#: (proofs over the nonces only), 2 binds the offered and chosen versions into the proofs and
#: frame keys, 3 is 2 whose members also answer pre-votes (asked before an election). Raft
#: data directory: 1 is the unmarked single-state-machine layout, 2 the marked
#: one with the member record. Cluster store: 1 is the record layout of `record_codec`.
#: Session peer wire: 1 is ``HK_AUTH 1`` (it carries its version since its first release).
SUPPORTED: dict[Format, VersionRange] = {
    Format.RAFT_PEER_WIRE: VersionRange(1, 3),
    Format.RAFT_DATA_DIR: VersionRange(2, 2),
    Format.CLUSTER_STORE: VersionRange(1, 1),
    Format.SESSION_PEER_WIRE: VersionRange(1, 1),
}


@dataclass(frozen=True, slots=True)
class FormatSupport:
    """The versions of one format a node speaks or reads (published in its member record)."""

    format: Format
    versions: VersionRange


def negotiate(fmt: Format, mine: VersionRange, theirs: VersionRange) -> int:
    """The highest version both ranges hold; VersionMismatch (naming both) when none."""
    common = min(mine.newest, theirs.newest)
    if common < max(mine.oldest, theirs.oldest):
        raise VersionMismatch(version_mismatch_text(fmt, mine, theirs))
    return common


def version_mismatch_text(fmt: Format, mine: VersionRange, theirs: VersionRange) -> str:
    older = "this node" if mine.newest < theirs.oldest else "the peer"
    return (
        f"{fmt} versions do not overlap: this node speaks {mine}, the peer {theirs}. "
        f"Fix: upgrade {older} to a hakeeper release that speaks "
        f"{max(mine.oldest, theirs.oldest)} (a roll goes one release at a time)"
    )


def check_readable(fmt: Format, found: int, where: str) -> None:
    """Refuse a stored ``found`` version this release does not read (newer or too old)."""
    reads = SUPPORTED[fmt]
    if found in reads:
        return
    if found > reads.newest:
        raise UnreadableFormat(
            f"{where} is in {fmt} format {found}, written by a newer hakeeper; this node "
            f"reads {reads} only and will not misread it. Fix: upgrade this node to the "
            "release the rest of the cluster runs"
        )
    raise UnreadableFormat(
        f"{where} is in {fmt} format {found}, older than this node reads ({reads}). Fix: "
        "upgrade through the releases in between, one at a time"
    )
