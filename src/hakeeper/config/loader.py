"""Load the cluster file: TOML → validated `ClusterFile` → plain `ClusterSpec`.

Every error is one `ConfigError` whose lines read ``FILE: key.path: what is wrong (the fix)``,
all problems at once so that one edit fixes them all.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hakeeper.config.agent_defaults import meta_defaults
from hakeeper.config.checks import check
from hakeeper.config.schema import ClusterFile
from hakeeper.config.toml_bounds import text_problem
from hakeeper.errors import ConfigError
from hakeeper.model.alerts import AlertSpec
from hakeeper.model.cluster import (
    Clone,
    ClusterOptions,
    ClusterSpec,
    Colocation,
    Coordination,
    FenceDevice,
    Group,
    Location,
    Meta,
    NodeSpec,
    Op,
    Order,
    Primitive,
    WatchdogSpec,
)

_T = TypeVar("_T")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from exc
    return _loads(text, str(path))


def _loads(text: str, source: str) -> dict[str, Any]:
    """TOML, within `toml_bounds` (size, nesting), every failure a ConfigError."""
    problem = text_problem(text)
    if problem is not None:
        raise ConfigError(f"{source}: refused before parsing: {problem}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{source}: nests too deep to parse") from None


def spec_from_text(text: str, source: str) -> ClusterSpec:
    """A cluster file's text (as stored by ``config apply``) to a validated spec."""
    return to_spec(parse(_loads(text, source), source=source))


def file_from_text(text: str, source: str) -> ClusterFile:
    """A cluster file's text to the validated file, every section (``[backup]`` too)."""
    return parse(_loads(text, source), source=source)


def load(path: Path | str) -> ClusterFile:
    path = Path(path)
    return parse(read_toml(path), source=str(path))


def load_spec(path: Path | str) -> ClusterSpec:
    return to_spec(load(path))


def parse(data: dict[str, Any], source: str = "cluster.toml") -> ClusterFile:
    """Validate a decoded document; raise one ConfigError listing every problem."""
    try:
        cf = ClusterFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err)}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    problems = check(cf)
    if problems:
        raise ConfigError("\n".join(f"{source}: {where}: {fix}" for where, fix in problems))
    return cf


# --- error messages -------------------------------------------------------------------


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (for "did you mean")."""
    annotation: Any = ClusterFile
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next(
                (f for n, f in annotation.model_fields.items() if part in (n, f.alias)), None
            )
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _describe(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"known keys: {', '.join(known)}"
        return f"{_path(loc)}: unknown key ({hint})"
    if kind == "missing":
        return f"{_path(loc)}: required; add it"
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{_path(loc)}: {_show(value)} is not one of {expected}"
    if kind in ("value_error", "assertion_error"):
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"{_path(loc)}: {msg}"
    if kind == "too_short":
        return f"{_path(loc)}: empty; give at least one"
    if kind.startswith(("int_", "bool_", "string_", "dict_", "list_", "model_", "float_")):
        return f"{_path(loc)}: {_show(value)}: {err['msg'].lower()}"
    return f"{_path(loc)}: {err['msg']}"


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# --- to the plain model -----------------------------------------------------------------


def to_spec(cf: ClusterFile) -> ClusterSpec:
    c = cf.cluster
    promotable = {cl.resource for cl in cf.clones.values() if cl.promotable}
    defaults = {
        rid: meta_defaults(res.agent, promotable=rid in promotable)
        for rid, res in cf.resources.items()
    }
    return ClusterSpec(
        options=ClusterOptions(
            name=c.name,
            profile=c.profile,
            no_quorum_policy=c.no_quorum_policy,
            fencing=c.fencing,
            failback=c.failback,
            stickiness=c.stickiness,
            availability_target=c.availability_target,
            events_max_age=c.events_max_age,
            events_max_count=c.events_max_count,
        ),
        nodes=tuple(
            NodeSpec(
                name=name,
                address=node.address or name,
                raft_port=node.raft_port or cf.coordination.raft_port,
                attributes=dict(node.attributes),
                standby=node.standby,
                maintenance=node.maintenance,
                watchdog=node.watchdog or cf.fencing.watchdog == "required",
            )
            for name, node in cf.nodes.items()
        ),
        primitives=tuple(
            Primitive(
                id=rid,
                agent=res.agent,
                params=dict(res.params),
                ops=tuple(
                    Op(name, op.interval, op.timeout) for name, op in sorted(res.ops.items())
                ),
                meta=Meta(
                    stickiness=res.stickiness,
                    migration_threshold=res.migration_threshold,
                    failure_timeout=_or(res.failure_timeout, defaults[rid].failure_timeout),
                    on_fail=_or(res.on_fail, defaults[rid].on_fail),
                    exclusive=res.exclusive,
                    priority=res.priority,
                    target_role=res.target_role,
                ),
            )
            for rid, res in cf.resources.items()
        ),
        groups=tuple(
            Group(gid, tuple(g.members), g.stickiness, g.priority, g.target_role)
            for gid, g in cf.groups.items()
        ),
        clones=tuple(
            Clone(
                cid,
                cl.resource,
                cl.max,
                cl.max_per_node,
                cl.promotable,
                cl.stickiness,
                cl.priority,
                cl.target_role,
                cl.notify,
            )
            for cid, cl in cf.clones.items()
        ),
        locations=tuple(
            Location(
                loc.resource,
                loc.score,
                loc.node,
                loc.attribute,
                loc.value,
                loc.role,
                id=f"location[{i}]",
            )
            for i, loc in enumerate(cf.constraints.location)
        ),
        colocations=tuple(
            Colocation(col.resource, col.with_resource, col.score, col.with_role)
            for col in cf.constraints.colocation
        ),
        orders=tuple(
            Order(o.first, o.then, o.first_action, o.then_action) for o in cf.constraints.order
        ),
        coordination=Coordination(
            backend=cf.coordination.backend,
            secret_file=cf.coordination.secret_file,
            endpoints=tuple(cf.coordination.endpoints),
            ca_file=cf.coordination.ca_file,
            cert_file=cf.coordination.cert_file,
            key_file=cf.coordination.key_file,
            user=cf.coordination.user,
            password_file=cf.coordination.password_file,
        ),
        fence_devices=tuple(
            FenceDevice(
                name,
                d.agent,
                dict(d.params),
                dict(d.hosts),
                tuple(d.host_list),
                d.host_argument,
                d.timeout,
                d.retries,
                d.delay_base,
                d.delay_max,
                d.kind,
                d.prestart,
            )
            for name, d in cf.fencing.devices.items()
        ),
        fence_levels={
            node: tuple(tuple(level) for level in levels)
            for node, levels in cf.fencing.levels.items()
        },
        watchdog=cf.fencing.watchdog == "required",
        watchdog_spec=WatchdogSpec(
            cf.fencing.watchdog, cf.fencing.watchdog_device, cf.fencing.watchdog_timeout
        ),
        suspect_after=cf.fencing.suspect_after,
        alerts=tuple(
            AlertSpec(
                id=a.id,
                via="agent" if a.agent is not None else "webhook",
                target=a.agent if a.agent is not None else str(a.webhook),
                recipients=tuple(a.recipients),
                params=dict(a.params),
                kinds=tuple(a.kinds),
                resources=tuple(a.resources),
                timeout=a.timeout,
                timestamp_format=a.timestamp_format,
                secret_file=a.secret_file,
                retries=a.retries,
                queue=a.queue,
            )
            for a in cf.alerts
        ),
    )


def _or(given: _T | None, default: _T) -> _T:
    """The cluster file's value where it gives one, else the agent's default."""
    return default if given is None else given
