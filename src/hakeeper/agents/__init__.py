"""Resource agents: run things on one node, with timeouts (layer 5).

`make_agent` (``registry``) turns a resource's ``agent`` string into a `ResourceAgent`
(``base``): ``process`` (a command hakeeper supervises), ``ocf:<provider>:<type>`` (OCF 1.1
agents such as Debian's ``resource-agents``, unchanged), ``systemd:<unit>``, ``lsb:<script>``.
Every op answers an `OpResult` whose `Severity` says what recovery it calls for;
`op_events` (``events``) turns it into event-log records. See docs/agents.md.
"""

from hakeeper.agents.base import (
    ActionSpec,
    MetaData,
    OcfRc,
    OpRequest,
    OpResult,
    ParamSpec,
    ResourceAgent,
    Severity,
    classify,
)
from hakeeper.agents.events import op_events
from hakeeper.agents.registry import AGENT_SCHEMES, make_agent

__all__ = [
    "AGENT_SCHEMES",
    "ActionSpec",
    "MetaData",
    "OcfRc",
    "OpRequest",
    "OpResult",
    "ParamSpec",
    "ResourceAgent",
    "Severity",
    "classify",
    "make_agent",
    "op_events",
]
