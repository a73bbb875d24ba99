"""Parse an OCF agent's ``meta-data`` XML and the durations it (and configs) use.

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

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from hakeeper.agents.base import ActionSpec, MetaData, ParamSpec
from hakeeper.errors import ConfigError

_UNITS = {
    "ms": 0.001,
    "msec": 0.001,
    "us": 0.000001,
    "usec": 0.000001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_ISO = re.compile(
    r"^P(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)$", re.IGNORECASE
)


def check_params(agent: str, params: Mapping[str, object], known: Sequence[ParamSpec]) -> None:
    """ConfigError naming every parameter ``agent`` does not have, and the ones it has."""
    names = {p.name for p in known}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ConfigError(
            f"{agent} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are {', '.join(sorted(names))}"
        )


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """Seconds from ``"20s"``, ``"500ms"``, ``"1m"``, ``"2h"``, ``"PT20S"`` or a bare number.

    A bare number means seconds, as in Pacemaker (``crm_get_msec``). Raises ConfigError
    naming ``what`` and the accepted forms.
    """
    if isinstance(text, bool):
        raise ConfigError(f"{what}: expected a duration like '20s', got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ConfigError(f"{what}: a duration cannot be negative ({text})")
        return float(text)
    match = _DURATION.match(text)
    if match:
        number, unit = match.groups()
        factor = _UNITS.get(unit.lower() or "s")
        if factor is not None:
            return float(number) * factor
    iso = _ISO.match(text.strip())
    if iso and any(iso.groups()):
        hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return hours * 3600 + minutes * 60 + seconds
    raise ConfigError(
        f"{what}: {text!r} is not a duration; write a number with a unit "
        "(e.g. '500ms', '20s', '2m', '1h'; a bare number is seconds)"
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
