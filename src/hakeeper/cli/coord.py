"""`hakeeper coord`: run and inspect the embedded coordination engine."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from hakeeper.cli.logs import setup_logging
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.errors import EngineMismatch, HakeeperError
from hakeeper.model.timing import profile as timing_profile

app = typer.Typer(help="Run and inspect the embedded coordination engine.", no_args_is_help=True)
log = logging.getLogger("hakeeper.coord.member")


@app.command()
def member(
    address: Annotated[str, typer.Option(help="This member's host:port (must be in --peers).")],
    peers: Annotated[str, typer.Option(help="Every member's host:port, comma-separated.")],
    data_dir: Annotated[Path, typer.Option(help="Where the Raft log and snapshots live.")],
    profile: Annotated[str, typer.Option(help="Timing profile: fast, default, wan.")] = "default",
    secret_file: Annotated[
        Path | None,
        typer.Option(help="The cluster secret file (mode 0600) every member holds. Required."),
    ] = None,
    join: Annotated[
        bool,
        typer.Option(
            help="A new member of a running group: catch up as a non-voting learner and vote "
            "once the group adds it (fresh --data-dir; --peers the group's voters and this one)."
        ),
    ] = False,
) -> None:
    """Run one voting member of an embedded Raft group until SIGTERM or SIGINT."""
    setup_logging()
    if secret_file is None:
        typer.echo(
            "hakeeper coord member: --secret-file is required: peers prove the cluster secret "
            "to each other. Write one with `hakeeper init`, or copy the secret file of a "
            "member of this group (mode 0600), and pass its path.",
            err=True,
        )
        raise typer.Exit(2)
    try:
        coord = RaftCoordinator(
            [p for p in peers.split(",") if p],
            self_address=address,
            data_dir=data_dir,
            secret_file=secret_file,
            timing=timing_profile(profile),
        )
        asyncio.run(_serve(coord, join=join))
    except (HakeeperError, OSError) as exc:
        typer.echo(f"hakeeper coord member: {exc}", err=True)
        raise typer.Exit(2) from exc


JOIN_TIMEOUT = 3600.0  # how long a learner waits for the group to add it


async def _serve(coord: RaftCoordinator, *, join: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if join:
            await coord.join(JOIN_TIMEOUT)
        else:
            await coord.start()
    except BaseException:
        await coord.close()
        raise
    log.info("event=member_started address=%s", coord.address)
    try:
        async with asyncio.TaskGroup() as tasks:
            announce = tasks.create_task(_announce_membership(coord))
            await stop.wait()
            announce.cancel()
    except BaseExceptionGroup as group:
        mismatch = group.subgroup(EngineMismatch)
        if mismatch is not None:
            raise mismatch.exceptions[0] from None
        raise
    finally:
        await coord.close()
        log.info("event=member_stopped")


async def _announce_membership(coord: RaftCoordinator) -> None:
    """Keep trying until a majority agrees on the peer list; a disagreement is fatal."""
    while True:
        try:
            await coord.verify_membership(timeout=10.0)
        except EngineMismatch:
            raise
        except HakeeperError as exc:
            log.warning("event=waiting_for_majority detail=%r", str(exc))
            continue
        log.info("event=membership_agreed leader=%s", coord.consensus_leader())
        return
