"""Clone notifications (Pacemaker's ``notify`` action), as plain data.

A clone with ``notify = true`` tells every running instance before (``pre``) and after
(``post``) an instance starts, stops, is promoted or demoted, with the lists Pacemaker sets as
``OCF_RESKEY_CRM_meta_notify_*`` (`notify_variables`). One `NotifyRound` is one such telling:
the node that acts posts it, every target runs ``notify`` and acknowledges, and the acting node
waits for the acknowledgements (bounded) before it goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

NotifyType = Literal["pre", "post"]
NotifyOperation = Literal["start", "stop", "promote", "demote"]


@dataclass(frozen=True, slots=True)
class NotifyRound:
    resource: str
    id: str  # unique per round, without '/'
    initiator: str
    targets: tuple[str, ...]
    variables: Mapping[str, str] = field(default_factory=dict)


def notify_variables(
    *,
    resource: str,
    nodes: Sequence[str],
    members: Sequence[str],
    roles: Mapping[str, str],
    kind: NotifyType,
    operation: NotifyOperation,
    acting: Sequence[str],
) -> dict[str, str]:
    """The meta attributes of one notification (names as ``notify_<list>_<resource|uname>``).

    ``nodes`` is every node in config order (an instance is named ``<resource>:<index>``, as
    Pacemaker numbers anonymous clone instances), ``roles`` the nodes where an instance runs
    now (``started`` or ``promoted``), ``acting`` those where ``operation`` happens.
    """
    index = {n: i for i, n in enumerate(nodes)}

    def pair(name: str, where: Sequence[str]) -> dict[str, str]:
        ordered = sorted(where, key=lambda n: index.get(n, len(index)))
        return {
            f"notify_{name}_resource": " ".join(f"{resource}:{index.get(n, 0)}" for n in ordered),
            f"notify_{name}_uname": " ".join(ordered),
        }

    active = [n for n in nodes if n in roles]
    promoted = [n for n in active if roles[n] == "promoted"]
    unpromoted = [n for n in active if roles[n] != "promoted"]
    found: dict[str, str] = {"notify_type": kind, "notify_operation": operation}
    for name in ("start", "stop", "promote", "demote"):
        found.update(pair(name, acting if name == operation else ()))
    found.update(pair("active", active))
    found.update(pair("master", promoted))
    found.update(pair("promoted", promoted))
    found.update(pair("slave", unpromoted))
    found.update(pair("unpromoted", unpromoted))
    inactive = pair("inactive", [n for n in nodes if n not in roles])
    found["notify_inactive_resource"] = inactive["notify_inactive_resource"]
    found["notify_all_uname"] = " ".join(nodes)
    found["notify_all_hosts"] = " ".join(nodes)
    found["notify_available_uname"] = " ".join(n for n in nodes if n in members)
    return found
