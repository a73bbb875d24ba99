"""The runtime API's bearer token: made here, kept by operators in a 0600 file, stored hashed.

The balancer file holds only ``token_hash = "sha256:<hex>"``. Why SHA-256 and not a slow
KDF (scrypt, PBKDF2): the token is 32 random bytes made by `new_token`, not a password a
person chose, so there is nothing to guess (2^256 tries) and a slow hash would protect
nothing; it would only make every API request cost tens of milliseconds of CPU, which an
unauthenticated client could then ask for at will. Comparison is constant-time
(`hmac.compare_digest` of the digests).

The token file (for `hakeeper lb --token-file`) holds the token on its first line; it is
refused when group or others may read it, like the cluster secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

from hakeeper.config.secret_file import create_private_file, read_private_file
from hakeeper.errors import ConfigError

PREFIX = "sha256:"
MAX_TOKEN_BYTES = 256  # a longer Authorization value is refused before it is hashed
_TOKEN = re.compile(rf"[!-~]{{1,{MAX_TOKEN_BYTES}}}")  # visible ASCII, no spaces


def new_token() -> str:
    """32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What ``[api] token_hash`` holds for ``token``."""
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def token_matches(presented: str, token_hash: str) -> bool:
    """Whether ``presented`` is the token whose digest is ``token_hash`` (constant time)."""
    if len(presented) > MAX_TOKEN_BYTES:
        return False
    return hmac.compare_digest(token_digest(presented).encode(), token_hash.encode())


def write_token_file(path: Path, token: str) -> None:
    """Create ``path`` (mode 0600) holding ``token``; an existing file is never overwritten."""
    create_private_file(
        path,
        token + "\n",
        exists=f"{path}: exists already; a token file is never overwritten (remove it first "
        "if you mean to replace the token, or choose another --file)",
    )


def read_token_file(path: Path) -> str:
    """The token in ``path``; a `ConfigError` naming the fix when missing, open or empty."""
    data = read_private_file(
        path,
        4096,
        missing=f"{path}: no token file there (make one with `hakeeper lb token --file {path}`)",
    )
    lines = [line.strip() for line in data.decode("ascii", "replace").splitlines()]
    token = next((line for line in lines if line and not line.startswith("#")), "")
    if not _TOKEN.fullmatch(token):
        raise ConfigError(
            f"{path}: holds no token (one printable line; make one with "
            "`hakeeper lb token --file PATH`)"
        )
    return token
