"""A tiny HTTP service for the loopback lab, the demo and the failover benchmark.

``python -m hakeeper.lab.http_app --port 8080 [--bind ADDR] [--record FILE]`` answers
``GET /`` with ``<name> on <node>`` and appends ``start``/``stop`` lines to ``--record``, with
the system-wide monotonic clock and the fencing token it was started under (``HAKEEPER_EPOCH``),
so a checker can prove from the service's own records that two holders never overlapped.
``--bind`` defaults to ``$HAKEEPER_NODE_ADDRESS`` (set by the agent).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def record(path: Path | None, what: str, name: str, node: str) -> None:
    if path is None:
        return
    with path.open("a") as out:
        epoch = os.environ.get("HAKEEPER_EPOCH", "0")
        out.write(f"{what} {name} {node} {time.monotonic():.6f} {os.getpid()} {epoch}\n")
        out.flush()
        os.fsync(out.fileno())


class Server(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under a 10 ms probe and fakes outages.
    request_queue_size = 128
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default=os.environ.get("HAKEEPER_NODE_ADDRESS", "127.0.0.1"))
    parser.add_argument("--name", default="app")
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    node = os.environ.get("HAKEEPER_NODE", "?")
    body = f"{args.name} on {node}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a 10 ms probe would flood the log."""

    server = Server((args.bind, args.port), Handler)
    record(args.record, "start", args.name, node)

    def stop(signum: int, frame: object) -> None:
        record(args.record, "stop", args.name, node)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
