"""An event as an alert says it: Pacemaker's ``CRM_alert_*`` fields, and the JSON of a webhook.

Pure: no I/O. The fields follow Pacemaker Explained, "Alert Agents" (shared/PROTOCOLS.md): every
alert has ``kind``, ``version``, ``recipient``, ``node_sequence``, ``timestamp`` (plus
``timestamp_epoch`` and ``timestamp_usec``), ``node`` and ``desc``; a node alert adds
``nodeid``; a fencing alert ``task`` and ``rc``; a resource alert ``rsc``, ``task``,
``interval``, ``rc``, ``target_rc`` and ``status``; an attribute alert ``attribute_name`` and
``attribute_value``. Only the fields of the alert's kind are set, because the sample agents
give the missing ones their own defaults (``: ${CRM_alert_rsc=n/a}`` in alert_snmp.sh).

``node_sequence`` is the event's revision in the cluster's log: it grows across controllers,
so an agent can order alerts and drop a repeat.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from hakeeper.model.alerts import ALERT_KINDS, PacemakerKind
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import (
    ConfigRefused,
    ControllerElected,
    Event,
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
    to_dict,
)

#: ``CRM_alert_version``: the Pacemaker release whose alert interface this follows (agents
#: check only that it is set; Pacemaker 1.1.15 introduced the interface).
INTERFACE_VERSION = "2.1.5"
#: Pacemaker's operation status codes (``enum pcmk_exec_status``) for ``CRM_alert_status``.
EXEC_DONE, EXEC_TIMEOUT, EXEC_ERROR = 0, 2, 4
#: A value longer than this is cut: an environment variable is not a log.
VALUE_LIMIT = 1024

_TASKS = ("start", "stop", "monitor", "promote", "demote", "probe")
_RC = re.compile(r"\((\d{1,3}),")
_FRACTION = re.compile(r"%%|%0?(\d?)N")


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to alert on: its revision in the log, the event, its Pacemaker kind and
    the kind's own fields (names without the ``CRM_alert_`` prefix)."""

    revision: int
    event: Event
    kind: PacemakerKind
    fields: Mapping[str, str]

    @property
    def resource(self) -> str | None:
        return getattr(self.event, "resource", None)


def notice_of(event: Event, revision: int, spec: ClusterSpec, writer: str) -> Notice | None:
    """The notice of ``event``, or None when it is not alerted on (an alert's own record).

    ``writer`` is the controller's node: the node of events that name none (quorum)."""
    kind = ALERT_KINDS.get(event.kind)
    if kind is None:
        return None
    fields = _fields(event, spec, writer)
    return Notice(revision, event, kind, {k: clean(v) for k, v in fields.items()})


def _fields(event: Event, spec: ClusterSpec, writer: str) -> dict[str, str]:
    match event:
        case NodeJoined(node=node):
            return {"node": node, "nodeid": _node_id(spec, node), "desc": "member"}
        case NodeLost(node=node, reason=reason):
            return {"node": node, "nodeid": _node_id(spec, node), "desc": f"lost ({reason})"}
        case NodeFenced(node=node, device=device, duration=duration, ok=ok):
            result = "OK" if ok else "Error"
            return {
                "node": node, "task": "off", "rc": "0" if ok else "1",
                "desc": f"Operation off of {node} by {device}: {result} in {duration:.1f}s",
            }  # fmt: skip
        case ResourceStarted(resource=rsc, node=node, role=role):
            task = "promote" if role == "primary" else "start"
            return _resource(rsc, node, task, "ok")
        case ResourceStopped(resource=rsc, node=node, reason=reason):
            task = "demote" if reason == "demote" else "stop"
            return _resource(rsc, node, task, f"ok ({reason})" if reason else "ok")
        case ResourceFailed(resource=rsc, node=node, reason=reason):
            head = reason.split(" ", 1)[0]
            rc = _RC.search(reason)
            status = EXEC_TIMEOUT if "timed out" in reason else EXEC_ERROR
            return _resource(
                rsc, node, head if head in _TASKS else "monitor", reason or "error",
                rc=rc.group(1) if rc else "1", status=status,
            )  # fmt: skip
        case FailoverStarted(resource=rsc, from_node=node, reason=reason):
            return _resource(rsc, node, "failover", f"moving away: {reason or 'failed'}")
        case FailoverFinished(resource=rsc, from_node=old, to_node=new, duration=duration):
            return _resource(rsc, new, "failover", f"moved from {old} in {duration:.1f}s")
        case QuorumLost(members_up=up, members_total=total):
            return _attribute(writer, "quorum", f"lost ({up} of {total} members)")
        case QuorumRegained(members_up=up, members_total=total):
            return _attribute(writer, "quorum", f"regained ({up} of {total} members)")
        case ControllerElected(node=node, term=term):
            return _attribute(node, "controller", f"{node} (term {term})")
        case ConfigRefused(node=node, revision=rev, reason=reason):
            return _attribute(node, "config", f"refused revision {rev}: {reason}")
        case JobFailed(job=job, reason=reason):
            return _attribute(writer, job, f"failed: {reason}")
        case JobOverdue(job=job, age=age):
            return _attribute(writer, job, f"overdue: no success for {age:.0f}s")
    raise AssertionError(f"{event.kind} is in ALERT_KINDS but has no alert fields")


def _resource(
    rsc: str, node: str, task: str, desc: str, *, rc: str = "0", status: int = EXEC_DONE
) -> dict[str, str]:
    return {
        "node": node, "rsc": rsc, "task": task, "interval": "0", "rc": rc, "target_rc": "0",
        "status": str(status), "desc": desc,
    }  # fmt: skip


def _attribute(node: str, name: str, value: str) -> dict[str, str]:
    return {
        "node": node, "attribute_name": name, "attribute_value": value,
        "desc": f"{name} is {value}",
    }  # fmt: skip


def _node_id(spec: ClusterSpec, node: str) -> str:
    """Pacemaker's numeric node id: here the node's place in the cluster file, from 1."""
    names = [n.name for n in spec.nodes]
    return str(names.index(node) + 1) if node in names else "0"


def clean(value: str) -> str:
    """A value an agent may put in a file, a mail header or a trap: one line, bounded."""
    return "".join(c if c.isprintable() else " " for c in value[:VALUE_LIMIT])


def format_timestamp(fmt: str, ts: float) -> str:
    """strftime of ``ts`` (local time) with Pacemaker's ``%N``: fractions of a second,
    ``%3N`` milliseconds, ``%6N`` (``%06N``) microseconds, ``%N`` nanoseconds."""
    nanos = f"{round((ts % 1) * 1e9):09d}"[:9]

    def fraction(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%%"
        return nanos[: int(match.group(1) or 9)]

    return time.strftime(_FRACTION.sub(fraction, fmt), time.localtime(ts))


def agent_environment(
    notice: Notice,
    *,
    recipient: str,
    timestamp_format: str,
    params: Mapping[str, str],
    tools_dir: str = "",
) -> dict[str, str]:
    """The environment of one alert agent run: a fixed PATH, the alert's instance attributes,
    then every ``CRM_alert_*`` field, each also as ``CRM_notify_*`` (ClusterMon's names).

    ``tools_dir`` (the node's Pacemaker tools, `hakeeper.runtime.crm_tools`) comes first on
    the PATH, as /usr/sbin holds Pacemaker's for its agents: the samples ask the cluster
    through them (alert_smtp.sh.sample's subject carries ``crm_attribute -n cluster-name``)."""
    ts = notice.event.ts
    common = {
        "kind": notice.kind,
        "version": INTERFACE_VERSION,
        "node_sequence": str(notice.revision),
        "timestamp": format_timestamp(timestamp_format, ts),
        "timestamp_epoch": str(int(ts)),
        "timestamp_usec": f"{int((ts % 1) * 1e6):06d}",
        **notice.fields,
    }
    if recipient:
        common["recipient"] = clean(recipient)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": f"{tools_dir}:{path}" if tools_dir else path}
    env.update(params)
    for name, value in common.items():
        env[f"CRM_alert_{name}"] = value
        env[f"CRM_notify_{name}"] = value
    return env


def webhook_document(notice: Notice, *, cluster: str, alert: str) -> dict[str, object]:
    """The JSON a webhook receives: the event itself, and the same fields as an agent."""
    return {
        "cluster": cluster,
        "alert": alert,
        "revision": notice.revision,
        "kind": notice.kind,
        "event": to_dict(notice.event),
        "fields": dict(notice.fields),
    }
