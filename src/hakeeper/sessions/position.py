"""A node's role and replication position, as the controller compares them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Role(enum.Enum):
    STANDALONE = "standalone"
    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class Position:
    """What the controller compares to choose a primary: higher ``(log_epoch, seq)`` wins."""

    log_epoch: int
    seq: int
    seen_epoch: int
    role: Role

    def line(self) -> bytes:
        return b"POSITION %d %d %d %s\r\n" % (
            self.log_epoch,
            self.seq,
            self.seen_epoch,
            self.role.value.encode(),
        )

    @classmethod
    def parse(cls, line: bytes) -> Position:
        parts = line.split()
        if len(parts) != 5 or parts[0] != b"POSITION":
            raise ValueError(f"not a POSITION reply: {line!r}")
        return cls(int(parts[1]), int(parts[2]), int(parts[3]), Role(parts[4].decode()))


def most_up_to_date(positions: Mapping[str, Position]) -> str:
    """The node to promote: highest ``(log_epoch, seq)``; ties go to the first named."""
    if not positions:
        raise ValueError("no positions to choose a primary from")
    return max(positions, key=lambda name: (positions[name].log_epoch, positions[name].seq))
