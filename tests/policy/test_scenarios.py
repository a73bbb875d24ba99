"""Every scenario file: the scheduler produces exactly the expected transition."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.policy.scheduler import schedule
from tests.policy.scenario import all_paths, load

PATHS = all_paths()


def test_the_corpus_has_at_least_sixty_scenarios() -> None:
    assert len(PATHS) >= 60


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_scenario(path: Path) -> None:
    sc = load(path)
    tr = schedule(sc.spec, sc.state)
    explain = "\n".join(
        ["actions:", *tr.lines(), "edges:", *tr.edge_lines(), "decisions:"]
        + [str(d) for d in tr.decisions]
    )
    assert set(tr.lines()) == sc.actions, explain
    for before, after in sc.edges:
        assert tr.comes_before(before, after), f"missing {before} -> {after}\n{explain}"
    assert {d.resource for d in tr.blocked()} == sc.blocked, explain
    messages = [d.message for d in tr.decisions]
    for text in sc.decisions:
        assert any(text in m for m in messages), f"no decision says {text!r}\n{explain}"
    assert schedule(sc.spec, sc.state) == tr, "same input, same output"
