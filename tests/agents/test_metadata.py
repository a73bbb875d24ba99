"""meta-data XML parsing and durations (pure)."""

from __future__ import annotations

import pytest

from hakeeper.agents.metadata import parse_meta_data
from hakeeper.errors import ConfigError

SAMPLE = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Sample" version="2.3">
<version>1.1</version>
<longdesc lang="en">A sample.</longdesc>
<shortdesc lang="en">Sample
  agent</shortdesc>
<parameters>
<parameter name="config" unique="0" required="1">
<shortdesc lang="en">Config file</shortdesc>
<content type="string" />
</parameter>
<parameter name="port" unique="1">
<content type="integer" default="8080" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="40s" />
<action name="stop" timeout="2m" />
<action name="monitor" timeout="20s" interval="10s" depth="0" />
<action name="monitor" timeout="20s" interval="9s" depth="0" role="Promoted" />
<action name="promote" timeout="PT30S" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
"""


def test_parses_parameters_with_required_and_defaults() -> None:
    meta = parse_meta_data(SAMPLE)
    config, port = meta.parameters
    assert (config.name, config.required, config.default, config.shortdesc) == (
        "config",
        True,
        None,
        "Config file",
    )
    assert (port.name, port.required, port.unique, port.type, port.default) == (
        "port",
        False,
        True,
        "integer",
        "8080",
    )


def test_parses_action_timeouts_in_seconds() -> None:
    meta = parse_meta_data(SAMPLE)
    assert meta.timeout("start") == 40.0
    assert meta.timeout("stop") == 120.0
    assert meta.timeout("promote") == 30.0
    assert meta.timeout("reload") is None


def test_recurring_monitor_found_by_interval_and_role() -> None:
    meta = parse_meta_data(SAMPLE)
    monitors = [a for a in meta.actions if a.name == "monitor"]
    assert [(a.interval, a.role) for a in monitors] == [(10.0, None), (9.0, "Promoted")]
    spec = meta.action("monitor", recurring=True)
    assert spec is not None
    assert spec.depth == 0


def test_header_fields() -> None:
    meta = parse_meta_data(SAMPLE)
    assert (meta.name, meta.version, meta.ocf_version, meta.shortdesc) == (
        "Sample",
        "2.3",
        "1.1",
        "Sample agent",
    )


def test_defaults_fill_only_missing_params() -> None:
    meta = parse_meta_data(SAMPLE)
    assert meta.with_defaults({"config": "/etc/x"}) == {"config": "/etc/x", "port": "8080"}
    assert meta.with_defaults({"port": "1"})["port"] == "1"


def test_missing_required_params_are_named() -> None:
    assert parse_meta_data(SAMPLE).missing_required(set()) == ["config"]


def test_invalid_xml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid XML"):
        parse_meta_data("<resource-agent>", source="x")


def test_wrong_root_element_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected <resource-agent>"):
        parse_meta_data("<agent/>")
