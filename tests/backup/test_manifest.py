from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from hakeeper import __version__
from hakeeper.backup.errors import ForeignBackup, ManifestTampered, NewerFormat, WrongKey
from hakeeper.backup.keys import BackupKeyring, DataKey, wrap_data_key
from hakeeper.backup.manifest import (
    FORMAT_VERSION,
    ClusterIdentity,
    Encryption,
    Manifest,
    ObjectEntry,
    Trust,
    decode_manifest,
    encode_manifest,
    peek_manifest,
)
from tests.backup.conftest import CLUSTER, T0

BACKUP = "20261206T100000Z-00000001"
ENTRY = ObjectEntry(name="config", size=3, sha256="ab" * 32)


def plain_manifest(backup_id: str = BACKUP) -> Manifest:
    return Manifest(
        backup_id=backup_id,
        cluster=CLUSTER,
        coord_revision=42,
        epochs=Manifest.epochs_from({"sessions/web": 7, "coord": 3}),
        created_at=T0,
        objects=(ENTRY,),
    )


def encrypted(keyring: BackupKeyring) -> tuple[Manifest, DataKey]:
    data_key, raw = DataKey.generate()
    wrapped = wrap_data_key(keyring.current, raw, BACKUP)
    manifest = plain_manifest().model_copy(update={"encryption": Encryption.of(wrapped, 4096)})
    return manifest, data_key


def flip_in_body(data: bytes, old: bytes, new: bytes) -> bytes:
    head, _, body = data.partition(b"\n")
    assert old in body
    return head + b"\n" + body.replace(old, new, 1)


def test_a_manifest_records_what_the_issue_asks_for() -> None:
    manifest = decode_manifest(encode_manifest(plain_manifest(), None), BACKUP, Trust()).manifest
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.hakeeper_version == __version__
    assert manifest.cluster == CLUSTER
    assert manifest.coord_revision == 42
    assert manifest.epoch_of("sessions/web") == 7
    assert manifest.epoch_of("coord") == 3
    assert manifest.created_at == T0
    assert manifest.objects == (ENTRY,)


def test_an_encrypted_manifest_round_trips_with_its_key(keyring: BackupKeyring) -> None:
    manifest, data_key = encrypted(keyring)
    trusted = decode_manifest(encode_manifest(manifest, data_key), BACKUP, Trust(keyring))
    assert trusted.manifest == manifest
    assert trusted.data_key is not None


def test_a_flipped_byte_in_a_plain_manifest_is_refused() -> None:
    data = flip_in_body(
        encode_manifest(plain_manifest(), None), b'"coord_revision": 42', b'"coord_revision": 43'
    )
    with pytest.raises(ManifestTampered, match="checksum does not match"):
        decode_manifest(data, BACKUP, Trust())


def test_a_flipped_byte_in_an_encrypted_manifest_is_refused(keyring: BackupKeyring) -> None:
    manifest, data_key = encrypted(keyring)
    data = flip_in_body(encode_manifest(manifest, data_key), b'"size": 3', b'"size": 4')
    with pytest.raises(ManifestTampered, match="fails its authentication"):
        decode_manifest(data, BACKUP, Trust(keyring))


def test_an_encrypted_manifest_with_its_digest_recomputed_as_plain_is_refused(
    keyring: BackupKeyring,
) -> None:
    manifest, data_key = encrypted(keyring)
    head, _, body = encode_manifest(manifest, data_key).partition(b"\n")
    header = json.loads(head)
    header["mac"] = "sha256"
    forged = json.dumps(header).encode() + b"\n" + body
    with pytest.raises(ManifestTampered):
        decode_manifest(forged, BACKUP, Trust(keyring))


def test_a_backup_of_another_cluster_is_refused_when_one_is_expected() -> None:
    data = encode_manifest(plain_manifest(), None)
    other = ClusterIdentity(name="prod", cluster_id="another-id")
    with pytest.raises(ForeignBackup, match=r"belongs to cluster prod \(id c0ffee-1\)"):
        decode_manifest(data, BACKUP, Trust(expect=other))


def test_a_newer_format_is_refused_by_its_version_before_its_body_is_read() -> None:
    header = {"format": "hakeeper-backup", "format_version": FORMAT_VERSION + 1}
    data = json.dumps(header).encode() + b"\n{a body this version cannot parse}"
    with pytest.raises(NewerFormat, match="use a newer hakeeper"):
        decode_manifest(data, BACKUP, Trust())


def test_an_encrypted_manifest_under_another_key_is_a_wrong_key(
    keyring: BackupKeyring, other_keyring: BackupKeyring
) -> None:
    manifest, data_key = encrypted(keyring)
    with pytest.raises(WrongKey, match="wrong key"):
        decode_manifest(encode_manifest(manifest, data_key), BACKUP, Trust(other_keyring))


def test_an_unencrypted_backup_is_refused_to_a_key_holder_unless_allowed(
    keyring: BackupKeyring,
) -> None:
    data = encode_manifest(plain_manifest(), None)
    with pytest.raises(WrongKey, match="not encrypted"):
        decode_manifest(data, BACKUP, Trust(keyring))
    assert decode_manifest(data, BACKUP, Trust(keyring, allow_unencrypted=True)).data_key is None


def test_a_manifest_stored_under_another_id_is_refused() -> None:
    other = "20261206T100000Z-00000002"
    data = encode_manifest(plain_manifest(other), None)
    with pytest.raises(ManifestTampered, match="moved or swapped"):
        decode_manifest(data, BACKUP, Trust())


@pytest.mark.parametrize("data", [b"", b"no header", b"{}\n{}", b"[1]\n{}", b"\xff\n{}"])
def test_bytes_that_are_no_manifest_are_refused(data: bytes) -> None:
    with pytest.raises(ManifestTampered):
        decode_manifest(data, BACKUP, Trust())


def test_a_manifest_with_a_bad_object_name_is_damaged() -> None:
    data = flip_in_body(encode_manifest(plain_manifest(), None), b'"config"', b'"../etc"')
    with pytest.raises(ManifestTampered, match="body is damaged"):
        decode_manifest(data, BACKUP, Trust())


def test_an_object_name_may_appear_only_once() -> None:
    twice = plain_manifest().model_dump() | {"objects": [ENTRY.model_dump()] * 2}
    with pytest.raises(ValidationError, match="appears twice"):
        Manifest.model_validate(twice)


def test_a_peek_reads_an_encrypted_manifest_without_the_key(keyring: BackupKeyring) -> None:
    manifest, data_key = encrypted(keyring)
    assert peek_manifest(encode_manifest(manifest, data_key), BACKUP) == manifest
