"""The bounds on object names and backup ids, checked before either touches a path or a key.

An object name is a relative path of at most `MAX_NAME_LENGTH` characters, segments joined by
``/``, each made of letters, digits and ``. _ - + = @ :``. That refuses, with the reason, an
absolute name, a ``..`` or ``.`` segment (climbing out of the backup), an empty segment, and
any control character: a name is used as a file path under the backup's directory and as part
of an object-store key, and is printed to operators.

A backup id is made by the writer from the creation time and a random token,
``20261206T102500Z-3f9a1c2b``: ids sort by time, and the id alone shows when it was taken.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from hakeeper.backup.errors import BadObjectName

MAX_NAME_LENGTH = 200
MAX_SEGMENTS = 16
_SEGMENT = re.compile(r"[A-Za-z0-9._+=@:-]+")
_BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
_ID_TIME = "%Y%m%dT%H%M%SZ"


def check_object_name(name: str) -> str:
    """``name`` itself when it is a valid object name; `BadObjectName` saying why if not."""
    shown = ascii(name[:MAX_NAME_LENGTH])
    if not name:
        raise BadObjectName("an object name is empty (give each object a name such as 'config')")
    if len(name) > MAX_NAME_LENGTH:
        raise BadObjectName(
            f"object name {shown}… is {len(name)} characters; at most {MAX_NAME_LENGTH}"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadObjectName(f"object name {shown} holds a control character (remove it)")
    if name.startswith("/"):
        raise BadObjectName(f"object name {shown} is absolute; give a relative name")
    segments = name.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise BadObjectName(f"object name {shown} has more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if segment in ("..", "."):
            raise BadObjectName(
                f"object name {shown} has a {segment!r} segment, which would leave the backup"
            )
        if not segment:
            raise BadObjectName(f"object name {shown} has an empty segment ('//' or a final '/')")
        if not _SEGMENT.fullmatch(segment):
            raise BadObjectName(
                f"object name {shown}: use letters, digits and . _ - + = @ : between '/' only"
            )
    return name


def check_backup_id(backup_id: str) -> str:
    """``backup_id`` itself when it has the writer's form; `BadObjectName` if not."""
    if not _BACKUP_ID.fullmatch(backup_id):
        raise BadObjectName(
            f"{backup_id[:64]!a} is not a backup id (ids look like "
            "20261206T102500Z-3f9a1c2b; `hakeeper backup list` shows them)"
        )
    return backup_id


def is_backup_id(text: str) -> bool:
    return _BACKUP_ID.fullmatch(text) is not None


def new_backup_id(created_at: datetime) -> str:
    """A fresh id for a backup created at ``created_at`` (converted to UTC)."""
    stamp = created_at.astimezone(UTC).strftime(_ID_TIME)
    return f"{stamp}-{secrets.token_hex(4)}"
