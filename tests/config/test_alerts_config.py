"""`[[alerts]]` in the cluster file: references checked like every other section's."""

from __future__ import annotations

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError

NODES = '[nodes.n1]\naddress = "10.0.0.1"\n[resources.db]\nagent = "ocf:heartbeat:Dummy"\n'


def alerts(*entries: str) -> str:
    return NODES + "".join(f'\n[[alerts]]\nagent = "/bin/true"\n{e}\n' for e in entries)


@pytest.mark.parametrize(
    ("entries", "refused_for"),
    [
        (('id = "a"\nkinds = ["node.lots"]',), "is not alerted on"),
        (('id = "a"\nkinds = ["alert.failed"]',), "is not alerted on"),
        (('id = "a"\nresources = ["dbb"]',), "is not a resource"),
        (('id = "a"', 'id = "a"'), "used by another alert"),
    ],
)
def test_a_bad_reference_is_refused_with_its_place(entries: tuple[str], refused_for: str) -> None:
    with pytest.raises(ConfigError, match=refused_for):
        spec_from_text(alerts(*entries), "test")


def test_filters_reach_the_spec() -> None:
    spec = spec_from_text(alerts('id = "a"\nkinds = ["node.lost"]\nresources = ["db"]'), "t")

    (alert,) = spec.alerts
    assert (alert.via, alert.kinds, alert.resources) == ("agent", ("node.lost",), ("db",))
