"""The store server's options (``python -m hakeeper.sessions``, ``hakeeper sessions serve``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.sessions.command_line import OptionError, main, node_config, parse_size, parser
from hakeeper.sessions.node_config import NodeConfig


def config_of(*argv: str) -> NodeConfig:
    return node_config(parser("test").parse_args(argv))


def test_defaults_make_a_standalone_node_on_the_memcached_port() -> None:
    config = config_of()
    assert config.address == "127.0.0.1:11211"
    assert config.peers == ()
    assert not config.replicated
    assert config.secret_file is None


def test_peer_port_defaults_to_the_client_port_plus_one() -> None:
    assert config_of("--listen", "10.0.0.1:11311").identity == "10.0.0.1:11312"


def test_own_peer_address_is_left_out_of_the_peers() -> None:
    config = config_of("--peer-listen", "10.0.0.1:2", "--peers", "10.0.0.1:2,10.0.0.2:2")
    assert config.peers == ("10.0.0.2:2",)
    assert config.replicated


def test_a_replicated_node_proves_the_given_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    config = config_of("--peers", "10.0.0.2:2", "--secret-file", str(secret))
    assert config.secret_file == secret


def test_write_timeout_bounds_forwarding_too() -> None:
    config = config_of("--write-timeout", "2.5")
    assert (config.write_timeout, config.forward_timeout) == (2.5, 2.5)


@pytest.mark.parametrize(("text", "size"), [("512k", 512 << 10), ("64M", 64 << 20), ("7", 7)])
def test_sizes_take_a_unit_or_a_number_of_bytes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_size_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(OptionError, match="not a size"):
        parse_size("lots")


def test_an_ipv6_listen_address_keeps_its_brackets_for_the_peer_port() -> None:
    assert config_of("--listen", "[::1]:11211").identity == "[::1]:11212"


@pytest.mark.parametrize("listen", ["127.0.0.1:65535", "127.0.0.1:0"])
def test_a_client_port_without_a_next_port_needs_peer_listen(listen: str) -> None:
    with pytest.raises(OptionError, match="give --peer-listen"):
        config_of("--listen", listen)


def test_peer_tls_needs_all_three_files(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="together"):
        config_of("--peer-tls-cert", str(tmp_path / "cert.pem"))


def test_primary_without_peers_exits_2_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--primary"], prog="hakeeper sessions serve")
    assert exited.value.code == 2
    assert "--primary needs --peers" in capsys.readouterr().err


def test_bad_timeouts_exit_2_naming_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--max-connections", "0"])
    assert exited.value.code == 2
    assert "--max-connections must be at least 1" in capsys.readouterr().err
