"""`hakeeper lb`: talk to a running balancer's runtime API (``[api] bind`` in its file).

    hakeeper lb servers [--json]
    hakeeper lb enable|disable|drain BACKEND/SERVER
    hakeeper lb state BACKEND/SERVER ready|drain|maint
    hakeeper lb weight BACKEND/SERVER N
    hakeeper lb reload
    hakeeper lb token [--file PATH]

Changes need the API token: ``--token-file PATH`` (or ``HAKEEPER_LB_TOKEN_FILE``) names a
file of mode 0600 holding it; ``hakeeper lb token`` makes a new one and prints the
``token_hash`` line for the balancer file. Changes take effect at once and drop no
connection: a drained or disabled server finishes what it is doing. Exit status 2 with the
API's message when a request is refused, 3 when the API cannot be reached.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.balancer.api_token import new_token, read_token_file, token_digest, write_token_file
from hakeeper.errors import ConfigError

app = typer.Typer(
    help="Runtime control of a running balancer (its REST API).", no_args_is_help=True
)
console = Console()

ApiOpt = Annotated[str, typer.Option("--api", help="The balancer's [api] bind, host:port.")]
Target = Annotated[str, typer.Argument(help="BACKEND/SERVER, as `hakeeper lb servers` shows.")]
TokenOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="HAKEEPER_LB_TOKEN_FILE",
        help="File (mode 0600) holding the API token; made by `hakeeper lb token --file`.",
    ),
]
DEFAULT_API = "127.0.0.1:9900"
TIMEOUT = 5.0


def _call(
    api: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token_file: Path | None = None,
) -> Any:
    data = json.dumps(body).encode() if body is not None else b"{}" if method == "POST" else None
    headers = {"Content-Type": "application/json"}
    if token_file is not None:
        try:
            headers["Authorization"] = f"Bearer {read_token_file(token_file)}"
        except ConfigError as exc:
            typer.echo(f"hakeeper lb: {exc}", err=True)
            raise typer.Exit(2) from exc
    request = urllib.request.Request(
        f"http://{api}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        typer.echo(f"hakeeper lb: {message}", err=True)
        raise typer.Exit(2) from exc
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(
            f"hakeeper lb: cannot reach the balancer API at {api} ({exc}); "
            "is it running with [api] bind set, and is --api right?",
            err=True,
        )
        raise typer.Exit(3) from exc


def _split(target: str) -> tuple[str, str]:
    backend, sep, server = target.partition("/")
    if not sep or not backend or not server:
        typer.echo(f"hakeeper lb: {target!r} is not BACKEND/SERVER", err=True)
        raise typer.Exit(2)
    return backend, server


def _change(
    api: str, target: str, body: dict[str, Any], as_json: bool, token_file: Path | None
) -> None:
    backend, server = _split(target)
    result = _call(api, "POST", f"/v1/servers/{backend}/{server}", body, token_file)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(
            f"{result['backend']}/{result['name']}: state {result['state']}, "
            f"admin {result['admin']}, weight {result['weight']}"
        )


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command()
def servers(
    api: ApiOpt = DEFAULT_API, as_json: JsonOpt = False, token_file: TokenOpt = None
) -> None:
    """List servers with state and counters (no token needed on loopback)."""
    rows = _call(api, "GET", "/v1/servers", token_file=token_file)["servers"]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("backend/server", "address", "state", "admin", "weight", "active", "requests",
                  "connect err", "check fail")  # fmt: skip
    for r in rows:
        table.add_row(
            f"{r['backend']}/{r['name']}{' (backup)' if r['backup'] else ''}",
            r["address"],
            r["state"],
            r["admin"],
            f"{r['effective_weight']}/{r['weight']}",
            str(r["active"]),
            str(r["requests"]),
            str(r["connect_errors"]),
            str(r["check_failures"]),
        )
    console.print(table)


@app.command()
def enable(
    target: Target,
    api: ApiOpt = DEFAULT_API,
    as_json: JsonOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Admin state ready: the server takes new clients again."""
    _change(api, target, {"action": "ready"}, as_json, token_file)


@app.command()
def disable(
    target: Target,
    api: ApiOpt = DEFAULT_API,
    as_json: JsonOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Admin state maint: no new requests, not even sticky ones; running ones finish."""
    _change(api, target, {"action": "maint"}, as_json, token_file)


@app.command()
def drain(
    target: Target,
    api: ApiOpt = DEFAULT_API,
    as_json: JsonOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Admin state drain: no new clients; sticky clients and running requests continue."""
    _change(api, target, {"action": "drain"}, as_json, token_file)


@app.command()
def state(
    target: Target,
    value: Annotated[str, typer.Argument(help="ready, drain or maint.")],
    api: ApiOpt = DEFAULT_API,
    as_json: JsonOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Set the admin state (HAProxy's `set server B/S state`)."""
    if value not in ("ready", "drain", "maint"):
        typer.echo("hakeeper lb: state must be ready, drain or maint", err=True)
        raise typer.Exit(2)
    _change(api, target, {"action": value}, as_json, token_file)


@app.command()
def weight(
    target: Target,
    value: Annotated[int, typer.Argument(help="0..256; 0 drains.")],
    api: ApiOpt = DEFAULT_API,
    as_json: JsonOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Set a server's weight."""
    _change(api, target, {"action": "weight", "weight": value}, as_json, token_file)


@app.command()
def reload(api: ApiOpt = DEFAULT_API, token_file: TokenOpt = None) -> None:
    """Re-read the balancer's file; open connections are kept."""
    _call(api, "POST", "/v1/reload", token_file=token_file)
    console.print("reloaded")


@app.command()
def token(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Write the token to this new file (mode 0600) instead of printing it."
        ),
    ] = None,
) -> None:
    """Make a new API token: print (or write) it once, and the token_hash line for [api]."""
    value = new_token()
    if file is not None:
        try:
            write_token_file(file, value)
        except ConfigError as exc:
            typer.echo(f"hakeeper lb: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"# the token is in {file} (mode 0600); `hakeeper lb` reads it with:")
        typer.echo(f"#   hakeeper lb servers --token-file {file}")
    else:
        typer.echo(
            "# the token, shown this once (keep it in a file of mode 0600 for --token-file):"
        )
        typer.echo(value)
    typer.echo("# put this line under [api] in the balancer file, then send the balancer SIGHUP:")
    typer.echo(f'token_hash = "{token_digest(value)}"')
