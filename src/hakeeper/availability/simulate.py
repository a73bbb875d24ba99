"""Monte Carlo simulation of a cluster's yearly downtime.

The model, per trial (one `horizon`, a year by default), event by event:

- ``nodes`` nodes fail and are repaired independently; up and down times are drawn from the
  given distributions (exponential by default, or fixed, or resampled from measurements).
  Each node starts up with probability MTBF/(MTBF+MTTR), i.e. in the steady state, so a
  short horizon is not biased toward "everything was new".
- The first ``voters`` nodes are the coordination members (default: all). The cluster has
  quorum while at least ⌊voters/2⌋+1 of them are up; ``voters = 0`` ignores quorum.
- One **exclusive** resource (a virtual IP, a primary) runs on one node. When its node
  fails, the resource is down for ``fencing + failover`` (each drawn per failover) and then
  runs on the lowest-numbered node that is up. Without quorum it stops (safety rule 1:
  no quorum, no action) and starts again, after a failover time, once quorum is back and a
  node is up; a node that stopped its resource itself needs no fencing.
- One **clone** runs on every up node and is up while at least ``clone_required``
  instances run; quorum loss does not stop it.
- The **service** needs both.

Results: for each of the three, the mean downtime per horizon with a 95 % confidence
interval (mean ± 1.96·s/√n), empirical percentiles, the mean availability, and the share of
trials that met a target. `what_if` runs the same trials (same seed: common random numbers,
so differences are not noise) with one more node and with a faster failover.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import format_duration
from hakeeper.model.durations import YEAR, parse_duration


@dataclass(frozen=True, slots=True)
class Exponential:
    mean_value: float

    @property
    def mean(self) -> float:
        return self.mean_value

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean_value) if self.mean_value > 0 else 0.0

    def describe(self) -> str:
        return f"exponential, mean {format_duration(self.mean_value)}"

    def scaled(self, factor: float) -> Exponential:
        return Exponential(self.mean_value * factor)


@dataclass(frozen=True, slots=True)
class Fixed:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value

    def describe(self) -> str:
        return f"fixed {format_duration(self.value)}"

    def scaled(self, factor: float) -> Fixed:
        return Fixed(self.value * factor)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Resamples measured values (bootstrap): the measured shape, not an assumed one."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    def sample(self, rng: random.Random) -> float:
        return rng.choice(self.values)

    def describe(self) -> str:
        return f"measured ({len(self.values)} samples, mean {format_duration(self.mean)})"

    def scaled(self, factor: float) -> Empirical:
        return Empirical(tuple(v * factor for v in self.values))


Distribution = Exponential | Fixed | Empirical


def parse_distribution(text: str, what: str = "distribution", bare: str = "exp") -> Distribution:
    """``"exp:2000h"`` (exponential with that mean) or ``"fixed:30s"``; a bare duration is
    `bare`: exponential for times to failure and repair, fixed for a failover time."""
    kind, _, value = text.partition(":")
    if not value:
        kind, value = bare, kind
    if kind in ("exp", "exponential"):
        return Exponential(parse_duration(value, what=what, unit_required=True))
    if kind == "fixed":
        return Fixed(parse_duration(value, what=what, unit_required=True))
    raise ConfigError(f"{what}: unknown distribution {kind!r}; write exp:2000h or fixed:30s")


@dataclass(frozen=True, slots=True)
class ClusterModel:
    nodes: int
    node_up: Distribution
    node_down: Distribution
    failover: Distribution = Fixed(0.0)
    fencing: Distribution = Fixed(0.0)
    voters: int | None = None
    clone_required: int = 1
    horizon: float = YEAR

    def check(self) -> ClusterModel:
        if self.nodes < 1:
            raise ConfigError("nodes: a cluster needs at least one node")
        if self.voters is not None and not 0 <= self.voters <= self.nodes:
            raise ConfigError(f"voters: must be between 0 and the node count {self.nodes}")
        if not 1 <= self.clone_required <= self.nodes:
            raise ConfigError(f"clone required: must be between 1 and the node count {self.nodes}")
        if self.node_up.mean <= 0:
            raise ConfigError("node MTBF must be above zero")
        if self.horizon <= 0:
            raise ConfigError("horizon must be above zero")
        return self

    @property
    def quorum_size(self) -> int:
        voters = self.nodes if self.voters is None else self.voters
        return 0 if voters == 0 else voters // 2 + 1


@dataclass(frozen=True, slots=True)
class Trial:
    """Downtime (seconds) of one simulated horizon."""

    exclusive: float
    clone: float
    service: float
    failovers: int
    quorum_losses: int


def run_trial(model: ClusterModel, rng: random.Random) -> Trial:
    """One horizon, event by event."""
    n = model.nodes
    voters = n if model.voters is None else model.voters
    need = model.quorum_size
    up_share = model.node_up.mean / (model.node_up.mean + model.node_down.mean)
    up = [rng.random() < up_share for _ in range(n)]
    next_change = [(model.node_up if u else model.node_down).sample(rng) for u in up]

    def has_quorum() -> bool:
        return need == 0 or sum(up[:voters]) >= need

    def first_up() -> int | None:
        return next((i for i in range(n) if up[i]), None)

    quorum = has_quorum()
    holder = first_up() if quorum else None
    recovery_at = math.inf  # when a failover in progress completes
    target: int | None = None
    must_fence = False  # the old holder vanished without stopping its instance
    failovers = quorum_losses = 0
    now = 0.0
    down = {"exclusive": 0.0, "clone": 0.0, "service": 0.0}

    def begin_recovery() -> None:
        nonlocal recovery_at, target, failovers
        target = first_up()
        if target is None or not quorum:
            recovery_at, target = math.inf, None
            return
        cost = model.failover.sample(rng) + (model.fencing.sample(rng) if must_fence else 0.0)
        recovery_at = now + cost
        failovers += 1

    while now < model.horizon:
        step_to = min(min(next_change), recovery_at, model.horizon)
        exclusive_up = holder is not None
        clone_up = sum(up) >= model.clone_required
        elapsed = step_to - now
        if not exclusive_up:
            down["exclusive"] += elapsed
        if not clone_up:
            down["clone"] += elapsed
        if not (exclusive_up and clone_up):
            down["service"] += elapsed
        now = step_to
        if now >= model.horizon:
            break
        if recovery_at <= now:
            holder, target, recovery_at, must_fence = target, None, math.inf, False
            continue
        node = next_change.index(step_to)
        up[node] = not up[node]
        next_change[node] = now + (model.node_up if up[node] else model.node_down).sample(rng)
        was_quorate, quorum = quorum, has_quorum()
        if was_quorate and not quorum:
            # Every node stops the exclusive resource itself: nothing to fence afterwards.
            quorum_losses += 1
            holder, target, recovery_at, must_fence = None, None, math.inf, False
        elif not up[node] and node == holder:
            holder, must_fence = None, True
            begin_recovery()
        elif not up[node] and node == target:
            must_fence = True
            begin_recovery()
        elif holder is None and recovery_at == math.inf:
            begin_recovery()  # a node came back or quorum returned: start it again
    return Trial(down["exclusive"], down["clone"], down["service"], failovers, quorum_losses)


@dataclass(frozen=True, slots=True)
class Summary:
    """Downtime per horizon across trials."""

    name: str
    samples: tuple[float, ...]
    horizon: float
    target: float | None = None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0

    @property
    def ci95(self) -> tuple[float, float]:
        """Mean ± 1.96·s/√n (normal approximation; fine for a few hundred trials)."""
        half = 1.96 * self.stdev / math.sqrt(len(self.samples))
        return max(0.0, self.mean - half), self.mean + half

    def percentile(self, p: float) -> float:
        """Empirical percentile, linear between order statistics."""
        ordered = sorted(self.samples)
        position = (len(ordered) - 1) * p / 100
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    @property
    def availability(self) -> float:
        return 1 - self.mean / self.horizon

    @property
    def availability_ci95(self) -> tuple[float, float]:
        low, high = self.ci95
        return 1 - high / self.horizon, 1 - low / self.horizon

    @property
    def meets_target(self) -> float | None:
        """Share of trials whose downtime stayed within the target's budget."""
        if self.target is None:
            return None
        budget = (1 - self.target) * self.horizon
        return sum(1 for s in self.samples if s <= budget) / len(self.samples)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.ci95
        return {
            "name": self.name,
            "mean_downtime": self.mean,
            "stdev": self.stdev,
            "ci95": [low, high],
            "percentiles": {str(p): self.percentile(p) for p in (5, 50, 95, 99)},
            "availability": self.availability,
            "availability_ci95": list(self.availability_ci95),
            "target": self.target,
            "meets_target": self.meets_target,
        }


@dataclass(frozen=True, slots=True)
class Result:
    model: ClusterModel
    trials: int
    seed: int
    exclusive: Summary
    clone: Summary
    service: Summary
    failovers: float
    quorum_losses: float

    def to_dict(self) -> dict[str, Any]:
        m = self.model
        return {
            "model": {
                "nodes": m.nodes,
                "voters": m.nodes if m.voters is None else m.voters,
                "quorum_size": m.quorum_size,
                "clone_required": m.clone_required,
                "node_up": m.node_up.describe(),
                "node_down": m.node_down.describe(),
                "failover": m.failover.describe(),
                "fencing": m.fencing.describe(),
                "horizon": m.horizon,
            },
            "trials": self.trials,
            "seed": self.seed,
            "exclusive": self.exclusive.to_dict(),
            "clone": self.clone.to_dict(),
            "service": self.service.to_dict(),
            "failovers_per_horizon": self.failovers,
            "quorum_losses_per_horizon": self.quorum_losses,
        }


def simulate(
    model: ClusterModel, trials: int = 2000, seed: int = 1, target: float | None = None
) -> Result:
    """Run `trials` independent horizons with a seeded RNG (same seed, same answer)."""
    model.check()
    if trials < 2:
        raise ConfigError("trials: need at least 2 for a confidence interval")
    rng = random.Random(seed)
    runs = [run_trial(model, rng) for _ in range(trials)]

    def summary(name: str, values: Sequence[float]) -> Summary:
        return Summary(name, tuple(values), model.horizon, target)

    return Result(
        model=model,
        trials=trials,
        seed=seed,
        exclusive=summary("exclusive", [r.exclusive for r in runs]),
        clone=summary(f"clone {model.clone_required}-of-{model.nodes}", [r.clone for r in runs]),
        service=summary("service", [r.service for r in runs]),
        failovers=statistics.fmean(r.failovers for r in runs),
        quorum_losses=statistics.fmean(r.quorum_losses for r in runs),
    )


def what_if(
    model: ClusterModel,
    trials: int = 2000,
    seed: int = 1,
    target: float | None = None,
    failover_factor: float = 0.5,
) -> list[tuple[str, Result]]:
    """The baseline, one more node, and a failover `failover_factor` times as long."""
    # When every node votes (voters None) the new node votes too; a fixed voter set stays.
    more = replace(model, nodes=model.nodes + 1)
    faster = replace(model, failover=model.failover.scaled(failover_factor))
    return [
        ("as configured", simulate(model, trials, seed, target)),
        (f"{more.nodes} nodes (q={more.quorum_size})", simulate(more, trials, seed, target)),
        (
            f"failover × {failover_factor:g}",
            simulate(faster, trials, seed, target),
        ),
    ]
