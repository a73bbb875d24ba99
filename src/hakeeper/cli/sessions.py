"""`hakeeper sessions`: run a session-store node and drive its replication by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.errors import HakeeperError
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.command_line import DEFAULT_SECRET_FILE
from hakeeper.sessions.command_line import main as serve_main
from hakeeper.sessions.position import Position
from hakeeper.sessions.tls import PeerTls, peer_tls

app = typer.Typer(help="The replicated memcached-protocol session store.", no_args_is_help=True)
console = Console()

SecretOption = Annotated[
    Path,
    typer.Option(help="The cluster secret (mode 0600) the peer port's handshake proves."),
]
TlsCertOption = Annotated[
    Path | None, typer.Option(help="Peer TLS: this node's PEM certificate (signed by the CA).")
]
TlsKeyOption = Annotated[Path | None, typer.Option(help="Peer TLS: its key (mode 0600).")]
TlsCaOption = Annotated[
    Path | None, typer.Option(help="Peer TLS: the CA every node's certificate is signed by.")
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def serve(ctx: typer.Context) -> None:
    """Serve the memcached text protocol until SIGTERM or SIGINT (options: serve --help)."""
    # The options are the store server's own (python -m hakeeper.sessions): one definition,
    # which the resource agent uses too.
    raise typer.Exit(serve_main(ctx.args, prog="hakeeper sessions serve"))


def _show(position: Position, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "log_epoch": position.log_epoch,
                    "seq": position.seq,
                    "seen_epoch": position.seen_epoch,
                    "role": position.role.value,
                }
            )
        )
    else:
        console.print(
            f"role [bold]{position.role.value}[/bold]  epoch {position.log_epoch}  "
            f"seq {position.seq}  seen epoch {position.seen_epoch}"
        )


async def _control(
    address: str, line: bytes, timeout: float, secret_file: Path, tls: PeerTls | None
) -> bytes:
    ssl = tls.client_context() if tls is not None else None
    async with SessionClient(address, timeout=timeout, secret_file=secret_file, ssl=ssl) as client:
        return await client.command(line)


def _run_control(
    address: str,
    line: bytes,
    timeout: float,
    secret_file: Path,
    tls: tuple[Path | None, Path | None, Path | None],
) -> bytes:
    try:
        return asyncio.run(_control(address, line, timeout, secret_file, peer_tls(*tls)))
    except HakeeperError as exc:
        typer.echo(f"hakeeper sessions: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def position(
    address: Annotated[str, typer.Argument(help="host:port of the node's peer port.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 5.0,
    secret_file: SecretOption = DEFAULT_SECRET_FILE,
    peer_tls_cert: TlsCertOption = None,
    peer_tls_key: TlsKeyOption = None,
    peer_tls_ca: TlsCaOption = None,
) -> None:
    """Show a node's role and replication position (epoch, seq)."""
    tls = (peer_tls_cert, peer_tls_key, peer_tls_ca)
    _show(Position.parse(_run_control(address, b"hk_position", timeout, secret_file, tls)), as_json)


@app.command()
def fence(
    address: Annotated[str, typer.Argument(help="host:port of the node's peer port.")],
    epoch: Annotated[int, typer.Argument(help="The new epoch: older primaries are refused.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 5.0,
    secret_file: SecretOption = DEFAULT_SECRET_FILE,
    peer_tls_cert: TlsCertOption = None,
    peer_tls_key: TlsKeyOption = None,
    peer_tls_ca: TlsCaOption = None,
) -> None:
    """Make a node refuse every epoch older than EPOCH; show its final position."""
    tls = (peer_tls_cert, peer_tls_key, peer_tls_ca)
    reply = _run_control(address, b"hk_fence %d" % epoch, timeout, secret_file, tls)
    _show(Position.parse(reply), as_json)


@app.command()
def promote(
    address: Annotated[str, typer.Argument(help="host:port of the node's peer port.")],
    epoch: Annotated[int, typer.Argument(help="The epoch of the new primary.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 5.0,
    secret_file: SecretOption = DEFAULT_SECRET_FILE,
    peer_tls_cert: TlsCertOption = None,
    peer_tls_key: TlsKeyOption = None,
    peer_tls_ca: TlsCaOption = None,
) -> None:
    """Make a node the primary of EPOCH (fence a majority with EPOCH first)."""
    tls = (peer_tls_cert, peer_tls_key, peer_tls_ca)
    _run_control(address, b"hk_promote %d" % epoch, timeout, secret_file, tls)
    console.print(f"{address} is the primary of epoch {epoch}")


if __name__ == "__main__":
    app()
