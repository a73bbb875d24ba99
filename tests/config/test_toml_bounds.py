"""A cluster file's text is bounded (size, nesting) before the TOML parser sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.config.loader import load, spec_from_text
from hakeeper.config.toml_bounds import MAX_CONFIG_BYTES, nesting_problem, text_problem
from hakeeper.errors import ConfigError

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_example_is_within_the_bounds(path: Path) -> None:
    assert text_problem(path.read_text()) is None


def test_deep_brackets_are_refused_before_parsing() -> None:
    with pytest.raises(ConfigError, match=r"stored: refused before parsing: line 1: nests deeper"):
        spec_from_text("x = " + "[" * 100_000 + "]" * 100_000, "stored")


def test_a_long_dotted_key_is_refused_before_parsing() -> None:
    # Unbounded, 20 000 parts would take about 1.5 GB in the parser.
    with pytest.raises(ConfigError, match="nests deeper"):
        spec_from_text("[balancer]\n" + "x." * 20_000 + "y = 1\n", "stored")


def test_deep_inline_tables_are_refused() -> None:
    assert nesting_problem("a = " + "{b = " * 40 + "1" + "}" * 40) is not None


def test_dots_in_strings_comments_and_numbers_are_no_nesting() -> None:
    text = (
        'url = "http://a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t"\n'
        "# a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t\n"
        "weights = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5,"
        " 15.5, 16.5, 17.5, 18.5]\n"
        "script = '''\nx.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\n'''\n"
        'escaped = "\\".a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r"\n'
    )
    assert nesting_problem(text) is None


def test_a_file_over_the_size_bound_is_refused() -> None:
    problem = text_problem("# " + "x" * MAX_CONFIG_BYTES)
    assert problem is not None
    assert "over the bound" in problem


def test_a_local_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"cluster.toml: not UTF-8"):
        load(path)
