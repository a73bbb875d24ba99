"""Real servers for the session-store tests: hakeeper store nodes and Debian's memcached.

Each runs as a child process (started here, signalled only by its own PID) and is ready once
it accepts a TCP connection.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hakeeper.config.secret_file import write_secret_file
from hakeeper.lab.processes import ManagedProcess, free_port
from hakeeper.sessions.tls import PeerTls

START_TIMEOUT = 15.0


def wait_listening(
    host: str, port: int, proc: ManagedProcess, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running:
            raise RuntimeError(f"{proc.name} exited during start:\n{proc.log_tail()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {host}:{port}:\n{proc.log_tail()}")


def cluster_secret(tmp: Path) -> Path:
    """The tests' cluster secret file (mode 0600), written once per test directory."""
    path = tmp / "cluster-secret"
    if not path.exists():
        write_secret_file(path)
    return path


def peer_tls_files(tmp: Path) -> PeerTls:
    """A self-signed certificate that is its own CA, shared by the test's nodes (openssl)."""
    cert, key = tmp / "peer-cert.pem", tmp / "peer-key.pem"
    if not cert.exists():
        argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"]
        argv += ["ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert)]
        argv += ["-days", "2", "-subj", "/CN=hakeeper-sessions-test"]
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=60,
        )
        key.chmod(0o600)
    return PeerTls(cert, key, cert)


def start_store(
    tmp: Path,
    name: str,
    address: str,
    *,
    peers: Sequence[str] = (),
    peer_address: str | None = None,
    epoch: int = 0,
    primary: bool = False,
    extra: Sequence[str] = (),
    wait: bool = True,
) -> ManagedProcess:
    """A store node; with ``peers`` (peer addresses) it listens for them on ``peer_address``
    and proves the test directory's cluster secret."""
    argv = [
        sys.executable,
        "-m",
        "hakeeper.cli.sessions",  # the `hakeeper sessions` group alone: faster to start
        "serve",
        "--listen",
        address,
        "--peers",
        ",".join(peers),
        "--epoch",
        str(epoch),
        "--log-level",
        "INFO",
        *extra,
    ]
    if peers:
        host = address.rpartition(":")[0]
        argv += ["--peer-listen", peer_address or f"{host}:{free_port(host)}"]
        argv += ["--secret-file", str(cluster_secret(tmp))]
    if primary:
        argv.append("--primary")
    proc = ManagedProcess(name, argv, tmp / f"{name}.log")
    proc.start()
    if wait:
        wait_store(proc, address)
    return proc


def wait_store(proc: ManagedProcess, address: str) -> None:
    host, _, port = address.rpartition(":")
    try:
        wait_listening(host, int(port), proc)
    except BaseException:
        proc.kill()
        raise


def start_memcached(tmp: Path, host: str = "127.0.0.1") -> tuple[ManagedProcess, int]:
    port = free_port(host)
    argv = ["memcached", "-p", str(port), "-l", host, "-U", "0", "-t", "1", "-u", "nobody"]
    proc = ManagedProcess("memcached", argv, tmp / "memcached.log")
    proc.start()
    try:
        wait_listening(host, port, proc)
    except BaseException:
        proc.kill()
        raise
    return proc, port
