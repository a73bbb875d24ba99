"""Scenario files: a cluster config, an observed state and the transition expected from them.

description = "one line: what this scenario shows"
[config]          # a cluster file, as in cluster.toml
[state]           # a snapshot, as in the JSON of `hakeeper plan --state`
[expect]
actions = ["fence n2", "start web on n1"]      # exactly these (any order)
edges = ["fence n2 -> start web on n1"]        # each a dependency path that must exist
blocked = ["web"]                              # exactly these have a blocked decision
decisions = ["fencing is off"]                 # each appears in some decision message
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hakeeper.config import parse, read_toml, to_spec
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState, state_from_dict

SCENARIOS = Path(__file__).parent / "scenarios"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    spec: ClusterSpec
    state: ClusterState
    actions: frozenset[str]
    edges: tuple[tuple[str, str], ...]
    blocked: frozenset[str]
    decisions: tuple[str, ...]


def load(path: Path) -> Scenario:
    data = read_toml(path)
    unknown = set(data) - {"description", "config", "state", "expect"}
    assert not unknown, f"{path.name}: unknown top-level keys {sorted(unknown)}"
    assert data.get("description"), f"{path.name}: needs a description"
    expect = data.get("expect", {})
    bad = set(expect) - {"actions", "edges", "blocked", "decisions"}
    assert not bad, f"{path.name}: unknown [expect] keys {sorted(bad)}"
    edges = []
    for line in expect.get("edges", []):
        before, _, after = line.partition(" -> ")
        assert after, f"{path.name}: edge {line!r} needs 'a -> b'"
        edges.append((before.strip(), after.strip()))
    return Scenario(
        name=path.stem,
        description=data["description"],
        spec=to_spec(parse(data["config"], source=f"{path.name} [config]")),
        state=state_from_dict(data.get("state", {}), source=f"{path.name} [state]"),
        actions=frozenset(expect.get("actions", [])),
        edges=tuple(edges),
        blocked=frozenset(expect.get("blocked", [])),
        decisions=tuple(expect.get("decisions", [])),
    )


def all_paths() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml"))
