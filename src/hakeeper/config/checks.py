"""Checks across sections: names, references, cycles. Each problem is ``(key path, fix)``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from hakeeper.config.schema import ClusterFile
from hakeeper.errors import ConfigError
from hakeeper.model.alerts import ALERT_KINDS
from hakeeper.model.text import control_paths, key_text
from hakeeper.model.timing import profile

# Matched with fullmatch: "$" would accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ONE_LINE = "; write it on one line without control characters"

Problem = tuple[str, str]


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in a directed graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check(cf: ClusterFile) -> list[Problem]:
    problems: list[Problem] = []
    add = problems.append

    for section, names in (
        ("nodes", cf.nodes),
        ("resources", cf.resources),
        ("groups", cf.groups),
        ("clones", cf.clones),
    ):
        for name in names:
            if not _NAME.fullmatch(name):
                add(
                    (
                        f"{section}.{name}",
                        "names use letters, digits, '_', '-' and '.', starting with a "
                        "letter or digit",
                    )
                )

    seen: dict[str, str] = {}
    for section, names in (
        ("resources", cf.resources),
        ("groups", cf.groups),
        ("clones", cf.clones),
    ):
        for name in names:
            if name in seen:
                add(
                    (
                        f"{section}.{name}",
                        f"the id is already used by {seen[name]}.{name}; rename one",
                    )
                )
            else:
                seen[name] = section

    member_of: dict[str, str] = {}
    for gid, group in cf.groups.items():
        for i, member in enumerate(group.members):
            where = f"groups.{gid}.members[{i}]"
            if member not in cf.resources:
                hint = " (groups hold resources, not groups or clones)" if member in seen else ""
                add((where, f'"{member}" is not a resource{hint}; define [resources.{member}]'))
            elif member in member_of:
                add(
                    (
                        where,
                        f'"{member}" is already a member of group {member_of[member]}; '
                        "a resource belongs to one group",
                    )
                )
            else:
                member_of[member] = gid

    cloned: dict[str, str] = {}
    for cid, clone in cf.clones.items():
        where = f"clones.{cid}.resource"
        child = clone.resource
        if child not in cf.resources and child not in cf.groups:
            add((where, f'"{child}" is not a resource or group; define it or fix the name'))
            continue
        if child in cloned:
            add((where, f'"{child}" is already cloned by {cloned[child]}; clone it once'))
        cloned[child] = cid
        if child in member_of:
            add(
                (
                    where,
                    f'"{child}" is a member of group {member_of[child]}; clone the group instead',
                )
            )
        if clone.promotable and child not in cf.resources:
            add((where, "a promotable clone holds one resource, not a group"))
        if clone.max is not None and clone.max > clone.max_per_node * len(cf.nodes):
            add(
                (
                    f"clones.{cid}.max",
                    f"{clone.max} instances cannot fit on {len(cf.nodes)} nodes with "
                    f"max_per_node {clone.max_per_node}; lower max or raise max_per_node",
                )
            )
        if clone.target_role == "unpromoted" and not clone.promotable:
            add((f"clones.{cid}.target_role", '"unpromoted" is only for promotable clones'))
    promotable_members = {c.resource for c in cf.clones.values() if c.promotable}
    for rid, res in cf.resources.items():
        if res.on_fail == "demote" and rid not in promotable_members:
            add(
                (
                    f"resources.{rid}.on_fail",
                    f'"demote" is only for the resource of a promotable clone; {rid} is not '
                    'one: use "restart" (the default) or clone it with promotable = true',
                )
            )
        owner = member_of.get(rid) or cloned.get(rid)
        if owner and res.target_role != "started":
            add(
                (
                    f"resources.{rid}.target_role",
                    f"{rid} is inside {owner}; set target_role on {owner} instead",
                )
            )
        elif res.target_role == "unpromoted":
            add(
                (
                    f"resources.{rid}.target_role",
                    '"unpromoted" is only for promotable clones; set it on the clone',
                )
            )
    for gid, grp in cf.groups.items():
        if grp.target_role == "unpromoted":
            add((f"groups.{gid}.target_role", '"unpromoted" is only for promotable clones'))

    top = set(cf.resources) | set(cf.groups) | set(cf.clones)
    top -= set(member_of) | set(cloned)
    promotable = {cid for cid, c in cf.clones.items() if c.promotable}

    def ref(where: str, name: str) -> bool:
        if name in top:
            return True
        if name in member_of:
            owner = member_of[name]
            owner = next((c for c, cl in cf.clones.items() if cl.resource == owner), owner)
            add((where, f'"{name}" is inside {owner}; constrain {owner} instead'))
        elif name in cloned:
            add((where, f'"{name}" is cloned by {cloned[name]}; constrain {cloned[name]} instead'))
        else:
            add(
                (
                    where,
                    f'"{name}" does not exist; define it under [resources], [groups] or [clones]',
                )
            )
        return False

    for i, loc in enumerate(cf.constraints.location):
        where = f"constraints.location[{i}]"
        ref(f"{where}.resource", loc.resource)
        if loc.node is not None and loc.node not in cf.nodes:
            add((f"{where}.node", f'"{loc.node}" is not a node; define [nodes.{loc.node}]'))
        if loc.role == "primary" and loc.resource not in promotable:
            add(
                (
                    f"{where}.role",
                    f'role "primary" needs a promotable clone; {loc.resource} is not one',
                )
            )

    coloc: dict[str, set[str]] = {}
    for i, col in enumerate(cf.constraints.colocation):
        where = f"constraints.colocation[{i}]"
        ok = ref(f"{where}.resource", col.resource) & ref(f"{where}.with", col.with_resource)
        if col.resource == col.with_resource:
            add((where, "a resource cannot be colocated with itself"))
            continue
        if col.with_role == "primary" and col.with_resource not in promotable:
            add(
                (
                    f"{where}.with_role",
                    f'"primary" needs a promotable clone; {col.with_resource} is not one',
                )
            )
        if ok:
            coloc.setdefault(col.resource, set()).add(col.with_resource)
    cycle = find_cycle(coloc)
    if cycle:
        add(
            (
                "constraints.colocation",
                "colocation cycle " + " with ".join(cycle) + "; drop one of them",
            )
        )

    order: dict[str, set[str]] = {}
    for i, o in enumerate(cf.constraints.order):
        where = f"constraints.order[{i}]"
        ok = ref(f"{where}.first", o.first) & ref(f"{where}.then", o.then)
        if o.first == o.then:
            add((where, "a resource cannot be ordered after itself"))
            continue
        for key, name, action in (
            ("first", o.first, o.first_action),
            ("then", o.then, o.then_action),
        ):
            if action == "promote" and name not in promotable:
                add(
                    (
                        f"{where}.{key}_action",
                        f'"promote" needs a promotable clone; {name} is not one',
                    )
                )
        if ok:
            order.setdefault(o.first, set()).add(o.then)
    cycle = find_cycle(order)
    if cycle:
        add(("constraints.order", "order cycle " + " then ".join(cycle) + "; drop one of them"))

    for node, levels in cf.fencing.levels.items():
        if node not in cf.nodes:
            add((f"fencing.levels.{node}", f'"{node}" is not a node; use node names as keys'))
        for number, level in enumerate(levels, 1):
            if not level:
                add((f"fencing.levels.{node}", f"level {number} is empty; list device names"))
            for dev in level:
                if dev not in cf.fencing.devices:
                    add(
                        (
                            f"fencing.levels.{node}",
                            f'level {number} names "{dev}", which is not under [fencing.devices]',
                        )
                    )
    for dev, device in cf.fencing.devices.items():
        for node in device.host_list:
            if node not in cf.nodes:
                add((f"fencing.devices.{dev}.host_list", f'"{node}" is not a node'))
        for node in device.hosts:
            if node not in cf.nodes:
                add(
                    (
                        f"fencing.devices.{dev}.hosts.{node}",
                        f'"{node}" is not a node; use node names as keys',
                    )
                )
    problems.extend(_suspicion_problems(cf))
    problems.extend(control_problems(cf))
    problems += _alert_problems(cf)
    return problems


def _alert_problems(cf: ClusterFile) -> list[Problem]:
    problems: list[Problem] = []
    ids: set[str] = set()
    named = set(cf.resources) | set(cf.groups) | set(cf.clones)
    for i, alert in enumerate(cf.alerts):
        where = f"alerts[{i}]"
        if alert.id in ids:
            problems.append((f"{where}.id", f'"{alert.id}" is used by another alert; rename one'))
        ids.add(alert.id)
        for kind in alert.kinds:
            if kind not in ALERT_KINDS:
                problems.append(
                    (f"{where}.kinds", f'"{kind}" is not alerted on; use {", ".join(ALERT_KINDS)}')
                )
        for rid in alert.resources:
            if rid not in named:
                problems.append(
                    (f"{where}.resources", f'"{rid}" is not a resource, group or clone')
                )
    return problems


def control_problems(cf: ClusterFile) -> list[Problem]:
    """Control characters in anything that reaches a fence agent's stdin, a resource agent's
    environment or argv, a unit name or a log line: refused, each with its key named."""
    found: list[tuple[str, str]] = []
    for name, node in cf.nodes.items():
        found.extend(control_paths(f"nodes.{key_text(name)}.address", node.address or ""))
        found.extend(control_paths(f"nodes.{key_text(name)}.attributes", node.attributes))
    for rid, res in cf.resources.items():
        found.extend(control_paths(f"resources.{key_text(rid)}.params", res.params))
    fencing = cf.fencing
    found.extend(control_paths("fencing.watchdog_device", fencing.watchdog_device))
    found.extend(control_paths("fencing.levels", fencing.levels))
    for dev, device in fencing.devices.items():
        where = f"fencing.devices.{key_text(dev)}"
        found.extend(control_paths(where, dev))
        found.extend(control_paths(f"{where}.agent", device.agent))
        found.extend(control_paths(f"{where}.params", device.params))
        found.extend(control_paths(f"{where}.hosts", device.hosts))
        found.extend(control_paths(f"{where}.host_list", device.host_list))
    problems = [(where, f"{why}{_ONE_LINE}") for where, why in found]
    for dev, device in fencing.devices.items():
        for key, value in device.params.items():
            if isinstance(value, dict | list):
                problems.append(
                    (
                        f"fencing.devices.{key_text(dev)}.params.{key_text(key)}",
                        "a fence agent takes one string, number or boolean per parameter",
                    )
                )
    return problems


def _suspicion_problems(cf: ClusterFile) -> list[Problem]:
    after = cf.fencing.suspect_after
    if after is None:
        return []
    where = "fencing.suspect_after"
    if not cf.cluster.fencing or not any(d.kind == "power" for d in cf.fencing.devices.values()):
        return [(where, "fencing on suspicion needs fencing = true and a power fence device")]
    try:
        timing = profile(cf.cluster.profile)
    except ConfigError:
        return []  # reported where the profile is read
    if after < 1.5 * timing.renew_interval - 1e-9:
        return [
            (
                where,
                f"{after:g}s would suspect a member after one late renewal: give at least "
                f"1.5 × the renew interval ({1.5 * timing.renew_interval:g}s in profile "
                f"{timing.name!r})",
            )
        ]
    if after >= timing.member_ttl:
        return [
            (
                where,
                f"{after:g}s is not below the member TTL ({timing.member_ttl:g}s): the lease "
                "expires first, so suspicion would never act; lower it or leave it out",
            )
        ]
    return []


def warnings(cf: ClusterFile) -> list[str]:
    """Legal but probably not what was meant."""
    out: list[str] = []
    watchdog = cf.fencing.watchdog == "required" or all(n.watchdog for n in cf.nodes.values())
    if cf.cluster.fencing and not cf.fencing.devices and not watchdog:
        out.append(
            "fencing is on but there is no [fencing.devices.*] and no watchdog: a lost node "
            "cannot be fenced, so its exclusive resources will stay blocked"
        )
    if not cf.cluster.fencing and not watchdog:
        out.append(
            "fencing is off and no watchdog: exclusive resources of a lost node will not be "
            "recovered elsewhere (fence-before-recover); enable fencing or a watchdog"
        )
    if len(cf.nodes) == 2 and cf.cluster.no_quorum_policy != "ignore":
        out.append(
            "two nodes: losing one loses quorum, so the survivor will "
            f'{cf.cluster.no_quorum_policy} everything; use no_quorum_policy = "ignore" with '
            "fencing for a two-node cluster"
        )
    return out
