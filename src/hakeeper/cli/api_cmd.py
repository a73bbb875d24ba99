"""`hakeeper api token create`: a bearer token for the REST API, shown once.

The cluster file keeps only its hash (the line this prints, for ``[api.tokens]``); the
token goes to the operator (printed, or into a new 0600 file with ``--file``), who passes it
with ``--token-file`` or ``$HAKEEPER_TOKEN``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Annotated

import typer

from hakeeper.api.access import new_token, token_line
from hakeeper.api.hints import DEFAULT_CONFIG
from hakeeper.balancer.api_token import write_token_file
from hakeeper.config.api_section import API_ROLES, ApiRole
from hakeeper.errors import ConfigError

app = typer.Typer(help="The REST API: its tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of the REST API.", no_args_is_help=True)
app.add_typer(token_app, name="token")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who holds it (shown in events and logs).")],
    role: Annotated[str, typer.Option(help="read, operate or admin.")],
    file: Annotated[
        Path | None, typer.Option(help="Write the token to this new file (mode 0600).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Make a token; print it once, and the line to paste under [api.tokens]."""
    if not _NAME.fullmatch(name):
        typer.echo("hakeeper api token create: --name: letters, digits, _ and - (1-64)", err=True)
        raise typer.Exit(2)
    if role not in API_ROLES:
        typer.echo(f"hakeeper api token create: --role: one of {', '.join(API_ROLES)}", err=True)
        raise typer.Exit(2)
    checked: ApiRole = next(r for r in API_ROLES if r == role)
    token = new_token()
    line = token_line(name, token, checked)
    if file is not None:
        try:
            write_token_file(file, token)
        except ConfigError as exc:
            typer.echo(f"hakeeper api token create: {exc}", err=True)
            raise typer.Exit(2) from exc
    if as_json:
        shown = {"name": name, "role": role, "config_line": line}
        typer.echo(json.dumps(shown if file else {**shown, "token": token}))
        return
    if file is None:
        typer.echo(f"token (shown once; keep it in a 0600 file): {token}")
    else:
        typer.echo(f"token written to {file} (mode 0600)")
    typer.echo(
        "paste under [api.tokens] in the cluster file, then apply it (every node's API "
        f"honours it within seconds): hakeeper config apply {shlex.quote(str(DEFAULT_CONFIG))}"
    )
    typer.echo(line)
