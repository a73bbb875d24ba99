"""`hakeeper status`: one screen of the live cluster, like crm_mon.

Renders the status read-model (`hakeeper.runtime.status_report`): quorum, the controller,
every node, and every resource: where it runs and in which role, what the controller
assigned (and under which epoch), fail counts, and *why* something does not run, in the
controller's own words. ``--json`` prints the report's document as it is.

Exit status: 0 quorate and nothing blocked or failed; 1 something is blocked, cannot run or
failed; 2 no quorum or the engine is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hakeeper.cli import cluster_client as cc
from hakeeper.cli import remote
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.cli.plan import print_transition, print_transition_doc
from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError, HakeeperError, Unreachable
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.status_report import WHY, StatusReport, collect_status
from hakeeper.runtime.store import ClusterStore

REFRESH = 2.0

console = Console(soft_wrap=True)


# --- rendering ------------------------------------------------------------------------------


def render(report: StatusReport, now: float | None = None) -> RenderableType:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now or time.time()))
    if not report.quorum:
        return Text.from_markup(
            f"[bold]cluster {report.cluster}[/]  {stamp}\n[red bold]NO QUORUM[/]: the engine "
            "cannot commit; nothing can be read or changed until a majority of nodes is back"
        )
    ctl = (
        f"{report.controller.node} (term {report.controller.term})"
        if report.controller
        else "[yellow]none elected[/]"
    )
    header = Text.from_markup(
        f"[bold]cluster {report.cluster}[/]  quorum: [green]yes[/]  controller: {ctl}  "
        f"revision {report.revision}  {stamp}"
    )
    nodes = Table(title="nodes", title_justify="left")
    for col in ("node", "state", "flags", "note"):
        nodes.add_column(col)
    colours = {"online": "green", "offline": "dim", "lost": "red bold", "fenced": "yellow"}
    for n in report.nodes:
        flags = [f for f, on in (("standby", n.standby), ("maintenance", n.maintenance)) if on]
        if n.controller:
            flags.append("controller")
        # Attribute values come from agents: escaped, never read as markup.
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(n.attributes.items()))
        note = f"[yellow]{n.note}[/]" + (f"\n[dim]{escape(attrs)}[/]" if attrs else "")
        nodes.add_row(n.name, f"[{colours[n.state]}]{n.state}[/]", ", ".join(flags), note)
    res = Table(title="resources", title_justify="left")
    for col in ("resource", "target", "running", "assigned (epoch)", "fail counts", "why"):
        res.add_column(col)
    for r in report.resources:
        name = r.id if r.unit == r.id else f"{r.id} [dim]({r.unit})[/]"
        target = r.target + (" [dim](cli)[/]" if r.override else "")
        running = "\n".join(_colour_role(x) for x in r.running) or "[dim]—[/]"
        assigned = "\n".join(r.assigned) + (f" [dim]({r.epoch})[/]" if r.assigned else "—")
        why = [f"[red]{w}[/]" for w in r.why] + [f"[cyan]in progress: {p}[/]" for p in r.pending]
        res.add_row(name, target, running, assigned, ", ".join(r.failcounts), "\n".join(why))
    parts: list[RenderableType] = [header, nodes, res]
    others = [d for d in report.decisions if d.kind in WHY and d.resource is None]
    if others:
        parts.append(Text.from_markup("\n".join(f"[red]{d}[/]" for d in others)))
    if report.failed:
        parts.append(Text.from_markup("\n".join(f"[red]failed[/]: {f}" for f in report.failed)))
    for warning in report.warnings:
        parts.append(Text.assemble(("warning", "yellow bold"), f": {warning}"))
    return Group(*parts)


def _colour_role(text: str) -> str:
    for role, colour in (("promoted", "blue"), ("started", "green"), ("failed", "red")):
        if f" {role}" in text:
            return text.replace(f" {role}", f" [{colour}]{role}[/]", 1)
    return text


# --- watching --------------------------------------------------------------------------------


async def watch_status(
    store: ClusterStore,
    spec: ClusterSpec,
    out: Console,
    *,
    refresh: float = REFRESH,
    frames: int | None = None,
) -> int:
    """Redraw on every change under the cluster prefix, and at least every ``refresh`` s.

    Engine trouble is shown on the screen and retried, not fatal: an operator watches a
    failover precisely when the engine may be briefly unavailable. ``frames`` bounds the
    number of redraws (tests)."""
    changed = asyncio.Event()

    async def pump() -> None:
        while True:
            try:
                async with contextlib.aclosing(store.changes()) as changes:
                    async for _ in changes:
                        changed.set()
            except CoordError:
                await asyncio.sleep(refresh)  # the periodic refresh covers the gap

    code = 0
    with Live(console=out, auto_refresh=False, transient=False) as live:
        watcher = asyncio.create_task(pump(), name="status-watch")
        try:
            drawn = 0
            while frames is None or drawn < frames:
                changed.clear()
                try:
                    report = await collect_status(store, spec, cc.wall())
                    live.update(render(report), refresh=True)
                    code = report.exit_code
                except CoordError as exc:
                    live.update(Text(f"engine trouble, retrying: {cc.describe(exc)}"), refresh=True)
                    code = 2
                drawn += 1
                if frames is not None and drawn >= frames:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(refresh):
                        await changed.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return code


async def watch_remote_status(
    api: remote.Remote,
    out: Console,
    *,
    refresh: float = REFRESH,
    frames: int | None = None,
) -> int:
    """`watch_status` through the API: redraw on every status document its stream pushes
    (after each change, and every few seconds without one). A broken stream is shown and
    reopened; a refusal (401/403) ends the watch with status 2."""
    code, drawn = 0, 0
    with Live(console=out, auto_refresh=False, transient=False) as live:
        while frames is None or drawn < frames:
            try:
                async with contextlib.aclosing(remote.stream_messages(api, None)) as messages:
                    async for message in messages:
                        if message.kind != "status" or not isinstance(message.data, dict):
                            continue
                        live.update(render(remote.report_of(message.data)), refresh=True)
                        code = int(message.data["exit_code"])
                        drawn += 1
                        if frames is not None and drawn >= frames:
                            return code
                problem = "the API ended the stream"
            except remote.StreamRefused as exc:
                live.update(Text(f"hakeeper status: {exc}"), refresh=True)
                return 2
            except Unreachable as exc:
                problem = str(exc)
            live.update(Text(f"API trouble, reconnecting: {problem}"), refresh=True)
            code = 2
            drawn += 1
            await asyncio.sleep(refresh)
    return code


def _exit_after(watch: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    try:
        code = asyncio.run(watch())
    except KeyboardInterrupt:
        code = 0  # Ctrl-C is how --watch ends
    raise typer.Exit(code)


# --- the commands -----------------------------------------------------------------------------


def status(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    as_json: JsonOption = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw on every change; Ctrl-C ends.")
    ] = False,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Show the scheduler's full transition for the live cluster."),
    ] = False,
) -> None:
    """One screen of the cluster: quorum, controller, nodes, resources, and why.

    Exit status 0 when quorate and nothing is blocked or failed, 1 when something is, 2 on no
    quorum or an unreachable engine."""
    api = remote.current()
    if api is not None and watch:
        _exit_after(lambda: watch_remote_status(api, console))
    if api is not None:
        _remote_status(api, as_json=as_json, plan=plan)

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        store = cc.store_of(coord, spec)
        if watch:
            return await watch_status(store, spec, console)
        report = await collect_status(store, spec, cc.wall())
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        elif plan:
            print_live_plan(report)
        else:
            console.print(render(report))
        return report.exit_code

    cc.run_command("status", config, body, interrupt_code=0)


def _remote_status(api: remote.Remote, *, as_json: bool, plan: bool) -> None:
    """``status`` through the API: the same document, rendered the same way (``--plan``:
    the transition the document carries, as `print_live_plan` prints it)."""
    try:
        doc = remote.answer(api, remote.Call("GET", "/v1/status"))
    except HakeeperError as exc:
        typer.echo(f"hakeeper status: {cc.describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    elif plan and doc["quorum"]:
        print_transition_doc(doc["transition"])
    else:
        console.print(render(remote.report_of(doc)))
    raise typer.Exit(doc["exit_code"])


def print_live_plan(report: StatusReport) -> None:
    """The transition the controller is working through, in `hakeeper plan`'s table."""
    if not report.quorum:
        console.print(render(report))
        return
    print_transition(report.transition)
