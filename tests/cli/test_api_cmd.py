"""`hakeeper api token create`: the token once, the line to paste, and that line loads."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from hakeeper.api.access import Principal
from hakeeper.balancer.api_token import read_token_file, token_digest
from hakeeper.cli.main import app
from hakeeper.config.api_section import ApiSection

runner = CliRunner()


def test_the_printed_line_pastes_into_api_tokens_and_matches_the_token() -> None:
    result = runner.invoke(app, ["api", "token", "create", "--name", "ci", "--role", "operate",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    tokens = tomllib.loads(shown["config_line"])
    api = ApiSection.model_validate({"tokens": tokens})
    assert api.tokens["ci"].hash == token_digest(shown["token"])
    assert Principal("ci", api.tokens["ci"].role, "token").may("operate")


def test_with_a_file_the_token_is_written_0600_and_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "ci-token"
    result = runner.invoke(
        app, ["api", "token", "create", "--name", "ci", "--role", "read", "--file", str(path)]
    )
    assert result.exit_code == 0, result.output
    token = read_token_file(path)
    assert token not in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_digest(token) in result.output


def test_a_bad_role_or_name_is_refused() -> None:
    assert (
        runner.invoke(app, ["api", "token", "create", "--name", "x", "--role", "root"]).exit_code
        == 2
    )
    assert (
        runner.invoke(app, ["api", "token", "create", "--name", "a b", "--role", "read"]).exit_code
        == 2
    )
