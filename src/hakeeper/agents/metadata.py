"""Parse an OCF agent's ``meta-data`` XML.

The XML shape (OCF 1.1, ``ra-api-1.dtd``)::

    <resource-agent name="Dummy" version="1.0">
      <version>1.1</version>
      <shortdesc lang="en">...</shortdesc>
      <parameters>
        <parameter name="state" unique="1" required="0">
          <shortdesc lang="en">...</shortdesc>
          <content type="string" default="..."/>
        </parameter>
      </parameters>
      <actions>
        <action name="monitor" timeout="20s" interval="10s" depth="0" role="Promoted"/>
      </actions>
    </resource-agent>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from hakeeper.agents.base import ActionSpec, MetaData, ParamSpec
from hakeeper.errors import ConfigError
from hakeeper.model.durations import parse_duration


def check_params(agent: str, params: Mapping[str, object], known: Sequence[ParamSpec]) -> None:
    """ConfigError naming every parameter ``agent`` does not have, and the ones it has."""
    names = {p.name for p in known}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ConfigError(
            f"{agent} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are {', '.join(sorted(names))}"
        )


def _text(element: ET.Element | None) -> str:
    return " ".join((element.text or "").split()) if element is not None else ""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _optional_duration(value: str | None, what: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_duration(value, what=what)
    except ConfigError:
        return None  # an agent's odd advertisement must not make it unusable


def parse_meta_data(xml_text: str, *, source: str = "meta-data") -> MetaData:
    """Parse the XML an agent prints for ``meta-data``; ConfigError names ``source``."""
    try:
        root = ET.fromstring(xml_text.strip())
    except ET.ParseError as exc:
        raise ConfigError(
            f"{source}: the agent's meta-data is not valid XML ({exc}); run the agent with "
            "'meta-data' by hand to see what it prints"
        ) from exc
    if root.tag != "resource-agent":
        raise ConfigError(f"{source}: meta-data root is <{root.tag}>, expected <resource-agent>")
    params = []
    for element in root.findall("./parameters/parameter"):
        name = element.get("name", "").strip()
        if not name:
            continue
        content = element.find("content")
        params.append(
            ParamSpec(
                name=name,
                required=_truthy(element.get("required")),
                unique=_truthy(element.get("unique")),
                type=(content.get("type", "string") if content is not None else "string"),
                default=content.get("default") if content is not None else None,
                shortdesc=_text(element.find("shortdesc")),
            )
        )
    actions = []
    for element in root.findall("./actions/action"):
        name = element.get("name", "").strip()
        if not name:
            continue
        depth = element.get("depth")
        actions.append(
            ActionSpec(
                name=name,
                timeout=_optional_duration(element.get("timeout"), f"{source} {name} timeout"),
                interval=_optional_duration(element.get("interval"), f"{source} {name} interval"),
                depth=int(depth) if depth is not None and depth.strip().isdigit() else None,
                role=element.get("role"),
            )
        )
    return MetaData(
        name=root.get("name", ""),
        version=root.get("version", ""),
        ocf_version=_text(root.find("version")),
        shortdesc=_text(root.find("shortdesc")),
        parameters=tuple(params),
        actions=tuple(actions),
    )
