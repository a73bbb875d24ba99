"""Client credentials in memcached's ``-Y`` authfile format, checked by its ASCII auth.

The file holds ``user:password`` lines (the first ``:`` separates them, as memcached reads
it). With an authfile, a client connection's first command must be ``set <any key> <flags>
<exptime> <bytes>`` whose data is ``user password``: answered ``STORED`` when they match a
line, and every command before that is answered ``CLIENT_ERROR unauthenticated``
(memcached 1.5.15+; pymemcache and other clients send it as a plain ``set``).

Unlike memcached, which compares the password as a prefix (``bob pw2 z`` passes for
``bob:pw2``), the whole password must match, compared in constant time. The file must be
mode 0600 (or stricter) and owned by the server's user, like the cluster secret.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from hakeeper.config.secret_file import read_private_file
from hakeeper.errors import ConfigError

MAX_AUTHFILE_BYTES = 1 << 20
# The longest `user password` a client may send; longer data is refused before it is buffered.
MAX_TOKEN_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """The credentials of one read of the authfile."""

    entries: tuple[tuple[bytes, bytes], ...]

    def check(self, token: bytes) -> bool | None:
        """True for a known ``user password``, False for a wrong one, None if malformed."""
        user, sep, password = token.partition(b" ")
        password = password.strip(b" ")
        if not sep or not user or not password:
            return None
        found = False
        for known_user, known_password in self.entries:
            # Both compared for every entry: the time taken does not say which part differed.
            same_user = hmac.compare_digest(user, known_user)
            same_password = hmac.compare_digest(password, known_password)
            if same_user and same_password:
                found = True
        return found


def read_authfile(path: Path) -> ClientAuth:
    """The credentials in ``path``; a ConfigError naming the fix when it cannot be used."""
    data = read_private_file(
        path,
        MAX_AUTHFILE_BYTES + 1,
        missing=f"{path}: no client authfile there; write `user:password` lines there with "
        "mode 0600",
    )
    if len(data) > MAX_AUTHFILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_AUTHFILE_BYTES} bytes; not an authfile")
    entries: list[tuple[bytes, bytes]] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.strip(b"\r")
        if not line:
            continue
        user, sep, password = line.partition(b":")
        if not sep or not user or not password or b" " in user:
            raise ConfigError(
                f"{path}: line {number} is not `user:password` (memcached's -Y format)"
            )
        entries.append((user, password))
    if not entries:
        raise ConfigError(f"{path}: holds no `user:password` line")
    return ClientAuth(tuple(entries))
