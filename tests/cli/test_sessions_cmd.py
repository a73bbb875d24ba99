"""`hakeeper sessions serve`: the peer port's default address."""

from __future__ import annotations

import pytest
import typer

from hakeeper.cli.sessions import default_peer_address


def test_the_peer_port_defaults_to_the_client_port_plus_one() -> None:
    assert default_peer_address("127.0.0.1:11211") == "127.0.0.1:11212"


def test_an_ipv6_listen_address_keeps_its_brackets_for_the_peer_port() -> None:
    assert default_peer_address("[::1]:11211") == "[::1]:11212"


@pytest.mark.parametrize("listen", ["127.0.0.1:65535", "127.0.0.1:0"])
def test_a_listen_port_with_no_port_above_it_asks_for_peer_listen(listen: str) -> None:
    with pytest.raises(typer.BadParameter, match="give --peer-listen"):
        default_peer_address(listen)
