"""The cluster secret: a file of mode 0600 named by path, never a value in the config.

Corosync keeps its authkey in a file of mode 0400 that every node holds; hakeeper does the
same. The file holds one secret per line (``#`` starts a comment line):

- the **first** secret is the one this host proves itself with;
- **every** secret in the file is accepted from peers.

So a rotation without downtime is three edits of the file on every host (``hakeeper secret
rotate`` makes them): add the new secret as a second line (every peer accepts both), move it
to the first line (every peer proves with the new one, still accepts the old), drop the old
line. `SecretFile` re-reads the file when it changes, so no process restarts for it.

The file is refused when group or others may read or write it, or when it is owned by
another user than the reader (root may read any): a secret others can read is no secret.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from hakeeper.errors import ConfigError

MIN_SECRET_BYTES = 16
"""A shorter secret can be guessed offline from one recorded handshake."""


@dataclass(frozen=True, slots=True)
class ClusterSecret:
    """The secrets of one read of the file: ``current`` first, then the others accepted."""

    accepted: tuple[bytes, ...]

    @property
    def current(self) -> bytes:
        return self.accepted[0]


def generate_secret() -> str:
    """A new random secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def parse_secrets(text: str, source: str) -> ClusterSecret:
    found: list[bytes] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        value = line.encode()
        if len(value) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{source}: line {number}: a secret must be at least {MIN_SECRET_BYTES} bytes "
                f"(add a random one: hakeeper secret rotate add --secret-file {source})"
            )
        if value not in found:
            found.append(value)
    if not found:
        raise ConfigError(
            f"{source}: holds no secret (write one with `hakeeper init`, or put a random "
            "line of at least 16 characters in it)"
        )
    return ClusterSecret(tuple(found))


def mode_problem(path: Path, st: os.stat_result) -> str | None:
    """Why a secret file with this status must not be used, or None when it may."""
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: is not a regular file"
    if st.st_mode & 0o077:
        return (
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others read it "
            f"(fix: chmod 600 {path})"
        )
    uid = os.geteuid()
    if st.st_uid != uid and uid != 0:
        return f"{path}: owned by uid {st.st_uid}, not by this user (fix: chown {uid} {path})"
    return None


def read_private_file(path: Path, limit: int, *, missing: str) -> bytes:
    """At most ``limit`` bytes of a file only its owner may read (a secret, a password, a
    token, credentials). Refuses a symbolic link and a file group or others may read or
    write, each with the fix; ``missing`` is the whole message when there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        problem = mode_problem(path, os.fstat(handle.fileno()))
        if problem is not None:
            raise ConfigError(problem)
        return handle.read(limit)


def create_private_file(path: Path, text: str, *, exists: str) -> None:
    """Create ``path`` holding ``text``, mode 0600 whatever the umask; an existing file is
    never replaced (``exists`` is the whole message then)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ConfigError(exists) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def read_secret_file(path: Path) -> ClusterSecret:
    """The secrets in ``path``; a `ConfigError` naming the fix when it is missing or open."""
    data = read_private_file(
        path,
        64 * 1024,
        missing=f"{path}: no cluster secret there (write one with `hakeeper init`, or copy "
        "the secret file of another node there with mode 0600)",
    )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: a secret file holds printable ASCII lines only "
            "(write a new one with `hakeeper init`)"
        ) from None
    return parse_secrets(text, str(path))


def write_secret_file(path: Path, secret: str | None = None) -> ClusterSecret:
    """Create ``path`` (mode 0600) with one secret; refuses to overwrite an existing file."""
    value = generate_secret() if secret is None else secret
    parsed = parse_secrets(value, str(path))
    create_private_file(
        path,
        value + "\n",
        exists=f"{path}: exists already; a cluster secret is never overwritten (remove it "
        f"first if you mean to, or rotate: hakeeper secret rotate add --secret-file {path})",
    )
    return parsed


class SecretFile:
    """A secret file re-read whenever it changes (size, mtime or inode), for rotation.

    ``get()`` costs one ``stat`` when nothing changed; it is meant for connection set-up,
    not for every frame. A file that became unreadable, malformed or open to others keeps
    the last good secrets in use; ``problem`` says why until the file is mended, for the
    caller to log and for ``hakeeper check``.
    """

    __slots__ = ("_key", "_secret", "path", "problem")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._secret = read_secret_file(path)
        self._key = self._stat_key()
        self.problem: str | None = None

    def _stat_key(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self) -> ClusterSecret:
        try:
            key = self._stat_key()
        except OSError:
            return self._secret
        if key != self._key:
            self._key = key
            try:
                self._secret = read_secret_file(self.path)
            except ConfigError as exc:
                self.problem = str(exc)
            else:
                self.problem = None
        return self._secret
