"""`hakeeper check` on the [api] section: open reads and clear-text tokens beyond loopback."""

from __future__ import annotations

from hakeeper.api.security_checks import api_findings
from hakeeper.config.api_section import ApiSection


def test_the_default_loopback_api_is_not_reported() -> None:
    assert api_findings(ApiSection(), ["n1", "n2"]) == []


def test_anonymous_reads_beyond_loopback_are_a_warning_with_the_fix() -> None:
    api = ApiSection(anonymous_read=True, listen_on={"n2": "10.0.0.2:7440"})
    found = [f for f in api_findings(api, ["n1", "n2"]) if "anonymous_read" in f.what]
    assert [f.level for f in found] == ["warning"]
    assert "10.0.0.2:7440" in found[0].what
    assert "anonymous_read = false" in found[0].fix


def test_anonymous_reads_on_loopback_only_are_not_reported() -> None:
    assert api_findings(ApiSection(anonymous_read=True), ["n1"]) == []


def test_beyond_loopback_without_tls_is_a_warning() -> None:
    found = api_findings(ApiSection(listen="0.0.0.0:7440"), ["n1"])
    assert any("without TLS" in f.what for f in found)
