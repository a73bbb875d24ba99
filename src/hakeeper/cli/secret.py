"""`hakeeper secret rotate`: change the cluster secret with no restart and no outage.

A secret file lists one secret per line: the first is the one this host proves, every line is
accepted (`hakeeper.config.secret_file`). Members re-read the file at each handshake and close
connections whose peer proved a secret no longer listed, so a rotation is three edits of the
file on every host, each finished on all hosts before the next begins:

1. ``add``: append a new random secret (or, with ``--from``, the newest secret of a copy of
   another host's file). Every host now accepts both; each still proves the old one.
2. ``promote``: move the newest secret to the first line. Hosts prove the new secret; the old
   one is still accepted from hosts that have not promoted yet.
3. ``drop``: keep only the first line. Connections still proved with the old secret are
   closed and redialled with the new one.

Each edit writes a temporary file of mode 0600 in the same directory, fsyncs it and renames it
over the old one, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import secrets as random_tokens
from pathlib import Path
from typing import Annotated

import typer

from hakeeper.api import hints
from hakeeper.config.secret_file import generate_secret, read_secret_file
from hakeeper.errors import ConfigError

app = typer.Typer(help="Manage the cluster secret file.", no_args_is_help=True)
rotate_app = typer.Typer(
    help="Rotate the cluster secret without downtime: add, then promote, then drop, each on "
    "every host before the next.",
    no_args_is_help=True,
)
app.add_typer(rotate_app, name="rotate")

SecretFileOption = Annotated[
    Path, typer.Option("--secret-file", help="The cluster secret file (mode 0600) to edit.")
]


def write_secrets(path: Path, values: list[bytes]) -> None:
    """Replace ``path`` atomically by a file of mode 0600 holding ``values``, one per line."""
    directory = path.parent
    temporary = directory / f".{path.name}.{random_tokens.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(b"".join(value + b"\n" for value in values))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def add_secret(path: Path, source: Path | None = None) -> bytes:
    """Append a new secret (random, or the newest of ``source``) as accepted; return it."""
    held = list(read_secret_file(path).accepted)
    new = read_secret_file(source).accepted[-1] if source else generate_secret().encode()
    if new in held:
        raise ConfigError(f"{path}: holds that secret already; nothing to add")
    write_secrets(path, [*held, new])
    return new


def promote_secret(path: Path) -> bool:
    """Make the newest secret the one this host proves; False when it already is."""
    held = list(read_secret_file(path).accepted)
    if len(held) < 2:
        return False
    write_secrets(path, [held[-1], *held[:-1]])
    return True


def drop_secrets(path: Path) -> int:
    """Keep only the secret this host proves; return how many were dropped."""
    held = list(read_secret_file(path).accepted)
    if len(held) > 1:
        write_secrets(path, held[:1])
    return len(held) - 1


def _fail(exc: ConfigError | OSError) -> typer.Exit:
    typer.echo(f"hakeeper secret rotate: {exc}", err=True)
    return typer.Exit(2)


@rotate_app.command("add")
def add(
    secret_file: SecretFileOption,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A copy (mode 0600) of the file of the host that ran `add` first: its newest "
            "secret is added instead of a new random one, so every host adds the same.",
        ),
    ] = None,
) -> None:
    """Step 1: append a new secret; every host accepts it from now on."""
    path = secret_file.absolute()
    try:
        add_secret(path, from_file)
    except (ConfigError, OSError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"{path}: a new secret is accepted; this host still proves the old one.")
    typer.echo("Give every other host the same new secret: copy this file to the same path there")
    typer.echo("(mode 0600), or copy it anywhere and add its newest line there with --from.")
    typer.echo("Once every host holds it, run on each host:")
    typer.echo(hints.hakeeper("secret", "rotate", "promote", "--secret-file", str(path)))


@rotate_app.command("promote")
def promote(secret_file: SecretFileOption) -> None:
    """Step 2: prove the newest secret (the old one is still accepted)."""
    path = secret_file.absolute()
    try:
        changed = promote_secret(path)
    except (ConfigError, OSError) as exc:
        raise _fail(exc) from exc
    if not changed:
        typer.echo(f"{path}: holds one secret only; add a new one first with:")
        typer.echo(hints.hakeeper("secret", "rotate", "add", "--secret-file", str(path)))
        return
    typer.echo(f"{path}: this host now proves the newest secret.")
    typer.echo("Once every host has promoted, run on each host:")
    typer.echo(hints.hakeeper("secret", "rotate", "drop", "--secret-file", str(path)))


@rotate_app.command("drop")
def drop(secret_file: SecretFileOption) -> None:
    """Step 3: stop accepting every secret but the one this host proves."""
    path = secret_file.absolute()
    try:
        dropped = drop_secrets(path)
    except (ConfigError, OSError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"{path}: dropped {dropped} old secret(s); only the current one is accepted.")
