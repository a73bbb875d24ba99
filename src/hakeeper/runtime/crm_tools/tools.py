"""``crm_attribute``, ``crm_master``, ``crm_node``, ``crm_resource``, ``attrd_updater``.

Each parses the options agents use, as Pacemaker 2.1's tool of that name does, asks the local
daemon, and prints and exits as that tool would. Any other option is refused with exit code
64 (Pacemaker's CRM_EX_USAGE) and the list of what hakeeper's tool supports. Exit codes: 0 ok,
1 an error, 64 usage, 102 the daemon cannot be reached (CRM_EX_DISCONNECT), 105 no such
attribute, node or resource (CRM_EX_NOSUCH), 3 a cluster property written (hakeeper's cluster
file sets those: CRM_EX_UNIMPLEMENT_FEATURE).
"""

from __future__ import annotations

import getopt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from hakeeper.model.attributes import Lifetime, promotion_attribute
from hakeeper.runtime.crm_tools.client import ToolClient, ToolUnavailable
from hakeeper.runtime.crm_tools.protocol import ToolAnswer, ToolRequest

EX_OK = 0
EX_ERROR = 1
EX_UNIMPLEMENTED = 3
EX_USAGE = 64
EX_DISCONNECT = 102
EX_NOSUCH = 105
TOOLS = ("crm_attribute", "crm_master", "crm_node", "crm_resource", "attrd_updater")


class UsageError(Exception):
    pass


@dataclass(slots=True)
class Io:
    out: TextIO
    err: TextIO
    env: Mapping[str, str]
    client: ToolClient
    tool: str = ""

    def fail(self, message: str, code: int) -> int:
        self.err.write(f"{self.tool}: {message}\n")
        return code


@dataclass(slots=True)
class Parsed:
    flags: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)


def _parse(
    argv: Sequence[str], short: str, long: Sequence[str], names: Mapping[str, str]
) -> Parsed:
    """GNU-style options; ``names`` maps every spelling (``-G``, ``--query``) to one name."""
    try:
        pairs, rest = getopt.gnu_getopt(list(argv), short, list(long))
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}")
    parsed = Parsed()
    for option, value in pairs:
        name = names[option]
        if option.startswith("--"):
            takes_value = f"{option[2:]}=" in long
        else:
            takes_value = f"{option[1]}:" in short
        if takes_value:
            parsed.values[name] = value
        else:
            parsed.flags.add(name)
    return parsed


def _lifetime(text: str) -> Lifetime:
    if text == "reboot":
        return "reboot"
    if text == "forever":
        return "forever"
    raise UsageError(f"--lifetime {text!r}: use reboot or forever")


def _ask(io: Io, request: ToolRequest) -> ToolAnswer | int:
    try:
        return io.client.ask(request)
    except ToolUnavailable as exc:
        return io.fail(f"Could not connect to the cluster: {exc}", EX_DISCONNECT)


def _local_node(io: Io) -> str | int:
    answer = _ask(io, ToolRequest("nodes"))
    return answer if isinstance(answer, int) else answer.local


# --- crm_attribute and crm_master -----------------------------------------------------------

_ATTR_NAMES = {
    "-n": "name", "--name": "name",
    "-v": "update", "--update": "update", "--attr-value": "update",
    "-G": "query", "--query": "query", "--get-value": "query",
    "-D": "delete", "--delete": "delete", "--delete-attr": "delete",
    "-N": "node", "--node": "node", "-U": "node", "--uname": "node",
    "-l": "lifetime", "--lifetime": "lifetime",
    "-t": "type", "--type": "type",
    "-q": "quiet", "--quiet": "quiet", "-Q": "quiet",
    "-V": "verbose", "--verbose": "verbose",
    "-r": "resource", "--resource": "resource",
    "-p": "promotion", "--promotion": "promotion",
}  # fmt: skip
_ATTR_LONG = [
    "name=", "update=", "attr-value=", "query", "get-value", "delete", "delete-attr",
    "node=", "uname=", "lifetime=", "type=", "quiet", "verbose", "resource=",
]  # fmt: skip
_SUPPORTED_ATTR = (
    "-n/--name, -v/--update, -G/--query, -D/--delete, -N/--node, -l/--lifetime, "
    "-t/--type nodes|status|crm_config, -q/--quiet, -p/--promotion[=RESOURCE]"
)
_NODE_TYPES = ("nodes", "status", "forever", "reboot")


def crm_attribute(argv: Sequence[str], io: Io, *, master: bool = False) -> int:
    promotion: str | None = None
    rest: list[str] = []
    for arg in argv:
        # --promotion takes an optional value, which getopt cannot express.
        if not master and arg in ("-p", "--promotion"):
            promotion = ""
        elif not master and arg.startswith("--promotion="):
            promotion = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    short = "VqQGDv:N:U:l:r:" if master else "n:v:GDN:U:l:t:qQV"
    try:
        opts = _parse(rest, short, _ATTR_LONG, _ATTR_NAMES)
    except UsageError as exc:
        hint = _SUPPORTED_ATTR if not master else "-v, -G, -D, -N, -l, -q, -r"
        return io.fail(f"{exc}; hakeeper's {io.tool} supports: {hint}", EX_USAGE)
    lifetime_text = opts.values.get("lifetime")
    kind = opts.values.get("type")
    # Pacemaker's default scope, without -N, -l or -t, is the cluster's properties.
    if (
        not master
        and promotion is None
        and (
            kind == "crm_config"
            or (kind is None and lifetime_text is None and "node" not in opts.values)
        )
    ):
        return _cluster_property(opts, io)
    if kind is not None:
        if kind not in _NODE_TYPES:
            return io.fail(
                f"--type {kind}: hakeeper answers node attributes and cluster properties only",
                EX_USAGE,
            )
        lifetime_text = lifetime_text or ("forever" if kind in ("nodes", "forever") else "reboot")
    if master or promotion is not None:
        resource = opts.values.get("resource") or promotion or io.env.get("OCF_RESOURCE_INSTANCE")
        if not resource:
            return io.fail("No resource specified (set OCF_RESOURCE_INSTANCE)", EX_USAGE)
        name = promotion_attribute(resource)
        # crm_master passes --lifetime forever unless told; --promotion defaults to reboot.
        lifetime_text = lifetime_text or ("forever" if master else "reboot")
    else:
        name = opts.values.get("name", "")
        if not name:
            return io.fail("--name is required", EX_USAGE)
        lifetime_text = lifetime_text or "forever"
    try:
        lifetime = _lifetime(lifetime_text)
    except UsageError as exc:
        return io.fail(str(exc), EX_USAGE)
    node = opts.values.get("node")
    if node is None:
        local = _local_node(io)
        if isinstance(local, int):
            return local
        node = local
    if "update" in opts.values:
        request = ToolRequest("attr_set", node, name, opts.values["update"], lifetime)
    elif "delete" in opts.flags:
        request = ToolRequest("attr_delete", node, name, lifetime=lifetime)
    else:
        request = ToolRequest("attr_get", node, name, lifetime=lifetime)
    answer = _ask(io, request)
    if isinstance(answer, int):
        return answer
    if answer.error:
        return _attribute_error(io, answer)
    if request.op == "attr_get":
        if "quiet" in opts.flags:
            io.out.write(f"{answer.value}\n")
        else:
            scope = "status" if lifetime == "reboot" else "nodes"
            io.out.write(f"scope={scope}  name={name} value={answer.value}\n")
    return EX_OK


def _attribute_error(io: Io, answer: ToolAnswer) -> int:
    prefix = "" if answer.error.startswith("Could not") else "Error performing operation: "
    return io.fail(prefix + answer.error, EX_NOSUCH if answer.missing else EX_ERROR)


def _cluster_property(opts: Parsed, io: Io) -> int:
    """``--type crm_config``: read-only, from the cluster's config (`meta.cluster_properties`)."""
    name = opts.values.get("name", "")
    if not name:
        return io.fail("--name is required", EX_USAGE)
    if "update" in opts.values or "delete" in opts.flags:
        return io.fail(
            f"cluster property {name} is read-only here: hakeeper's cluster file sets it "
            "(its [cluster] section); change it there, or give -N NODE for a node attribute",
            EX_UNIMPLEMENTED,
        )
    answer = _ask(io, ToolRequest("property", name=name))
    if isinstance(answer, int):
        return answer
    if answer.error:
        return _attribute_error(io, answer)
    if "quiet" in opts.flags:
        io.out.write(f"{answer.value}\n")
    else:
        io.out.write(f"scope=crm_config  name={name} value={answer.value}\n")
    return EX_OK


def crm_master(argv: Sequence[str], io: Io) -> int:
    return crm_attribute(argv, io, master=True)


# --- crm_node ----------------------------------------------------------------------------------

_NODE_NAMES = {
    "-n": "name", "--name": "name",
    "-l": "list", "--list": "list",
    "-p": "partition", "--partition": "partition",
    "-q": "quiet", "--quiet": "quiet",
    "-V": "verbose", "--verbose": "verbose",
}  # fmt: skip


def crm_node(argv: Sequence[str], io: Io) -> int:
    try:
        opts = _parse(argv, "nlpqV", ["name", "list", "partition", "quiet", "verbose"], _NODE_NAMES)
    except UsageError as exc:
        return io.fail(
            f"{exc}; hakeeper's crm_node supports: -n/--name, -l/--list, -p/--partition, -q",
            EX_USAGE,
        )
    answer = _ask(io, ToolRequest("nodes"))
    if isinstance(answer, int):
        return answer
    if "list" in opts.flags:
        for n in answer.nodes:
            state = "member" if n.member else "lost"
            io.out.write(f"{n.name}\n" if "quiet" in opts.flags else f"{n.id} {n.name} {state}\n")
    elif "partition" in opts.flags:
        io.out.write(" ".join(n.name for n in answer.nodes if n.member) + "\n")
    elif "name" in opts.flags:
        io.out.write(f"{answer.local}\n")
    else:
        return io.fail("one of -n, -l or -p is required", EX_USAGE)
    return EX_OK


# --- crm_resource --------------------------------------------------------------------------------

_RESOURCE_NAMES = {
    "-r": "resource", "--resource": "resource",
    "-m": "meta", "--meta": "meta",
    "-g": "get", "--get-parameter": "get",
    "-W": "locate", "--locate": "locate",
    "-Q": "quiet", "--quiet": "quiet",
    "-V": "verbose", "--verbose": "verbose",
}  # fmt: skip


def crm_resource(argv: Sequence[str], io: Io) -> int:
    try:
        opts = _parse(
            argv,
            "r:mg:WQV",
            ["resource=", "meta", "get-parameter=", "locate", "quiet", "verbose"],
            _RESOURCE_NAMES,
        )
    except UsageError as exc:
        return io.fail(
            f"{exc}; hakeeper's crm_resource supports: --resource R --meta --get-parameter P, "
            "--resource R --locate",
            EX_USAGE,
        )
    resource = opts.values.get("resource")
    if not resource:
        return io.fail("--resource is required", EX_USAGE)
    if "get" in opts.values:
        if "meta" not in opts.flags:
            return io.fail("hakeeper answers --get-parameter with --meta only", EX_USAGE)
        answer = _ask(io, ToolRequest("resource_meta", name=opts.values["get"], resource=resource))
    elif "locate" in opts.flags:
        answer = _ask(io, ToolRequest("locate", resource=resource))
    else:
        return io.fail("one of --get-parameter or --locate is required", EX_USAGE)
    if isinstance(answer, int):
        return answer
    if answer.error:
        return io.fail(answer.error, EX_NOSUCH if answer.missing else EX_ERROR)
    if "get" in opts.values:
        io.out.write(f"{answer.value}\n")
    elif not answer.located:
        io.err.write(f"resource {resource} is NOT running\n")
    for node, role in answer.located:
        if "quiet" in opts.flags:
            io.out.write(f"{node}\n")
        else:
            io.out.write(f"resource {resource} is running on: {node}{' ' + role if role else ''}\n")
    return EX_OK


# --- attrd_updater -------------------------------------------------------------------------------

_ATTRD_NAMES = {
    "-n": "name", "--name": "name",
    "-U": "update", "--update": "update", "-v": "update",
    "-Q": "query", "--query": "query",
    "-D": "delete", "--delete": "delete",
    "-p": "private", "--private": "private",
    "-l": "lifetime", "--lifetime": "lifetime",
    "-N": "node", "--node": "node",
    "-q": "quiet", "--quiet": "quiet",
    "-V": "verbose", "--verbose": "verbose",
}  # fmt: skip
_NAME_TEXT = re.compile(r"[^\s\"]+")


def attrd_updater(argv: Sequence[str], io: Io) -> int:
    try:
        opts = _parse(
            argv,
            "n:U:v:QDpl:N:qV",
            ["name=", "update=", "query", "delete", "private", "lifetime=", "node=", "quiet",
             "verbose"],
            _ATTRD_NAMES,
        )  # fmt: skip
    except UsageError as exc:
        return io.fail(
            f"{exc}; hakeeper's attrd_updater supports: --name, --update, --query, --delete, "
            "--private, --lifetime (ignored, as Pacemaker does), --node",
            EX_USAGE,
        )
    name = opts.values.get("name", "")
    if not _NAME_TEXT.fullmatch(name):
        return io.fail("--name is required (one word)", EX_USAGE)
    node = opts.values.get("node")
    if node is None:
        local = _local_node(io)
        if isinstance(local, int):
            return local
        node = local
    private = "private" in opts.flags
    # attrd keeps transient attributes; Pacemaker ignores --lifetime here.
    if "update" in opts.values:
        request = ToolRequest("attr_set", node, name, opts.values["update"], "reboot", private)
    elif "delete" in opts.flags:
        request = ToolRequest("attr_delete", node, name, lifetime="reboot")
    elif "query" in opts.flags:
        request = ToolRequest("attr_get", node, name, lifetime="reboot")
    else:
        return io.fail("one of --update, --query or --delete is required", EX_USAGE)
    answer = _ask(io, request)
    if isinstance(answer, int):
        return answer
    if answer.error:
        if request.op == "attr_get" and answer.missing:
            return io.fail(f"Could not query value of {name}: attribute does not exist", EX_NOSUCH)
        return io.fail(answer.error, EX_NOSUCH if answer.missing else EX_ERROR)
    if request.op == "attr_get":
        io.out.write(f'name="{name}" host="{node}" value="{answer.value}"\n')
    return EX_OK


ToolMain = Callable[[Sequence[str], Io], int]
MAINS: dict[str, ToolMain] = {
    "crm_attribute": crm_attribute,
    "crm_master": crm_master,
    "crm_node": crm_node,
    "crm_resource": crm_resource,
    "attrd_updater": attrd_updater,
}


def run(
    tool: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    client: ToolClient,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run ``tool`` as Pacemaker's would: its exit code."""
    io = Io(out, err, env, client, tool)
    if any(a in ("--help", "-h", "-?", "--version", "-$") for a in argv):
        out.write(f"{tool} (hakeeper): answers as Pacemaker 2.1's for the options agents use\n")
        return EX_OK
    return MAINS[tool](argv, io)
