"""The relay in front of real Debian nginx: keep-alive, bodies, HEAD, a SIGKILLed server."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeeper.balancer.service import serving
from hakeeper.lab.processes import ManagedProcess, free_port
from tests.balancer.conftest import config, exchange, get, keep_alive_gets
from tests.conftest import require_binary

pytestmark = pytest.mark.slow

NGINX_CONF = """\
worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello from nginx {port}\\n"; }}
    location /missing {{ return 404; }}
    location /static {{ alias {dir}/static; }}
  }}
}}
"""


def start_nginx(where: Path) -> tuple[int, ManagedProcess]:
    require_binary("nginx")
    nginx_bin = shutil.which("nginx") or "nginx"
    port = free_port()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "static"):
        (where / sub).mkdir(parents=True)
    (where / "static" / "big.txt").write_bytes(b"0123456789" * 50_000)
    conf = where / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=where, port=port))
    proc = ManagedProcess(
        "nginx", [nginx_bin, "-p", str(where), "-c", str(conf)], where / "out.log"
    )
    proc.start()
    return port, proc


def stop_nginx(proc: ManagedProcess) -> None:
    proc.signal(signal.SIGQUIT)
    if not proc.wait(10):
        proc.kill()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[int]:
    port, proc = start_nginx(tmp_path)
    try:
        yield port
    finally:
        stop_nginx(proc)


async def _ready(port: int) -> None:
    async with asyncio.timeout(15):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)


async def test_relay_in_front_of_nginx(nginx: int) -> None:
    await _ready(nginx)
    cfg = config(
        [{"name": "n", "address": f"127.0.0.1:{nginx}"}], backend={"check": {"type": "http"}}
    )
    async with serving(cfg) as lb:
        port = lb.port_of("fe")
        ok = await get(port)
        assert ok.status == 200
        assert ok.body == f"hello from nginx {nginx}\n".encode()
        pipeline = (
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        responses = await exchange(port, pipeline, count=4)
        assert [r.status for r in responses] == [200, 200, 200, 404]
        big = await get(port, "/static/big.txt")
        assert big.body == b"0123456789" * 50_000
        head = await exchange(port, b"HEAD /static/big.txt HTTP/1.1\r\nHost: t\r\n\r\n", head=True)
        assert head[0].status == 200
        assert head[0].headers[b"content-length"] == b"500000"
        upload = (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        posted = await exchange(port, upload)
        assert posted[0].status in (200, 405)
        assert lb.backends["be"].servers["n"].up


async def test_sigkill_of_one_nginx_under_load_costs_clients_nothing(tmp_path: Path) -> None:
    (port1, proc1), (port2, proc2) = start_nginx(tmp_path / "n1"), start_nginx(tmp_path / "n2")
    try:
        await _ready(port1)
        await _ready(port2)
        servers = [
            {"name": "n1", "address": f"127.0.0.1:{port1}"},
            {"name": "n2", "address": f"127.0.0.1:{port2}"},
        ]
        cfg = config(servers, backend={"check": {"type": "tcp", "inter": 0.5}})
        async with serving(cfg) as lb:
            port = lb.port_of("fe")
            statuses: Counter[int] = Counter()
            async with asyncio.timeout(90):
                load = [asyncio.create_task(keep_alive_gets(port, 200, statuses)) for _ in range(8)]
                await asyncio.sleep(0.1)
                proc1.kill()  # SIGKILL: no goodbye, connections reset by the kernel
                await asyncio.gather(*load)
        assert statuses == {200: 1600}
    finally:
        stop_nginx(proc1)
        stop_nginx(proc2)
