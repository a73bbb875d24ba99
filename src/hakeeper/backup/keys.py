"""The operator's backup key and the per-backup data key it wraps.

The key file (mode 0600, read with the private-file reader of `hakeeper.config.secret_file`)
holds one key per line, each 32 random bytes in URL-safe base64 (``#`` starts a comment):
the **first** key encrypts new backups, **every** key may open old ones, so a key is rotated
by adding the new one first and dropping the old one once no kept backup needs it.

The backup key is not the cluster secret: whoever steals a node's cluster secret must not be
able to read the backups of a site that was lost, and the other way round. `load_keyring`
refuses the cluster secret's file.

Each backup gets a fresh random data key. It is stored in the manifest wrapped (AES-256-GCM)
by the operator's key, with the backup id as associated data, beside the operator key's id
(an HMAC of the key, which says nothing about the key itself), so that a wrong key is named
as such before any object is read. From the data key, HKDF derives one key that encrypts the
objects' chunks and one that authenticates the manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hakeeper.backup.errors import ManifestTampered, WrongKey
from hakeeper.config.secret_file import create_private_file, read_private_file
from hakeeper.errors import ConfigError

KEY_BYTES = 32
NONCE_BYTES = 12
MAX_KEY_FILE_BYTES = 16 * 1024
_KEY_ID_LABEL = b"hakeeper backup key id"


def make_key_command(path: Path | str) -> str:
    """A shell command that writes a new key file at ``path`` (mode 0600)."""
    return f"(umask 077; head -c 32 /dev/urandom | base64 | tr '+/' '-_' > {path})"


_WRAP_LABEL = b"hakeeper backup data key\x00"


def _key_id(key: bytes) -> str:
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class BackupKey:
    """One operator key: 32 bytes, known in manifests by its `key_id`."""

    secret: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ConfigError(f"a backup key is {KEY_BYTES} bytes, not {len(self.secret)}")
        object.__setattr__(self, "key_id", _key_id(self.secret))


@dataclass(frozen=True, slots=True)
class BackupKeyring:
    """The keys of one read of the key file: ``current`` encrypts, all of them decrypt."""

    keys: tuple[BackupKey, ...]
    source: str

    @property
    def current(self) -> BackupKey:
        return self.keys[0]

    def find(self, key_id: str) -> BackupKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def generate_key_text() -> str:
    """A new random backup key as one line of the key file."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_keys(text: str, source: str) -> BackupKeyring:
    keys: list[BackupKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            secret = base64.b64decode(line.encode("ascii"), altchars=b"-_", validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            secret = b""
        if len(secret) != KEY_BYTES:
            raise ConfigError(
                f"{source}: line {number} is not a backup key ({KEY_BYTES} random bytes in "
                f"URL-safe base64, 44 characters; make a new file with: "
                f"{make_key_command(source)})"
            )
        key = BackupKey(secret)
        if all(k.key_id != key.key_id for k in keys):
            keys.append(key)
    if not keys:
        raise ConfigError(f"{source}: holds no backup key (make one: {make_key_command(source)})")
    return BackupKeyring(tuple(keys), source)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def load_keyring(path: Path, *, cluster_secret_path: Path | None = None) -> BackupKeyring:
    """The backup keys in ``path`` (mode 0600). Refuses the cluster secret's file: the two
    keys protect different things and must not fall together."""
    if cluster_secret_path is not None and _same_file(path, cluster_secret_path):
        raise ConfigError(
            f"{path}: is the cluster secret file; the backup key must be a different file "
            "(a separate 0600 file kept off the nodes' copies of the cluster secret)"
        )
    data = read_private_file(
        path,
        MAX_KEY_FILE_BYTES,
        missing=f"{path}: no backup key there (make one: {make_key_command(path)}; keep a "
        "copy off the cluster, or the backups die with it)",
    )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: a backup key file holds ASCII lines only") from None
    return parse_keys(text, str(path))


def write_key_file(path: Path) -> BackupKeyring:
    """Create ``path`` (mode 0600) holding one new key; never replaces an existing file."""
    text = generate_key_text() + "\n"
    create_private_file(
        path,
        text,
        exists=f"{path}: exists already; a backup key is never overwritten (backups made "
        "with it could no longer be read)",
    )
    return parse_keys(text, str(path))


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as the manifest stores it: wrapped by the operator key ``key_id``."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


class DataKey:
    """The random key of one backup, with the two keys HKDF derives from it."""

    __slots__ = ("_chunk_key", "_mac_key")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes")
        self._chunk_key = _derive(secret, b"hakeeper backup chunks")
        self._mac_key = _derive(secret, b"hakeeper backup manifest")

    def __repr__(self) -> str:
        return "DataKey(<hidden>)"

    @classmethod
    def generate(cls) -> tuple[DataKey, bytes]:
        """A new data key and its raw bytes (to wrap; never stored in the clear)."""
        secret = secrets.token_bytes(KEY_BYTES)
        return cls(secret), secret

    def aead(self) -> AESGCM:
        return AESGCM(self._chunk_key)

    def manifest_mac(self, body: bytes) -> str:
        return hmac.new(self._mac_key, body, hashlib.sha256).hexdigest()


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def wrap_data_key(key: BackupKey, raw: bytes, backup_id: str) -> WrappedKey:
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key.secret).encrypt(nonce, raw, _WRAP_LABEL + backup_id.encode())
    return WrappedKey(key.key_id, nonce, sealed)


def unwrap_data_key(keyring: BackupKeyring | None, wrapped: WrappedKey, backup_id: str) -> DataKey:
    """The backup's data key; `WrongKey` when the keyring lacks the key it was wrapped with,
    `ManifestTampered` when the right key fails to open it (the stored bytes changed)."""
    if keyring is None:
        raise WrongKey(
            f"backup {backup_id} is encrypted (key id {wrapped.key_id}); give the backup key "
            "file it was made with"
        )
    key = keyring.find(wrapped.key_id)
    if key is None:
        held = ", ".join(k.key_id for k in keyring.keys)
        raise WrongKey(
            f"wrong key for backup {backup_id}: it was encrypted with key id {wrapped.key_id}, "
            f"{keyring.source} holds {held} (give the key file it was made with, or add that "
            "key as a later line of this one)"
        )
    try:
        raw = AESGCM(key.secret).decrypt(
            wrapped.nonce, wrapped.ciphertext, _WRAP_LABEL + backup_id.encode()
        )
    except InvalidTag:
        raise ManifestTampered(
            f"backup {backup_id}: its wrapped data key does not open with key {key.key_id} "
            "although the key id matches: the manifest was changed or damaged (use another "
            "backup)"
        ) from None
    return DataKey(raw)
