"""The `hakeeper` command. Each sub-command group lives in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hakeeper import __version__
from hakeeper.api import hints
from hakeeper.errors import HakeeperError

app = typer.Typer(
    name="hakeeper",
    help="High-availability cluster manager: quorum, failover, fencing, balancing, sessions.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hakeeper {__version__}")
        raise typer.Exit()


from hakeeper.cli import remote as _remote  # noqa: E402


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="HAKEEPER_URL",
            help="Act through a node's REST API (http(s)://HOST:PORT) instead of the engine.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="The API token (a 0600 file); default $HAKEEPER_TOKEN."),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="The CA of an HTTPS API's certificate.")
    ] = None,
) -> None:
    """High-availability cluster manager: quorum, failover, fencing, balancing, sessions."""
    hints.start_command()
    try:
        _remote.configure(url, token_file, ca_file)
    except HakeeperError as exc:
        typer.echo(f"hakeeper: {exc}", err=True)
        raise typer.Exit(2) from exc


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
from hakeeper.cli import config_apply as _config_apply  # noqa: E402
from hakeeper.cli import node as _node  # noqa: E402
from hakeeper.cli import resource as _resource  # noqa: E402
from hakeeper.cli.events import events as _events  # noqa: E402
from hakeeper.cli.fence import fence as _fence  # noqa: E402
from hakeeper.cli.status import status as _status  # noqa: E402

app.command(name="status")(_status)
app.add_typer(_resource.app, name="resource")
app.add_typer(_node.app, name="node")
app.command(name="events")(_events)
app.command(name="fence")(_fence)
from hakeeper.cli.check import check as _check  # noqa: E402

app.command(name="check")(_check)
# `config` is config_cmd's group; apply is registered onto it here to keep modules separate.
_config_cmd.app.command(name="apply")(_config_apply.apply)
from hakeeper.cli.balance import balance as _balance  # noqa: E402

app.command(name="balance")(_balance)
from hakeeper.cli import sessions as _sessions  # noqa: E402

app.add_typer(_sessions.app, name="sessions")
from hakeeper.cli import lab as _lab  # noqa: E402

app.add_typer(_lab.app, name="lab")
from hakeeper.cli import lb as _lb  # noqa: E402

app.add_typer(_lb.app, name="lb")
from hakeeper.cli.init_cmd import init as _init  # noqa: E402

app.command(name="init")(_init)
from hakeeper.cli.secret import app as _secret_app  # noqa: E402

app.add_typer(_secret_app, name="secret")
from hakeeper.cli.upgrade import upgrade as _upgrade  # noqa: E402

app.command(name="upgrade")(_upgrade)
from hakeeper.cli import backup as _backup  # noqa: E402

app.add_typer(_backup.app, name="backup")
from hakeeper.cli.restore import restore as _restore  # noqa: E402

app.command(name="restore")(_restore)
from hakeeper.cli import dr as _dr  # noqa: E402

app.add_typer(_dr.app, name="dr")
from hakeeper.cli.api_cmd import app as _api_app  # noqa: E402

app.add_typer(_api_app, name="api")
