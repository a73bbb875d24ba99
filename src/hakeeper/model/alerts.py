"""Alerts as plain data: who is told about which events, and how (`[[alerts]]` in the file).

An alert is either an *agent* (an executable run with Pacemaker's alert-agent environment,
once per recipient, so Pacemaker's sample agents work unchanged) or a *webhook* (an HTTPS or
HTTP URL that gets the event as JSON, signed with HMAC-SHA256). The controller delivers
them; this module only holds what the config says, and which event kinds are alerted on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hakeeper.model.events import (
    AlertDelivered,
    AlertFailed,
    ConfigRefused,
    ControllerElected,
    FailoverFinished,
    FailoverStarted,
    JobFailed,
    JobOverdue,
    NodeFenced,
    NodeJoined,
    NodeLost,
    QuorumLost,
    QuorumRegained,
    ResourceFailed,
    ResourceStarted,
    ResourceStopped,
)

AlertVia = Literal["agent", "webhook"]
PacemakerKind = Literal["node", "fencing", "resource", "attribute"]

#: Each event kind an operator is told about, and the ``CRM_alert_kind`` it is alerted as.
#: Quorum, the controller and a refused config have no Pacemaker kind of their own: they go
#: out as ``attribute`` alerts (``CRM_alert_attribute_name`` = quorum, controller, config).
ALERT_KINDS: dict[str, PacemakerKind] = {
    NodeJoined.kind: "node",
    NodeLost.kind: "node",
    NodeFenced.kind: "fencing",
    ResourceStarted.kind: "resource",
    ResourceStopped.kind: "resource",
    ResourceFailed.kind: "resource",
    FailoverStarted.kind: "resource",
    FailoverFinished.kind: "resource",
    QuorumLost.kind: "attribute",
    QuorumRegained.kind: "attribute",
    ControllerElected.kind: "attribute",
    ConfigRefused.kind: "attribute",
    # A failed or overdue scheduled backup or drill (the job names which).
    JobFailed.kind: "attribute",
    JobOverdue.kind: "attribute",
}
#: Records of the alerts themselves: never alerted on (an alert about an alert could loop).
SILENT_KINDS = frozenset({AlertDelivered.kind, AlertFailed.kind})

#: Pacemaker's default ``timestamp-format`` meta attribute (strftime, ``%N``: fractions).
DEFAULT_TIMESTAMP_FORMAT = "%H:%M:%S.%06N"
#: Pacemaker's default alert timeout.
DEFAULT_ALERT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class AlertSpec:
    id: str
    via: AlertVia
    #: The agent's absolute path, or the webhook's URL.
    target: str
    #: Agent: one run per recipient (none: one run without ``CRM_alert_recipient``).
    recipients: tuple[str, ...] = ()
    #: Agent: instance attributes, given to the agent as environment variables.
    params: Mapping[str, str] = field(default_factory=dict)
    #: Event kinds (``node.lost``, ...) alerted on; empty: every kind an operator cares about.
    kinds: tuple[str, ...] = ()
    #: Resources whose events are alerted on; empty: all. Events naming no resource (node,
    #: quorum, controller) are filtered by kind only.
    resources: tuple[str, ...] = ()
    timeout: float = DEFAULT_ALERT_TIMEOUT
    timestamp_format: str = DEFAULT_TIMESTAMP_FORMAT
    #: Webhook: the 0600 file whose first line is the HMAC key.
    secret_file: str | None = None
    #: Webhook: attempts after the first, with exponential backoff.
    retries: int = 3
    #: Deliveries waiting for this alert at most; past it, new ones are recorded as failed.
    queue: int = 100
