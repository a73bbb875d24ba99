"""The upstream side of the L7 relay against the client side it answers (fake transports).

The upstream connection reaches its client connection only through `Downstream`; these
tests pin the calls that cross that interface when a server misbehaves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hakeeper.balancer
from hakeeper.balancer.http_downstream import HttpDownstream
from hakeeper.balancer.http_upstream import HttpUpstream
from hakeeper.balancer.runtime import FrontendRuntime
from tests.balancer.conftest import FakeTransport, wire

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def asked() -> tuple[HttpDownstream, FakeTransport, HttpUpstream, FrontendRuntime]:
    """A client connection that sent one GET, and the upstream connection serving it."""
    client, client_transport, _, rt = wire()
    client.data_received(REQUEST)
    upstream = client.upstream
    assert upstream is not None
    return client, client_transport, upstream, rt


def test_server_dropping_a_started_response_aborts_the_client_and_frees_the_server() -> None:
    client, client_transport, upstream, _ = asked()
    upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    upstream.connection_lost(None)
    assert client_transport.closing
    assert client.upstream is None
    assert upstream.client is None
    assert upstream.server.active == 0


def test_server_closing_before_the_head_has_the_request_tried_elsewhere_then_503() -> None:
    client, client_transport, upstream, rt = asked()  # one server: "elsewhere" is nowhere
    upstream.connection_lost(None)
    assert client.upstream is None
    assert upstream.server.active == 0
    assert client.tried == [upstream.server]
    rt.batch.flush()
    assert b"".join(client_transport.written).startswith(b"HTTP/1.1 503 ")


def test_garbage_before_the_head_answers_the_client_502() -> None:
    _, client_transport, upstream, rt = asked()
    upstream.data_received(b"NOT HTTP\r\n\r\n")
    rt.batch.flush()
    assert b"".join(client_transport.written).startswith(b"HTTP/1.1 502 ")
    assert upstream.server.active == 0


def _balancer_imports(path: Path) -> set[str]:
    """The modules of ``hakeeper.balancer`` that ``path`` imports (type-only ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    prefix = "hakeeper.balancer."
    return {n.removeprefix(prefix).split(".")[0] for n in names if n.startswith(prefix)}


def test_balancer_modules_import_each_other_without_a_circle() -> None:
    folder = Path(hakeeper.balancer.__file__).parent
    graph = {p.stem: _balancer_imports(p) for p in folder.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import circle: " + " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(graph.get(module, set())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
