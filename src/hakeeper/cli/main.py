"""The `hakeeper` command. Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hakeeper",
    help="High-availability cluster manager: quorum, failover, fencing, balancing, sessions.",
    no_args_is_help=True,
    add_completion=False,
)

from hakeeper.cli import coord as _coord  # noqa: E402
from hakeeper.cli.agent import agent as _agent  # noqa: E402
from hakeeper.cli.demo import demo as _demo  # noqa: E402

app.add_typer(_coord.app, name="coord")
app.command(name="demo")(_demo)
app.command(name="agent")(_agent)
from hakeeper.cli.availability import app as _availability_app  # noqa: E402

app.add_typer(_availability_app, name="availability")
from hakeeper.cli import config_cmd as _config_cmd  # noqa: E402
from hakeeper.cli.plan import plan as _plan  # noqa: E402

app.command(name="plan")(_plan)
app.add_typer(_config_cmd.app, name="config")
