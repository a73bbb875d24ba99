from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hakeeper.backup.errors import ManifestTampered, WrongKey
from hakeeper.backup.keys import (
    BackupKeyring,
    generate_key_text,
    load_keyring,
    make_key_command,
    parse_keys,
    unwrap_data_key,
    wrap_data_key,
    write_key_file,
)
from hakeeper.config.secret_file import write_secret_file
from hakeeper.errors import ConfigError

BACKUP_ID = "20261206T100000Z-00000001"


def test_the_first_key_encrypts_and_every_key_opens(tmp_path: Path) -> None:
    old, new = generate_key_text(), generate_key_text()
    path = tmp_path / "backup.key"
    path.write_text(f"# rotated\n{new}\n{old}\n")
    path.chmod(0o600)
    keyring = load_keyring(path)
    assert keyring.current == parse_keys(new, "x").current
    assert keyring.find(parse_keys(old, "x").current.key_id) is not None


def test_the_cluster_secret_file_is_refused_as_backup_key(tmp_path: Path) -> None:
    secret = tmp_path / "cluster-secret"
    write_secret_file(secret)
    with pytest.raises(ConfigError, match="is the cluster secret file"):
        load_keyring(secret, cluster_secret_path=secret)


def test_a_link_to_the_cluster_secret_is_refused_as_backup_key(tmp_path: Path) -> None:
    secret = tmp_path / "cluster-secret"
    write_secret_file(secret)
    (tmp_path / "backup.key").symlink_to(secret)
    with pytest.raises(ConfigError, match="is the cluster secret file"):
        load_keyring(tmp_path / "backup.key", cluster_secret_path=secret)


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    path.write_text(generate_key_text() + "\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(path)


def test_a_missing_key_file_names_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no backup key there"):
        load_keyring(tmp_path / "nope.key")


@pytest.mark.parametrize("line", ["short", "x" * 44, "A" * 60])
def test_a_line_that_is_not_32_bytes_of_base64_is_refused(line: str) -> None:
    with pytest.raises(ConfigError, match="line 1 is not a backup key"):
        parse_keys(line, "backup.key")


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    first = write_key_file(path)
    with pytest.raises(ConfigError, match="never overwritten"):
        write_key_file(path)
    assert load_keyring(path).current == first.current
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_key_is_not_in_its_repr() -> None:
    text = generate_key_text()
    keyring = parse_keys(text, "backup.key")
    assert keyring.current.secret.hex() not in repr(keyring)


def test_a_data_key_opens_with_the_key_that_wrapped_it(keyring: BackupKeyring) -> None:
    raw = b"k" * 32
    wrapped = wrap_data_key(keyring.current, raw, BACKUP_ID)
    key = unwrap_data_key(keyring, wrapped, BACKUP_ID)
    assert key.manifest_mac(b"body") == unwrap_data_key(keyring, wrapped, BACKUP_ID).manifest_mac(
        b"body"
    )


def test_another_key_is_named_a_wrong_key(
    keyring: BackupKeyring, other_keyring: BackupKeyring
) -> None:
    wrapped = wrap_data_key(keyring.current, b"k" * 32, BACKUP_ID)
    with pytest.raises(WrongKey, match="wrong key"):
        unwrap_data_key(other_keyring, wrapped, BACKUP_ID)


def test_no_key_for_an_encrypted_backup_asks_for_the_key_file(keyring: BackupKeyring) -> None:
    wrapped = wrap_data_key(keyring.current, b"k" * 32, BACKUP_ID)
    with pytest.raises(WrongKey, match="give the backup key file"):
        unwrap_data_key(None, wrapped, BACKUP_ID)


def test_a_wrapped_key_moved_to_another_backup_does_not_open(keyring: BackupKeyring) -> None:
    wrapped = wrap_data_key(keyring.current, b"k" * 32, BACKUP_ID)
    with pytest.raises(ManifestTampered, match="changed or damaged"):
        unwrap_data_key(keyring, wrapped, "20261206T100000Z-00000002")


def test_the_command_the_messages_give_makes_a_key_file_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    subprocess.run(["sh", "-c", make_key_command(path)], check=True, timeout=30)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(load_keyring(path).keys) == 1
