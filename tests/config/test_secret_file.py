"""The cluster secret file: mode, owner, format, creation and re-reading on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakeeper.config.secret_file import (
    SecretFile,
    parse_secrets,
    read_secret_file,
    write_secret_file,
)
from hakeeper.errors import ConfigError

A = "a" * 32
B = "b" * 32


def secret_at(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_first_line_is_current_and_every_line_is_accepted(tmp_path: Path) -> None:
    secret = read_secret_file(secret_at(tmp_path, f"# rotation\n{A}\n\n{B}\n"))
    assert secret.current == A.encode()
    assert secret.accepted == (A.encode(), B.encode())


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_file_others_can_read_is_refused_with_chmod_fix(tmp_path: Path, mode: int) -> None:
    path = secret_at(tmp_path, A, mode)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        read_secret_file(path)


def test_a_missing_file_names_hakeeper_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hakeeper init"):
        read_secret_file(tmp_path / "absent")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        parse_secrets("short", "s")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="holds no secret"):
        parse_secrets("# nothing\n\n", "s")


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = secret_at(tmp_path, A)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="cannot open"):
        read_secret_file(link)


def test_write_creates_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        written = write_secret_file(tmp_path / "secret")
    finally:
        os.umask(old)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert read_secret_file(tmp_path / "secret") == written
    assert len(written.current) >= 32


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    path = secret_at(tmp_path, A)
    with pytest.raises(ConfigError, match="never overwritten"):
        write_secret_file(path)
    assert path.read_text() == A


def test_secret_file_rereads_a_changed_file(tmp_path: Path) -> None:
    path = secret_at(tmp_path, A)
    source = SecretFile(path)
    path.write_text(f"{B}\n{A}\n")
    assert source.get().accepted == (B.encode(), A.encode())


def test_secret_file_keeps_the_last_good_secret_when_the_file_goes_bad(tmp_path: Path) -> None:
    path = secret_at(tmp_path, A)
    source = SecretFile(path)
    path.write_text(A + "\n")
    path.chmod(0o644)
    assert source.get().current == A.encode()
    assert source.problem is not None
    assert "chmod 600" in source.problem
