"""Token parsing with memcached 1.6's rules (strtoul/strtol plus its range checks).

memcached accepts a leading ``+`` and rejects anything that is not plain decimal digits;
Python's ``int()`` would also take ``1_000`` and non-ASCII digits, hence these functions.
"""

from __future__ import annotations

# The memcached version this store answers as (`version`, `stats`).
VERSION = b"1.6.18"
KEY_MAX_LENGTH = 250
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1
MULTI_REPLY_COMMANDS = frozenset((b"get", b"gets", b"gat", b"gats", b"stats"))


def parse_u64(token: bytes) -> int | None:
    """strtoull as memcached's safe_strtoull accepts it, or None."""
    if token.isdigit() and len(token) < 20:
        return int(token)
    digits = token[1:] if token[:1] == b"+" else token
    if not digits.isdigit():
        return None
    value = int(digits)
    return value if value <= U64 else None


def parse_i64(token: bytes) -> int | None:
    """strtol as memcached's safe_strtol accepts it, or None."""
    if token.isdigit() and len(token) < 19:
        return int(token)
    sign = token[:1]
    digits = token[1:] if sign in (b"+", b"-") else token
    if not digits.isdigit():
        return None
    value = int(digits)
    if value > I64_MAX:
        return None
    return -value if sign == b"-" else value


def parse_flags(token: bytes) -> int | None:
    """Client flags: an unsigned number, kept modulo 2**32 as memcached 1.6 on 64-bit does."""
    if token == b"0":
        return 0
    value = parse_u64(token)
    return None if value is None else value & U32


def split_tokens(line: bytes) -> list[bytes]:
    """Split on spaces only (tabs belong to tokens) and drop empty tokens, as memcached."""
    tokens = line.split(b" ")
    if b"" in tokens:
        tokens = [token for token in tokens if token]
    return tokens
