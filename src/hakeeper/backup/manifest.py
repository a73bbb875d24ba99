"""The manifest of a backup, and the file it is stored as.

The stored manifest is two parts, one header line and the body after it::

    {"format": "hakeeper-backup", "format_version": 1, "hakeeper_version": "0.1.0",
     "mac": "hmac-sha256", "digest": "…"}
    {"backup_id": "…", "cluster": {…}, "objects": [{"name": …, "size": …, "sha256": …}], …}

The digest covers the body's exact bytes: an HMAC keyed from the backup's data key when the
backup is encrypted (so a changed byte anywhere is detected, and only a holder of the
operator's key could have written it), a plain SHA-256 when it is not (a changed byte is
detected, but anyone could have written it). The header is read first and alone, so that a
backup of a newer format is refused by its version, not by a parse error.

The body is readable without the key (ids, sizes, checksums, the cluster's identity), so a
store can be listed and pruned by a host that does not hold the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from hakeeper import __version__
from hakeeper.backup.errors import (
    BadObjectName,
    ForeignBackup,
    ManifestTampered,
    NewerFormat,
    WrongKey,
)
from hakeeper.backup.keys import BackupKeyring, DataKey, WrappedKey, unwrap_data_key
from hakeeper.backup.names import check_backup_id, check_object_name

FORMAT = "hakeeper-backup"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_HEADER_BYTES = 4096
MAX_OBJECTS = 100_000
MAX_EPOCHS = 1_000


def _as_value_error(check: Callable[[str], str]) -> Callable[[str], str]:
    """``check`` for a pydantic field: its refusal becomes a validation error of the field."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except BadObjectName as exc:
            raise ValueError(str(exc)) from None

    return validate


_ObjectName = Annotated[str, AfterValidator(_as_value_error(check_object_name))]
_BackupId = Annotated[str, AfterValidator(_as_value_error(check_backup_id))]
_Printable = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")]
_Hex = Annotated[str, Field(pattern=r"^([0-9a-f]{2})+$", max_length=512)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClusterIdentity(_Frozen):
    """Who the backup belongs to: the cluster's name and an id the caller gives (for
    example the coordination engine's cluster id), so that two clusters of one name differ."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    cluster_id: _Printable

    def describe(self) -> str:
        return f"{self.name} (id {self.cluster_id})"


class ObjectEntry(_Frozen):
    """One object as written: its name, its size in bytes and the SHA-256 of its bytes
    (before encryption)."""

    name: _ObjectName
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class StoreEpoch(_Frozen):
    """The epoch a named store (a session store, the coordination engine) was at."""

    name: _ObjectName
    epoch: Annotated[int, Field(ge=0)]


class Encryption(_Frozen):
    """How the objects are encrypted: AES-256-GCM in chunks of ``chunk_size`` bytes under a
    data key wrapped by the operator key ``key_id``."""

    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    chunk_size: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)]
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    wrapped_key_nonce: _Hex
    wrapped_key: _Hex

    def wrapped(self) -> WrappedKey:
        return WrappedKey(
            self.key_id, bytes.fromhex(self.wrapped_key_nonce), bytes.fromhex(self.wrapped_key)
        )

    @classmethod
    def of(cls, wrapped: WrappedKey, chunk_size: int) -> Encryption:
        return cls(
            chunk_size=chunk_size,
            key_id=wrapped.key_id,
            wrapped_key_nonce=wrapped.nonce.hex(),
            wrapped_key=wrapped.ciphertext.hex(),
        )


class Manifest(_Frozen):
    """Everything a backup records about itself."""

    backup_id: _BackupId
    format_version: int = FORMAT_VERSION
    hakeeper_version: _Printable = __version__
    cluster: ClusterIdentity
    coord_revision: Annotated[int, Field(ge=0)]
    epochs: Annotated[tuple[StoreEpoch, ...], Field(max_length=MAX_EPOCHS)] = ()
    created_at: AwareDatetime
    objects: Annotated[tuple[ObjectEntry, ...], Field(max_length=MAX_OBJECTS)]
    encryption: Encryption | None = None

    @model_validator(mode="after")
    def _names_unique(self) -> Manifest:
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError("an object name appears twice in the manifest")
        return self

    @property
    def total_size(self) -> int:
        return sum(o.size for o in self.objects)

    def entry(self, name: str) -> ObjectEntry | None:
        return next((o for o in self.objects if o.name == name), None)

    def epoch_of(self, name: str) -> int | None:
        return next((e.epoch for e in self.epochs if e.name == name), None)

    @staticmethod
    def epochs_from(mapping: Mapping[str, int]) -> tuple[StoreEpoch, ...]:
        return tuple(StoreEpoch(name=k, epoch=v) for k, v in sorted(mapping.items()))


class _Header(BaseModel):
    """The first line; read leniently (extra keys allowed) so a newer one still parses."""

    model_config = ConfigDict(frozen=True, extra="allow")

    format: str
    format_version: int
    hakeeper_version: str = "unknown"
    mac: str = ""
    digest: str = ""


def encode_manifest(manifest: Manifest, data_key: DataKey | None) -> bytes:
    """The stored form of ``manifest``; ``data_key`` is required iff it is encrypted."""
    if (data_key is None) != (manifest.encryption is None):
        raise ValueError("an encrypted manifest is authenticated with its data key")
    body = manifest.model_dump_json(indent=1).encode()
    if data_key is None:
        kind, digest = "sha256", hashlib.sha256(body).hexdigest()
    else:
        kind, digest = "hmac-sha256", data_key.manifest_mac(body)
    header = {
        "format": FORMAT,
        "format_version": manifest.format_version,
        "hakeeper_version": manifest.hakeeper_version,
        "mac": kind,
        "digest": digest,
    }
    return json.dumps(header).encode() + b"\n" + body


@dataclass(frozen=True, slots=True)
class Trust:
    """What a reader accepts: backups its ``keyring`` opens (none: only unencrypted ones),
    of the cluster ``expect`` (None: of any cluster). A reader holding a key refuses an
    unencrypted backup unless ``allow_unencrypted``: such a backup proves nothing about who
    wrote it, so accepting it by default would let a forged plain backup replace a sealed one."""

    keyring: BackupKeyring | None = None
    expect: ClusterIdentity | None = None
    allow_unencrypted: bool = False


@dataclass(frozen=True, slots=True)
class TrustedManifest:
    """A manifest whose digest held, with the data key that opens its objects (if any)."""

    manifest: Manifest
    data_key: DataKey | None


def _split(data: bytes, where: str) -> tuple[_Header, bytes]:
    """The header and the body bytes; refuses an oversized, damaged or newer manifest."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestTampered(f"{where}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    head, newline, body = data.partition(b"\n")
    if not newline or len(head) > MAX_HEADER_BYTES:
        raise ManifestTampered(f"{where}: the manifest has no header line (damaged)")
    try:
        header = _Header.model_validate_json(head)
    except ValidationError:
        raise ManifestTampered(f"{where}: the manifest header is damaged") from None
    if header.format != FORMAT:
        raise ManifestTampered(f"{where}: not a hakeeper backup manifest")
    if header.format_version > FORMAT_VERSION:
        raise NewerFormat(
            f"{where} is in format {header.format_version} (written by hakeeper "
            f"{header.hakeeper_version[:32]}); this hakeeper {__version__} reads format "
            f"{FORMAT_VERSION} at most: use a newer hakeeper"
        )
    return header, body


def _parse_body(body: bytes, where: str) -> Manifest:
    try:
        return Manifest.model_validate_json(body)
    except ValidationError as exc:
        raise ManifestTampered(
            f"{where}: the manifest body is damaged ({exc.error_count()} problems; use "
            "another backup)"
        ) from None


def peek_manifest(data: bytes, backup_id: str) -> Manifest:
    """The manifest's body, parsed but NOT authenticated: for listing and pruning, which
    need the dates and sizes but not the key. Never restore from a peeked manifest."""
    _, body = _split(data, f"backup {backup_id}")
    return _parse_body(body, f"backup {backup_id}")


def decode_manifest(data: bytes, backup_id: str, trust: Trust) -> TrustedManifest:
    """The manifest stored as ``data`` for ``backup_id``, checked in this order: size and
    header, format version (`NewerFormat`), body, key (`WrongKey`), digest
    (`ManifestTampered`), then the cluster (`ForeignBackup` when ``trust.expect`` differs)."""
    where = f"backup {backup_id}"
    header, body = _split(data, where)
    manifest = _parse_body(body, where)
    data_key = _check_digest(manifest, header, body, trust, where)
    if manifest.backup_id != backup_id or manifest.format_version != header.format_version:
        raise ManifestTampered(
            f"{where}: the manifest describes backup {manifest.backup_id} (moved or swapped)"
        )
    if trust.expect is not None and manifest.cluster != trust.expect:
        raise ForeignBackup(
            f"{where} belongs to cluster {manifest.cluster.describe()}, not to "
            f"{trust.expect.describe()} (pick a backup of this cluster, or give the identity it "
            "was made under)"
        )
    return TrustedManifest(manifest, data_key)


def _check_digest(
    manifest: Manifest,
    header: _Header,
    body: bytes,
    trust: Trust,
    where: str,
) -> DataKey | None:
    if manifest.encryption is None:
        if header.mac != "sha256":
            raise ManifestTampered(f"{where}: manifest digest kind {header.mac!r} is wrong")
        if trust.keyring is not None and not trust.allow_unencrypted:
            raise WrongKey(
                f"{where} is not encrypted, but a backup key was given: an unencrypted "
                "backup cannot prove who wrote it (allow unencrypted backups to read it)"
            )
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), header.digest):
            raise ManifestTampered(f"{where}: the manifest's checksum does not match its bytes")
        return None
    data_key = unwrap_data_key(trust.keyring, manifest.encryption.wrapped(), manifest.backup_id)
    if header.mac != "hmac-sha256" or not hmac.compare_digest(
        data_key.manifest_mac(body), header.digest
    ):
        raise ManifestTampered(
            f"{where}: the manifest fails its authentication: it was changed after it was "
            "written (use another backup)"
        )
    return data_key
