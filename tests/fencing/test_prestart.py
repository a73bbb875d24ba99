"""Prestarted fence agents (a device's ``prestart``): real shell agents under setpriv."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hakeeper.fencing import fence_agents
from hakeeper.fencing.device import FenceDevice
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.prestart import pdeathsig_prefix
from tests.conftest import alive
from tests.fencing.conftest import stub_agent

pytestmark = pytest.mark.skipif(pdeathsig_prefix() is None, reason="needs setpriv (util-linux)")

DEVICE = FenceDevice("stub", "fence_stub", host_argument="port", prestart=True)


def waiting_agent(folder: Path) -> Path:
    """An agent that notes its pid when it starts and writes its request once it has one."""
    return stub_agent(
        folder,
        f'printf "%s" "$input" > {folder}/request.$$; exit 0',
        before=f"echo $$ >> {folder}/started",
    )


async def started(folder: Path, count: int) -> list[int]:
    """The pids of the first ``count`` agents started in ``folder`` (waits for them)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        path = folder / "started"
        pids = [int(line) for line in path.read_text().split()] if path.exists() else []
        if len(pids) >= count:
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} agents started in 20 s")


async def gone(pid: int) -> bool:
    for _ in range(200):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def requests(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("request.*"))


async def test_the_next_fence_is_served_by_the_agent_started_before_it(tmp_path: Path) -> None:
    waiting_agent(tmp_path)
    runner = FenceAgentRunner([str(tmp_path)])
    warm = asyncio.create_task(runner.keep_warm(lambda: [DEVICE]))
    try:
        [first] = await started(tmp_path, 1)
        result = await runner.run(DEVICE, "off", "n1")
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)
    assert result.ok, result.output_tail
    assert (tmp_path / f"request.{first}").read_text().splitlines() == ["action=off", "port=n1"]


async def test_a_used_agent_is_replaced_by_a_new_waiting_one(tmp_path: Path) -> None:
    waiting_agent(tmp_path)
    runner = FenceAgentRunner([str(tmp_path)])
    warm = asyncio.create_task(runner.keep_warm(lambda: [DEVICE]))
    try:
        [first] = await started(tmp_path, 1)
        assert (await runner.run(DEVICE, "off", "n1")).ok
        second = (await started(tmp_path, 2))[1]
        assert alive(second)
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)
    assert requests(tmp_path) == [f"request.{first}"]


async def test_a_device_without_prestart_has_no_agent_waiting(tmp_path: Path) -> None:
    waiting_agent(tmp_path)
    plain = FenceDevice("stub", "fence_stub", host_argument="port")
    runner = FenceAgentRunner([str(tmp_path)])
    warm = asyncio.create_task(runner.keep_warm(lambda: [plain]))
    await asyncio.sleep(1.5)  # past one look (WARM_INTERVAL)
    warm.cancel()
    await asyncio.gather(warm, return_exceptions=True)
    assert not (tmp_path / "started").exists()


async def test_waiting_agents_are_killed_not_given_end_of_input_when_warming_stops(
    tmp_path: Path,
) -> None:
    waiting_agent(tmp_path)
    warm = asyncio.create_task(FenceAgentRunner([str(tmp_path)]).keep_warm(lambda: [DEVICE]))
    [pid] = await started(tmp_path, 1)
    warm.cancel()
    await asyncio.gather(warm, return_exceptions=True)
    assert await gone(pid)
    # Given end-of-input instead, it would have acted on an empty request.
    assert requests(tmp_path) == []


async def test_an_agent_replaced_on_disk_is_restarted_not_used(tmp_path: Path) -> None:
    path = waiting_agent(tmp_path)
    runner = FenceAgentRunner([str(tmp_path)])
    warm = asyncio.create_task(runner.keep_warm(lambda: [DEVICE]))
    try:
        [old] = await started(tmp_path, 1)
        later = path.stat().st_mtime_ns + 1_000_000_000
        os.utime(path, ns=(later, later))  # a package upgrade wrote a new build
        await started(tmp_path, 2)
        assert await gone(old)
        assert (await runner.run(DEVICE, "off", "n1")).ok
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)
    # Served by the new build's waiting agent, or (when the fence came before the runner
    # had taken that one in) by a fresh start: never by the old build.
    [served] = requests(tmp_path)
    assert served != f"request.{old}"


# A daemon keeping an agent of ``argv[1]`` waiting; with ``close-first`` it closes all its
# files once the agent is up and only then dies, 2 s later: the order the kernel's do_exit
# takes (exit_files, then exit_notify and the children's death signal), with the gap widened.
DAEMON = """
import asyncio, os, signal, sys, time
from pathlib import Path
from hakeeper.fencing.device import FenceDevice
from hakeeper.fencing.fence_agents import FenceAgentRunner

folder, how = Path(sys.argv[1]), sys.argv[2]
device = FenceDevice("stub", "fence_stub", host_argument="port", prestart=True)


async def main() -> None:
    warm = asyncio.create_task(FenceAgentRunner([str(folder)]).keep_warm(lambda: [device]))
    if how == "close-first":
        while not (folder / "started").exists():
            await asyncio.sleep(0.05)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        time.sleep(2)
        os.kill(os.getpid(), signal.SIGKILL)
    await warm


asyncio.run(main())
"""


def killed_daemon(folder: Path, how: str) -> tuple[int, int]:
    """(the daemon's pid, its waiting agent's pid), the daemon dead by SIGKILL."""
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(folder), how])
    try:
        [pid] = asyncio.run(started(folder, 1))
    finally:
        if how != "close-first":
            daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=20)
    assert daemon.returncode == -signal.SIGKILL
    return daemon.pid, pid


def guards_of(daemon: int) -> list[int]:
    """The pids of the guards still waiting for ``daemon`` to go."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if (
                entry.name.isdigit()
                and f"--pid={daemon}".encode() in argv
                and alive(int(entry.name))
            ):
                found.append(int(entry.name))
    return found


def test_a_waiting_agent_dies_with_its_daemon_instead_of_acting(tmp_path: Path) -> None:
    waiting_agent(tmp_path)
    _, pid = killed_daemon(tmp_path, "kill")
    assert asyncio.run(gone(pid))
    # Its stdin ended with the daemon: without the death signal it would have acted on that.
    assert requests(tmp_path) == []


def test_a_waiting_agent_sees_no_end_of_input_while_its_dying_daemon_closes_its_files(
    tmp_path: Path,
) -> None:
    waiting_agent(tmp_path)
    _, pid = killed_daemon(tmp_path, "close-first")
    assert asyncio.run(gone(pid))
    # Without the guard's write end, the daemon's closed files ended the agent's input 2 s
    # before its death signal came, and it acted on the empty request.
    assert requests(tmp_path) == []


def test_the_guard_of_a_waiting_agent_lets_go_once_its_daemon_is_gone(tmp_path: Path) -> None:
    waiting_agent(tmp_path)
    daemon, _ = killed_daemon(tmp_path, "kill")
    deadline = time.monotonic() + 10
    while guards_of(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert guards_of(daemon) == []


async def test_a_failed_start_of_a_waiting_agent_does_not_end_the_warming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting_agent(tmp_path)

    async def no_more_processes(command: tuple[str, ...], stdin: int) -> asyncio.subprocess.Process:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(fence_agents, "_start", no_more_processes)
    warm = asyncio.create_task(FenceAgentRunner([str(tmp_path)]).keep_warm(lambda: [DEVICE]))
    await asyncio.sleep(0.3)
    try:
        # The daemon owns this task in its TaskGroup: an error here would stop the node.
        assert not warm.done()
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)


async def test_an_agent_failing_its_metadata_is_not_asked_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was asked (and started, and failed) every second for as long as it stayed broken.
    path = tmp_path / "fence_stub"
    path.write_text(f"#!/bin/sh\necho $$ >> {tmp_path}/started\ncat >/dev/null\nexit 1\n")
    path.chmod(0o755)
    monkeypatch.setattr(fence_agents, "WARM_INTERVAL", 0.05)
    device = FenceDevice("stub", "fence_stub", prestart=True)  # host_argument from metadata
    warm = asyncio.create_task(FenceAgentRunner([str(tmp_path)]).keep_warm(lambda: [device]))
    try:
        await started(tmp_path, 1)
        await asyncio.sleep(0.5)  # ten looks
        assert len(await started(tmp_path, 1)) == 1
        later = path.stat().st_mtime_ns + 1_000_000_000
        os.utime(path, ns=(later, later))  # a fixed build
        assert len(await started(tmp_path, 2)) == 2
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)


async def test_a_request_too_long_for_one_write_is_run_by_an_agent_started_for_it(
    tmp_path: Path,
) -> None:
    waiting_agent(tmp_path)
    device = FenceDevice(
        "stub", "fence_stub", host_argument="port", prestart=True, params={"ipaddr": "x" * 5000}
    )
    runner = FenceAgentRunner([str(tmp_path)])
    warm = asyncio.create_task(runner.keep_warm(lambda: [device]))
    try:
        [waiting] = await started(tmp_path, 1)
        result = await runner.run(device, "off", "n1")
        assert alive(waiting)  # still waiting, whole, for a request that fits
    finally:
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)
    assert result.ok, result.output_tail
    [served] = requests(tmp_path)
    assert served != f"request.{waiting}"
