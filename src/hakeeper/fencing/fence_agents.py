"""Runs ClusterLabs fence agents (``fence_ipmilan``, ``fence_virsh``, ``fence_dummy``…) unchanged.

The fence-agents protocol: ``key=value`` lines on stdin (the device's parameters, then
``action=`` and the target as ``port=``/``plug=`` when the agent takes one), exit code as the
verdict. For ``on``/``off``/``reboot``/``monitor``/``list`` 0 is success; for ``status`` 0 means
on, 2 off, anything else that the device could not tell. An agent that outlives its timeout
is killed with its whole process group and counts as a failure. A device with ``prestart``
uses an agent started before it was needed (`hakeeper.fencing.prestart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import os
import signal
import sysconfig
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from hakeeper.errors import ConfigError
from hakeeper.fencing.device import (
    AttemptResult,
    FenceAction,
    FenceDevice,
    PowerState,
    redact,
)
from hakeeper.fencing.prestart import (
    WARM_INTERVAL,
    Process,
    Standbys,
    executable_version,
)
from hakeeper.model.text import control_problem

log = logging.getLogger(__name__)

# Debian's fence-agents install into /usr/sbin; hakeeper's own lab agent sits beside the
# `hakeeper` command (the scripts dir of the Python that runs it).
DEFAULT_SEARCH_PATH = (
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    sysconfig.get_path("scripts"),
)
_OUTPUT_LIMIT = 2000


class UnsafeFenceInput(ConfigError):
    """A key or value that would not be one ``key=value`` line on the agent's stdin."""


def stdin_line(key: str, value: str) -> str:
    """One ``key=value`` line for a fence agent, or `UnsafeFenceInput`.

    The config refuses control characters already; this is the last guard, at the point of
    use: a newline in a value would add a line of its own (``p1\naction=on`` turns an
    ``off`` into an ``on``, and the node is marked fenced while it runs)."""
    for what, text in (("name", key), ("value", value)):
        problem = control_problem(text)
        if problem:
            raise UnsafeFenceInput(
                f"fence parameter {key!r}: its {what} {problem}; refused (nothing was sent "
                "to the agent). Fix the device's params, hosts or host_list"
            )
    if not key or "=" in key:
        raise UnsafeFenceInput(f"fence parameter {key!r}: a name is non-empty, without '='")
    return f"{key}={value}"


class FenceAgentRunner:
    """Resolves fence agents on disk, reads their metadata once, and runs their actions."""

    def __init__(self, search_path: Sequence[str] = DEFAULT_SEARCH_PATH) -> None:
        self._search_path = tuple(search_path)
        self._parameters: dict[Path, frozenset[str]] = {}
        self._standbys = Standbys(_start)
        #: Agents whose metadata failed while warming, with the build that failed it.
        self._broken: dict[Path, int | None] = {}

    async def keep_warm(self, devices: Callable[[], Iterable[FenceDevice]]) -> None:
        """Until cancelled, keep an agent waiting for each ``prestart`` device of
        ``devices()``, its metadata read (`hakeeper.fencing.prestart`); then kill them.
        An agent that cannot be found or fails its metadata is left to the fence to report;
        one that failed its metadata is not asked again until its executable changes (it
        was asked, and failed, every `WARM_INTERVAL`)."""
        if not self._standbys.possible:
            log.warning(
                "event=fence_prestart_off reason=no_setpriv_or_tail "
                "fix='apt install util-linux coreutils'"
            )
            return
        try:
            while True:
                wanted = set()
                for device in devices():
                    if device.prestart:
                        with contextlib.suppress(ConfigError):
                            wanted.add(await self._warmable(device))
                try:
                    await self._standbys.refresh(frozenset(wanted))
                except OSError as exc:
                    # An optimisation: a fence then starts its agent as without prestart.
                    log.warning("event=fence_prestart_failed error=%r", str(exc))
                await asyncio.sleep(WARM_INTERVAL)
        finally:
            await self._standbys.close()

    async def _warmable(self, device: FenceDevice) -> Path:
        """The agent's executable, its metadata read; a ConfigError if either fails."""
        path = self.resolve(device.agent)
        version = executable_version(path)
        if path in self._broken and self._broken[path] == version:
            raise ConfigError(f"fence agent {path} failed its metadata")
        try:
            await self._host_argument(device)
        except ConfigError as exc:
            self._broken[path] = version
            log.warning("event=fence_prestart_skipped agent=%s error=%r", path, str(exc))
            raise
        self._broken.pop(path, None)
        return path

    def resolve(self, agent: str) -> Path:
        """The agent's executable, or a ConfigError naming where it looked and close names."""
        candidate = Path(agent)
        if candidate.is_absolute():
            if os.access(candidate, os.X_OK):
                return candidate
            raise ConfigError(f"fence agent {agent} does not exist or is not executable")
        for folder in self._search_path:
            path = Path(folder) / agent
            if os.access(path, os.X_OK):
                return path
        known = sorted(
            {p.name for f in self._search_path if Path(f).is_dir() for p in Path(f).glob("fence_*")}
        )
        close = difflib.get_close_matches(agent, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"fence agent {agent!r} not found in {', '.join(self._search_path)}{hint}: "
            "install Debian's fence-agents package or give the agent's full path"
        )

    async def parameters(self, device: FenceDevice) -> frozenset[str]:
        """Parameter names the agent advertises in its metadata (cached per agent)."""
        path = self.resolve(device.agent)
        if path not in self._parameters:
            code, out, err = await self._exec(path, ["action=metadata"], device.timeout)
            if code != 0:
                raise ConfigError(
                    f"fence agent {path} failed to print its metadata (exit {code}): "
                    f"{redact(_tail(out + err), device.params)}"
                )
            self._parameters[path] = parse_metadata_parameters(out)
        return self._parameters[path]

    async def run(
        self, device: FenceDevice, action: FenceAction, node: str | None
    ) -> AttemptResult:
        """One run of ``action`` against ``node`` (None for device-wide actions)."""
        path = self.resolve(device.agent)
        target = "" if node is None else device.target_of(node)
        started = time.monotonic()
        try:
            lines = [stdin_line(key, value) for key, value in device.params.items()]
            lines.append(stdin_line("action", action))
            if node is not None:
                argument = await self._host_argument(device)
                if argument is not None:
                    lines.append(stdin_line(argument, target))
        except UnsafeFenceInput as exc:
            # A failed attempt, not an exception: the fence did not happen, and the
            # controller must go on treating the node as not fenced.
            log.error("event=fence_refused device=%s error=%r", device.name, str(exc))
            shown = target if control_problem(target) is None else "(refused)"
            duration = time.monotonic() - started
            return AttemptResult(
                device.name, action, shown, False, None, duration, str(exc), refused=True
            )
        code, out, err = await self._exec(path, lines, device.timeout, prestarted=device.prestart)
        # An agent may echo its command line (passwords included) when it fails.
        output = redact(_tail(out + err), device.params)
        duration = time.monotonic() - started
        ok = code is not None and (code in (0, 2) if action == "status" else code == 0)
        result = AttemptResult(device.name, action, target, ok, code, duration, output)
        log.info(
            "event=fence_attempt device=%s action=%s target=%s ok=%s exit=%s duration_ms=%.0f",
            device.name, action, target or "-", ok, code, duration * 1000,
        )  # fmt: skip
        return result

    async def power_state(self, device: FenceDevice, node: str) -> PowerState:
        result = await self.run(device, "status", node)
        return {0: PowerState.ON, 2: PowerState.OFF}.get(
            result.exit_code if result.exit_code is not None else -1, PowerState.UNKNOWN
        )

    async def _host_argument(self, device: FenceDevice) -> str | None:
        """Pacemaker's ``pcmk_host_argument``: ``port`` if advertised, else ``plug``, else
        nothing (an agent like fence_dummy that fences one fixed machine)."""
        if device.host_argument == "none":
            return None
        if device.host_argument != "auto":
            return device.host_argument
        advertised = await self.parameters(device)
        for name in ("port", "plug"):
            if name in advertised:
                return name
        return None

    async def _exec(
        self, path: Path, lines: list[str], timeout: float, *, prestarted: bool = False
    ) -> tuple[int | None, str, str]:
        """Run the agent with ``lines`` on stdin: (exit code or None on timeout, out, err)."""
        request = ("\n".join(lines) + "\n").encode()
        proc = self._standbys.serve(path, request) if prestarted else None
        stdin = None  # a waiting agent was given the request already
        if proc is None:
            proc, stdin = await _start((str(path),)), request
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await proc.wait()
            return None, "", f"killed after {timeout:g}s without an answer"
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def _start(command: tuple[str, ...], stdin: int = asyncio.subprocess.PIPE) -> Process:
    """An agent in its own session (its whole group can be killed), stdout and stderr piped;
    stdin piped too unless a file descriptor is given (a waiting agent's, `Standbys`)."""
    return await asyncio.create_subprocess_exec(
        *command,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


def _tail(text: str) -> str:
    return text.strip()[-_OUTPUT_LIMIT:]


def parse_metadata_parameters(xml_text: str) -> frozenset[str]:
    """Parameter names from a fence agent's ``metadata`` XML."""
    start = xml_text.find("<?xml")
    if start < 0:
        start = xml_text.find("<resource-agent")
    try:
        root = ET.fromstring(xml_text[max(start, 0) :].strip())
    except ET.ParseError as exc:
        raise ConfigError(f"fence agent metadata is not XML: {exc}") from exc
    return frozenset(p.get("name", "") for p in root.iter("parameter") if p.get("name"))
