"""The store server's command line: ``python -m hakeeper.sessions [options]``.

The `sessions` resource agent starts a node this way, and ``hakeeper sessions serve`` hands
its arguments here, so the options, their checks and their help are written once, in the
package that serves them. Bad options exit 2 with a message naming the option; a node that
cannot start (a port in use, an unusable secret file) exits 2 with the error and its fix.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hakeeper.errors import HakeeperError
from hakeeper.model.address import HostPort, split_address
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.server import run
from hakeeper.sessions.tls import peer_tls

SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
DEFAULT_SECRET_FILE = Path("/etc/hakeeper/secret")
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class OptionError(ValueError):
    """A bad option value; the message names the option and what it takes."""


def parse_size(text: str) -> int:
    """``64m``, ``512k``, ``1g`` or a number of bytes."""
    unit = SIZE_UNITS.get(text[-1:].lower())
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise OptionError(f"{text!r} is not a size like 64m, 512k or 1048576")
    return int(number) * (unit or 1)


def default_peer_address(listen: str) -> str:
    """The peer port's default: the client address's host, its port + 1."""
    host, port = split_address(listen, listen=True)
    if not 0 < port < 65535:
        raise OptionError(f"--listen {listen}: no port + 1 for peers; give --peer-listen")
    return str(HostPort(host, port + 1))


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve the memcached text protocol until SIGTERM or SIGINT.",
        allow_abbrev=False,
    )
    p.add_argument("--listen", default="127.0.0.1:11211", help="host:port for memcached clients.")
    p.add_argument(
        "--peer-listen",
        default="",
        help="host:port of the peer port (replication, forwarding, control; secret proven "
        "first): the node's cluster address. Default: --listen's port + 1.",
    )
    p.add_argument(
        "--peers",
        default="",
        help="Every node's peer host:port (--peer-listen), comma-separated; this node's own "
        "may be included; empty = standalone.",
    )
    p.add_argument(
        "--secret-file",
        type=Path,
        default=DEFAULT_SECRET_FILE,
        help="The cluster secret (mode 0600) the peer port's handshake proves.",
    )
    p.add_argument(
        "--peer-tls-cert",
        type=Path,
        help="Peer TLS: this node's PEM certificate (signed by the CA).",
    )
    p.add_argument("--peer-tls-key", type=Path, help="Peer TLS: its key (mode 0600).")
    p.add_argument(
        "--peer-tls-ca", type=Path, help="Peer TLS: the CA every node's certificate is signed by."
    )
    p.add_argument(
        "--authfile",
        "-Y",
        type=Path,
        help="memcached -Y file of user:password lines (mode 0600): clients must authenticate "
        "(ASCII auth).",
    )
    p.add_argument(
        "--max-connections", "-c", type=int, default=1024, help="Client connections at most."
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="Seconds a silent client connection stays open (0 = forever).",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        help="Seconds a started request may take to arrive whole.",
    )
    p.add_argument(
        "--epoch",
        type=int,
        default=0,
        help="Highest epoch known (fencing): older stream messages refused.",
    )
    p.add_argument(
        "--primary",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Start as the primary of --epoch.",
    )
    p.add_argument(
        "--stale-reads",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Replicas answer reads locally.",
    )
    p.add_argument("--memory", default="64m", help="Memory bound (LRU eviction beyond).")
    p.add_argument("--item-size-max", default="1m", help="Largest item.")
    p.add_argument(
        "--write-timeout",
        type=float,
        default=5.0,
        help="Seconds a reply may wait for a majority before the connection drops.",
    )
    p.add_argument("--log-level", default="INFO", help="Log level.")
    return p


def node_config(args: argparse.Namespace) -> NodeConfig:
    """The node's options from parsed arguments; OptionError names a bad one."""
    identity = args.peer_listen or default_peer_address(args.listen)
    peers = tuple(p for p in args.peers.split(",") if p and p != identity)
    if args.max_connections < 1 or args.idle_timeout < 0 or args.request_timeout <= 0:
        raise OptionError(
            "--max-connections must be at least 1, --idle-timeout at least 0 and "
            "--request-timeout more than 0"
        )
    try:
        tls = peer_tls(args.peer_tls_cert, args.peer_tls_key, args.peer_tls_ca)
    except HakeeperError as exc:
        raise OptionError(str(exc)) from exc
    config = NodeConfig(
        address=args.listen,
        peers=peers,
        peer_address=identity,
        secret_file=args.secret_file if peers else None,
        peer_tls=tls,
        authfile=args.authfile,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        request_timeout=args.request_timeout,
        replicated=bool(peers),
        stale_reads=args.stale_reads,
        start_epoch=args.epoch,
        write_timeout=args.write_timeout,
        forward_timeout=args.write_timeout,
        memory_limit=parse_size(args.memory),
        item_size_max=parse_size(args.item_size_max),
    )
    if args.primary and not peers:
        raise OptionError("--primary needs --peers (a standalone node has no epochs)")
    return config


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m hakeeper.sessions") -> int:
    """Parse ``argv``, serve until SIGTERM or SIGINT; the exit status."""
    p = parser(prog)
    args = p.parse_args(argv)
    try:
        config = node_config(args)
    except ValueError as exc:  # an OptionError, or a --listen that is not host:port
        p.error(str(exc))
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        run(config, promote_epoch=args.epoch if args.primary else None)
    except HakeeperError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0
