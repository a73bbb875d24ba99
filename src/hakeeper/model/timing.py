"""Timing profiles (shared/DESIGN.md section 6) and the rules that keep them safe."""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TimingProfile:
    """How fast the cluster notices and reacts. All figures in seconds.

    ``election_min``/``election_max`` bound the embedded Raft election timeout; the engine
    cannot honour a lease shorter than ``1.5 × election_max`` (etcd's rule for its own
    minimum lease TTL), because a lease must outlive one election.
    """

    name: str
    member_ttl: float
    renew_interval: float
    monitor_interval: float
    heartbeat: float
    election_min: float
    election_max: float
    self_fence_margin: float

    @property
    def min_lease_ttl(self) -> float:
        return 1.5 * self.election_max

    def validate(self) -> TimingProfile:
        """Refuse timings under which a node could not renew or self-fence in time."""
        problems: list[str] = []
        if self.renew_interval * 3 > self.member_ttl:
            problems.append(
                f"renew interval {self.renew_interval}s × 3 exceeds member TTL "
                f"{self.member_ttl}s: raise member_ttl or renew more often"
            )
        if not 0 < self.self_fence_margin < self.member_ttl:
            problems.append(
                f"self-fence margin {self.self_fence_margin}s must be above 0 and below the "
                f"member TTL {self.member_ttl}s"
            )
        if self.heartbeat * 2 > self.election_min:
            problems.append(
                f"heartbeat {self.heartbeat}s must be at most half the minimum election "
                f"timeout {self.election_min}s"
            )
        if self.election_min >= self.election_max:
            problems.append("election_min must be below election_max")
        if self.member_ttl < self.min_lease_ttl:
            problems.append(
                f"member TTL {self.member_ttl}s is below the engine minimum "
                f"{self.min_lease_ttl:g}s (1.5 × election timeout {self.election_max}s): "
                "raise member_ttl or shorten the election timeout"
            )
        if problems:
            raise ConfigError(f"timing profile {self.name!r}: " + "; ".join(problems))
        return self


PROFILES: dict[str, TimingProfile] = {
    p.name: p.validate()
    for p in (
        TimingProfile("fast", 1.0, 0.2, 1.0, 0.03, 0.15, 0.3, 0.2),
        TimingProfile("default", 3.0, 0.75, 5.0, 0.1, 0.5, 1.0, 0.5),
        TimingProfile("wan", 10.0, 2.0, 10.0, 0.3, 1.5, 3.0, 1.5),
    )
}


def profile(name: str) -> TimingProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown timing profile {name!r}: use one of {', '.join(PROFILES)}"
        ) from None
