"""``host:port``: IPv4, names and bracketed IPv6 read; everything else refused with the fix."""

from __future__ import annotations

import pytest

from hakeeper.model.address import HostPort, split_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("node-1.example:11211", "node-1.example", 11211),
        ("localhost:1", "localhost", 1),
        ("10.0.0.1:65535", "10.0.0.1", 65535),
    ],
)
def test_an_ipv4_address_or_a_name_is_split_into_host_and_port(
    text: str, host: str, port: int
) -> None:
    assert split_address(text) == (host, port)


@pytest.mark.parametrize(
    ("text", "host"),
    [("[::1]:80", "::1"), ("[::]:9900", "::"), ("[fe80::1%eth0]:80", "fe80::1%eth0")],
)
def test_an_ipv6_address_in_brackets_is_read_without_them(text: str, host: str) -> None:
    assert split_address(text) == (host, int(text.rpartition(":")[2]))


def test_an_ipv6_address_without_brackets_is_refused_showing_them() -> None:
    with pytest.raises(ValueError, match=r"IPv6 address takes brackets, e\.g\. \[::1\]:80"):
        split_address("::1:80")


def test_brackets_around_something_else_than_ipv6_are_refused() -> None:
    with pytest.raises(ValueError, match="in brackets is not an IPv6 address"):
        split_address("[127.0.0.1]:80")


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999"])
def test_a_port_outside_1_to_65535_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="port must be a number from 1 to 65535"):
        split_address(text)


def test_a_listener_may_ask_for_port_0() -> None:
    assert split_address("127.0.0.1:0", listen=True) == ("127.0.0.1", 0)


@pytest.mark.parametrize("text", ["127.0.0.1:+80", "127.0.0.1:８０", "127.0.0.1:http"])
def test_a_port_that_is_not_ascii_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="port must be a number"):
        split_address(text)


@pytest.mark.parametrize("text", ["nohost", "127.0.0.1", ":80", "127.0.0.1:"])
def test_text_that_is_not_host_colon_port_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"write host:port, e\.g\. 127\.0\.0\.1:8080"):
        split_address(text)


@pytest.mark.parametrize("text", ["127.0.0.1:80\n", "evil\x1b[2J:80", "a b:80", "\x00:80"])
def test_a_control_character_or_space_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="control character or a space"):
        split_address(text)


def test_a_host_with_characters_no_host_name_has_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a host name or address"):
        split_address("a/b:80")


@pytest.mark.parametrize(
    ("address", "text"),
    [(HostPort("10.0.0.1", 80), "10.0.0.1:80"), (HostPort("::1", 80), "[::1]:80")],
)
def test_an_address_is_written_back_as_it_is_read(address: HostPort, text: str) -> None:
    assert str(address) == text
    assert split_address(text) == address
