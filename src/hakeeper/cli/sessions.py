"""`hakeeper sessions`: run a session-store node and drive its replication by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.cli.logs import setup_logging
from hakeeper.errors import HakeeperError
from hakeeper.sessions.addresses import split_address
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.position import Position
from hakeeper.sessions.server import run
from hakeeper.sessions.tls import PeerTls, peer_tls

app = typer.Typer(help="The replicated memcached-protocol session store.", no_args_is_help=True)
console = Console()

SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
DEFAULT_SECRET_FILE = Path("/etc/hakeeper/secret")
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


def parse_size(text: str) -> int:
    unit = SIZE_UNITS.get(text[-1:].lower())
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise typer.BadParameter(f"{text!r} is not a size like 64m, 512k or 1048576")
    return int(number) * (unit or 1)


def default_peer_address(listen: str) -> str:
    """The peer port's default: the client address's host, its port + 1."""
    host, port = split_address(listen)
    if port >= 65535:
        raise typer.BadParameter(f"--listen {listen}: no port + 1 for peers; give --peer-listen")
    return f"{host}:{port + 1}"


@app.command()
def serve(
    listen: Annotated[str, typer.Option(help="host:port for memcached clients.")] = (
        "127.0.0.1:11211"
    ),
    peer_listen: Annotated[
        str,
        typer.Option(
            help="host:port of the peer port (replication, forwarding, control; secret "
            "proven first): the node's cluster address. Default: --listen's port + 1."
        ),
    ] = "",
    peers: Annotated[
        str,
        typer.Option(
            help="Every node's peer host:port (--peer-listen), comma-separated; this node's "
            "own may be included; empty = standalone."
        ),
    ] = "",
    secret_file: SecretOption = DEFAULT_SECRET_FILE,
    peer_tls_cert: TlsCertOption = None,
    peer_tls_key: TlsKeyOption = None,
    peer_tls_ca: TlsCaOption = None,
    authfile: Annotated[
        Path | None,
        typer.Option(
            "--authfile",
            "-Y",
            help="memcached -Y file of user:password lines (mode 0600): clients must "
            "authenticate (ASCII auth).",
        ),
    ] = None,
    max_connections: Annotated[
        int, typer.Option("--max-connections", "-c", help="Client connections at most.")
    ] = 1024,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds a silent client connection stays open (0 = forever).")
    ] = 300.0,
    request_timeout: Annotated[
        float, typer.Option(help="Seconds a started request may take to arrive whole.")
    ] = 30.0,
    epoch: Annotated[
        int, typer.Option(help="Highest epoch known (fencing): older stream messages refused.")
    ] = 0,
    primary: Annotated[bool, typer.Option(help="Start as the primary of --epoch.")] = False,
    stale_reads: Annotated[bool, typer.Option(help="Replicas answer reads locally.")] = False,
    memory: Annotated[str, typer.Option(help="Memory bound (LRU eviction beyond).")] = "64m",
    item_size_max: Annotated[str, typer.Option(help="Largest item.")] = "1m",
    write_timeout: Annotated[
        float,
        typer.Option(help="Seconds a reply may wait for a majority before the connection drops."),
    ] = 5.0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Serve the memcached text protocol until SIGTERM or SIGINT."""
    setup_logging(log_level)
    identity = peer_listen or default_peer_address(listen)
    peer_list = tuple(p for p in peers.split(",") if p and p != identity)
    if max_connections < 1 or idle_timeout < 0 or request_timeout <= 0:
        raise typer.BadParameter(
            "--max-connections must be at least 1, --idle-timeout at least 0 and "
            "--request-timeout more than 0"
        )
    try:
        tls = peer_tls(peer_tls_cert, peer_tls_key, peer_tls_ca)
    except HakeeperError as exc:
        raise typer.BadParameter(str(exc)) from exc
    config = NodeConfig(
        address=listen,
        peers=peer_list,
        peer_address=identity,
        secret_file=secret_file if peer_list else None,
        peer_tls=tls,
        authfile=authfile,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        replicated=bool(peer_list),
        stale_reads=stale_reads,
        start_epoch=epoch,
        write_timeout=write_timeout,
        forward_timeout=write_timeout,
        memory_limit=parse_size(memory),
        item_size_max=parse_size(item_size_max),
    )
    if primary and not peer_list:
        raise typer.BadParameter("--primary needs --peers (a standalone node has no epochs)")
    try:
        run(config, promote_epoch=epoch if primary else None)
    except HakeeperError as exc:
        typer.echo(f"hakeeper sessions serve: {exc}", err=True)
        raise typer.Exit(2) from exc


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
