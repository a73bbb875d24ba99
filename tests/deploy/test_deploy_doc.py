"""The files docs/deploy.md tells an operator to write are valid as written."""

from __future__ import annotations

import re
from pathlib import Path

from hakeeper.balancer.config import load_config
from hakeeper.cli.init_cmd import starter_config
from hakeeper.cli.init_nodes import parse_nodes
from hakeeper.config.loader import spec_from_text

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "deploy.md"


def block(first_line: str) -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    (found,) = [b for b in blocks if b.startswith(first_line)]
    return str(found)


def test_the_balancer_file_of_the_walkthrough_loads(tmp_path: Path) -> None:
    path = tmp_path / "balancer.toml"
    path.write_text(block("# balancer.toml"))

    config = load_config(path)

    assert [f.name for f in config.frontend] == ["web"]


def test_the_cluster_file_of_the_walkthrough_loads(tmp_path: Path) -> None:
    nodes = parse_nodes(["n1=10.0.0.1", "n2=10.0.0.2", "n3=10.0.0.3"])
    written = starter_config(Path("/etc/hakeeper/secret"), nodes)
    # What init wrote, with its example resource replaced by the page's services.
    head = written[: written.index("# EDIT: an example resource")]
    balancer = tmp_path / "balancer.toml"
    balancer.write_text(block("# balancer.toml"))
    text = head + block("# cluster.toml").replace("/etc/hakeeper/balancer.toml", str(balancer))

    spec = spec_from_text(text, "docs/deploy.md")

    assert {p.id for p in spec.primitives} == {"vip", "lb", "web", "store"}
    assert [a.id for a in spec.alerts] == ["log", "chat"]
