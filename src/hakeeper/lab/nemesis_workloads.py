"""The nemesis's workloads: clients and samplers, each a thread with a bounded life.

- ``http``: one GET at a time through the VIP (the balancer's HTTP frontend), from the
  client namespace; value = the node that served it.
- ``sessions-1..N``: one memcached operation at a time each, through the balancer's TCP
  frontend on the VIP (to the store's primary), from the client namespace: a ``set`` of a
  value no one wrote before (``<process>-<n>``) or a ``get``, on a few shared keys.
  Outcomes as `nemesis_history` defines them: ``ok`` an answer that says it happened,
  ``fail`` refused before sending or answered with an error, ``unknown`` sent and no
  whole answer (timeout, connection lost).
- holder sampling: the VIP's holders (one netlink dump per node namespace) and the
  singleton's (processes running it, by network namespace).
- leader sampling (every 0.5 s): the Raft leader as the agents' logs name it. PySyncObj's
  term is not exposed outside the agent, so ``term`` counts the leaderships won so far in
  the whole cluster (an election counter: it rises by one per leader change).

Every thread stops when `Workloads.stop` is called or at ``max_seconds``; every operation
has its own timeout. Records are appended to one list (one writer per record).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hakeeper.agents.netns import entered
from hakeeper.lab.nemesis_history import HolderSample, LeaderSample, Operation, Outcome, Record
from hakeeper.lab.nemesis_stack import LB_HTTP_PORT, LB_SESSIONS_PORT, LogReader
from hakeeper.lab.netns_fence import dying, namespace_id
from hakeeper.lab.netns_lab import NetnsLab
from hakeeper.lab.netns_topology import CLIENT
from hakeeper.lab.vip_watch import VipHolders

OP_TIMEOUT = 1.0
#: For the ``stats`` that names the store node after an answered session operation.
STATS_TIMEOUT = 0.3
SESSION_PAUSE = 0.1  # between one client's operations
HOLDER_INTERVAL = 0.1
LEADER_INTERVAL = 0.5
#: Enough keys that each holds a few hundred operations over a run: the linearizability
#: search grows fast with the unanswered writes of one key.
KEYS = tuple(f"nemesis-{i}" for i in range(40))
MAX_REPLY = 65536
HTTP_OK = ("HTTP/1.0 200 ", "HTTP/1.1 200 ")
SINGLETON_MARK = b"--name\x00singleton"


class Workloads:
    def __init__(
        self,
        lab: NetnsLab,
        logs: LogReader,
        *,
        sessions: int = 3,
        seed: int = 0,
        max_seconds: float = 7200.0,
    ) -> None:
        self.lab = lab
        self.logs = logs
        self.records: list[Record] = []
        self.max_seconds = max_seconds
        self._sessions = sessions
        self._seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self) -> None:
        bodies: list[tuple[str, Callable[[], None]]] = [
            ("http", self._http),
            ("vip-holders", self._vip_holders),
            ("singleton-holders", self._singleton_holders),
            ("leaders", self._leaders),
        ]
        for i in range(1, self._sessions + 1):
            name = f"sessions-{i}"
            bodies.append((name, lambda name=name: self._session_client(name)))  # type: ignore[misc]
        self._deadline = time.monotonic() + self.max_seconds
        self._threads = [
            threading.Thread(target=self._guard, args=(body,), name=name) for name, body in bodies
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._errors:
            raise RuntimeError(f"a nemesis workload failed: {self._errors[0]!r}") from (
                self._errors[0]
            )

    def final_reads(self, timeout: float = 60.0) -> None:
        """After everything is healed and every writer stopped: one good read of every key
        (retried until ``timeout``), which the lost-write check compares with the writes."""
        deadline = time.monotonic() + timeout
        with entered(self.lab.layout.host_ns(CLIENT)):
            for key in KEYS:
                while time.monotonic() < deadline:
                    op = _read_op(self.lab, "final", key)
                    self.records.append(op)
                    if op.outcome == "ok":
                        break
                    time.sleep(0.2)

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - stop() raises it: a dead workload fails the run
            self._errors.append(exc)

    # --- clients -------------------------------------------------------------------------------

    def _http(self) -> None:
        request = b"GET / HTTP/1.0\r\nHost: nemesis\r\n\r\n"
        with entered(self.lab.layout.host_ns(CLIENT)):
            while self._running():
                start = time.monotonic()
                outcome, value, error = _exchange(self.lab.vip, LB_HTTP_PORT, request, _http_done)
                if outcome == "ok" and value is not None:
                    head, _, body = value.partition("\r\n\r\n")
                    if not head.startswith(HTTP_OK):
                        outcome, error = "fail", head.splitlines()[0] if head else "empty"
                    value = body.strip().rpartition(" on ")[2] or None
                self.records.append(
                    Operation(
                        "http",
                        "http-get",
                        "/",
                        value if outcome == "ok" else None,
                        start,
                        time.monotonic(),
                        outcome,
                        error,
                    )
                )
                self._stop.wait(0.05)

    def _session_client(self, name: str) -> None:
        rng = random.Random(f"{self._seed}-{name}")
        written = 0
        with entered(self.lab.layout.host_ns(CLIENT)):
            while self._running():
                key = rng.choice(KEYS)
                start = time.monotonic()
                if rng.random() < 0.5:
                    written += 1
                    value = f"{name}-{written}"
                    data = value.encode()
                    line = f"set {key} 0 0 {len(data)}\r\n".encode() + data + b"\r\n"
                    answer = _store_op(self.lab, line, _line_done)
                    outcome, reply, error = answer.outcome, answer.reply, answer.error
                    if outcome == "ok" and reply != "STORED\r\n":
                        outcome, error = "fail", (reply or "").strip()[:200]
                    self.records.append(
                        Operation(
                            name,
                            "session-write",
                            key,
                            value,
                            start,
                            answer.end,
                            outcome,
                            error,
                            answer.served_by,
                        )
                    )
                else:
                    self.records.append(_read_op(self.lab, name, key))
                self._stop.wait(SESSION_PAUSE)

    # --- samplers ------------------------------------------------------------------------------

    def _vip_holders(self) -> None:
        with VipHolders(self.lab.layout) as holders:
            while self._running():
                at = time.monotonic()
                self.records.append(HolderSample("vip", at, holders.now()))
                self._stop.wait(HOLDER_INTERVAL)

    def _singleton_holders(self) -> None:
        while self._running():
            ids = {namespace_id(self.lab.layout.host_ns(n)): n for n in self.lab.layout.nodes}
            at = time.monotonic()
            held = sorted({ids[ns] for ns in _singleton_namespaces() if ns in ids})
            self.records.append(HolderSample("singleton", at, tuple(held)))
            self._stop.wait(HOLDER_INTERVAL * 2)

    def _leaders(self) -> None:
        while self._running():
            at = time.monotonic()
            views = self.logs.read()
            leaders = [n for n, v in views.items() if v.raft_state == "leader"]
            leader = leaders[0] if len(leaders) == 1 else None
            term = sum(v.leaderships for v in views.values())
            for node in self.lab.layout.nodes:
                if self.lab.agent_state(node) == "running":
                    self.records.append(LeaderSample(node, at, leader, term))
            self._stop.wait(LEADER_INTERVAL)


def _singleton_namespaces() -> list[tuple[int, int]]:
    """Network namespace ids of every process running the lab's singleton."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if SINGLETON_MARK not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            if dying(int(entry)):
                continue  # power-fenced: it never runs again, though the kernel still frees it
            st = os.stat(f"/proc/{entry}/ns/net")
            found.append((st.st_dev, st.st_ino))
        except OSError:
            continue
    return found


def _http_done(data: bytes) -> bool:
    return False  # HTTP/1.0: the server closes when the answer is whole


def _line_done(data: bytes) -> bool:
    return data.endswith(b"\r\n")


def _get_done(data: bytes) -> bool:
    return data.endswith((b"END\r\n", b"ERROR\r\n")) or data.startswith(
        (b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")
    )


def _parse_get(reply: str) -> tuple[str | None] | None:
    """``(value,)`` (None: not found) from a whole ``get`` reply; None if it is an error."""
    if reply == "END\r\n":
        return (None,)
    head, _, rest = reply.partition("\r\n")
    words = head.split(" ")
    if len(words) != 4 or words[0] != "VALUE" or not words[3].isdigit():
        return None
    size = int(words[3])
    if len(rest) != size + len("\r\nEND\r\n"):
        return None
    return (rest[:size],)


def _read_op(lab: NetnsLab, process: str, key: str) -> Operation:
    """One ``get`` by ``process``, as the history records it."""
    start = time.monotonic()
    answer = _store_op(lab, f"get {key}\r\n".encode(), _get_done)
    outcome, read, error = answer.outcome, None, answer.error
    if outcome == "ok":
        parsed = _parse_get(answer.reply or "")
        if parsed is None:
            outcome, error = "fail", (answer.reply or "").strip()[:200]
        else:
            read = parsed[0]
    return Operation(
        process, "session-read", key, read, start, answer.end, outcome, error, answer.served_by
    )


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    outcome: Outcome
    reply: str | None
    error: str
    end: float  # when the operation's answer (or its failure) came
    served_by: str  # "" when not known


def _store_op(lab: NetnsLab, request: bytes, done: Callable[[bytes], bool]) -> StoreAnswer:
    """One session-store operation through the balancer, then ``stats`` on the same
    connection (it reaches the same store node) to learn who answered."""
    try:
        sock = socket.create_connection((lab.vip, LB_SESSIONS_PORT), timeout=OP_TIMEOUT)
    except OSError as exc:  # never sent: certainly not applied
        return StoreAnswer("fail", None, f"connect: {type(exc).__name__}", time.monotonic(), "")
    with sock:
        outcome, reply, error = _ask(sock, request, done, time.monotonic() + OP_TIMEOUT)
        end = time.monotonic()
        served_by = ""
        if outcome == "ok":
            asked, stats, _ = _ask(sock, b"stats\r\n", _stats_done, end + STATS_TIMEOUT)
            if asked == "ok" and stats is not None:
                names = {lab.layout.address(node): node for node in lab.layout.nodes}
                served_by = served_by_from(stats, names)
    return StoreAnswer(outcome, reply, error, end, served_by)


def served_by_from(stats: str, names: Mapping[str, str]) -> str:
    """``n1 primary e7`` or ``n2 replica e7 via n1`` from a store's ``stats`` reply; ``names``:
    node name by host address."""
    values = {}
    for line in stats.splitlines():
        words = line.split(" ")
        if len(words) == 3 and words[0] == "STAT":
            values[words[1]] = words[2]

    def node(peer: str) -> str:
        return names.get(peer.rpartition(":")[0], peer)

    peer = values.get("hakeeper_peer")
    if peer is None:
        return ""
    served = f"{node(peer)} {values.get('hakeeper_role', '?')} e{values.get('hakeeper_epoch', '?')}"
    primary = values.get("hakeeper_primary", "-")
    if primary not in ("-", peer):
        served += f" via {node(primary)}"
    return served


def _stats_done(data: bytes) -> bool:
    return data.endswith(b"END\r\n") or data.startswith((b"SERVER_ERROR", b"ERROR"))


def _exchange(
    host: str, port: int, request: bytes, done: Callable[[bytes], bool]
) -> tuple[Outcome, str | None, str]:
    """One request on a new connection within `OP_TIMEOUT`: (outcome, reply, error)."""
    try:
        sock = socket.create_connection((host, port), timeout=OP_TIMEOUT)
    except OSError as exc:  # never sent: certainly not applied
        return "fail", None, f"connect: {type(exc).__name__}"
    with sock:
        return _ask(sock, request, done, time.monotonic() + OP_TIMEOUT)


def _ask(
    sock: socket.socket, request: bytes, done: Callable[[bytes], bool], deadline: float
) -> tuple[Outcome, str | None, str]:
    """One request on an open connection, answered by ``deadline``: (outcome, reply, error)."""
    data = b""
    try:
        sock.sendall(request)
        while len(data) < MAX_REPLY:
            left = deadline - time.monotonic()
            if left <= 0:
                return "unknown", None, "timeout"
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if done(data):
                return "ok", data.decode(errors="replace"), ""
    except TimeoutError:
        return "unknown", None, "timeout"
    except OSError as exc:
        return "unknown", None, f"connection: {type(exc).__name__}"
    if request.startswith(b"GET ") and data:
        return "ok", data.decode(errors="replace"), ""
    return "unknown", None, "closed before a whole answer"


def http_through_vip(lab: NetnsLab) -> bool:
    """Whether one GET through the VIP's balancer, from the client host, answers 200."""
    answers: list[bool] = []

    def ask() -> None:
        with entered(lab.layout.host_ns(CLIENT)):
            request = b"GET / HTTP/1.0\r\nHost: nemesis\r\n\r\n"
            outcome, reply, _ = _exchange(lab.vip, LB_HTTP_PORT, request, _http_done)
            answers.append(outcome == "ok" and (reply or "").startswith(HTTP_OK))

    thread = threading.Thread(target=ask, name="http-check")
    thread.start()
    thread.join(OP_TIMEOUT * 3)
    return bool(answers) and answers[0]
