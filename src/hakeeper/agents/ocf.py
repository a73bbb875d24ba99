"""``ocf:<provider>:<type>``: run an OCF 1.1 resource agent, unchanged, as Pacemaker would.

Each action is ``$OCF_ROOT/resource.d/<provider>/<type> <action>`` in its own process group,
stdin from /dev/null, with the environment of `build_ocf_env`. The agent's ``meta-data`` is
read once, when the agent object is made (config load), to check required parameters and to
learn the advertised timeouts. Advertised defaults are *not* exported: agents compute their
own, and what they advertise depends on the call (Dummy's state-file default reads
``.../Dummy-RESOURCE_ID.state`` when meta-data runs without an instance name).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from hakeeper.agents.base import MetaData, OpRequest, OpResult
from hakeeper.agents.command import Answer, CommandAgent
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.metadata import parse_meta_data
from hakeeper.agents.runner import EXIT_REASON_PREFIX, Completed, kill_group
from hakeeper.errors import ConfigError

DEFAULT_OCF_ROOT = Path("/usr/lib/ocf")
META_DATA_TIMEOUT = 10.0
# Parameters every heartbeat agent understands through ocf-shellfuncs, never in meta-data.
UNIVERSAL_PARAMS = frozenset({"trace_ra", "trace_file", "OCF_CHECK_LEVEL"})
# Matched with fullmatch: "$" would accept a trailing newline.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROVIDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")

ParamValue = str | int | float | bool


def param_text(name: str, value: object) -> str:
    """An instance parameter or meta attribute as the string an agent's environment carries."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(
        f"parameter {name!r}: OCF agents take strings, numbers or booleans, "
        f"got {type(value).__name__}; write it as one string"
    )


def agent_path(ocf_root: Path, provider: str, type_: str) -> Path:
    return ocf_root / "resource.d" / provider / type_


def check_agent(ocf_root: Path, provider: str, type_: str) -> Path:
    """The agent's path, or a ConfigError naming the path looked at and the fix."""
    for label, part in (("provider", provider), ("type", type_)):
        if not _PROVIDER.fullmatch(part):
            raise ConfigError(f"ocf:{provider}:{type_}: {label} {part!r} is not a valid name")
    path = agent_path(ocf_root, provider, type_)
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise ConfigError(f"OCF agent {path} is not executable; fix: chmod +x {path}")
        return path
    provider_dir = path.parent
    if provider_dir.is_dir():
        present = sorted(p.name for p in provider_dir.iterdir() if p.is_file())
        close = difflib.get_close_matches(type_, present, n=5, cutoff=0.5)
        close += [p for p in present if p.lower() == type_.lower() and p not in close]
        hint = f"; close matches in {provider_dir}: {', '.join(close)}" if close else ""
    else:
        root = ocf_root / "resource.d"
        providers = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        hint = (
            f"; providers present under {root}: {', '.join(providers)}"
            if providers
            else f"; {root} does not exist"
        )
    raise ConfigError(
        f"OCF agent ocf:{provider}:{type_} not found: looked at {path}{hint}. Fix: install "
        "the agents (Debian: apt-get install resource-agents), or check the provider/type "
        f"spelling (OCF_ROOT is {ocf_root})"
    )


def build_ocf_env(
    *,
    ocf_root: Path,
    provider: str,
    type_: str,
    instance: str,
    params: Mapping[str, str],
    meta: Mapping[str, str],
    action: str,
    req: OpRequest,
    base: Mapping[str, str],
    cluster: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full OCF 1.1 environment for one action (pure).

    ``base`` is the environment to start from (PATH and friends); any ``OCF_*`` in it is
    dropped so that nothing from hakeeper's own environment leaks into an agent as a
    parameter. Meta names have ``-`` replaced by ``_`` (as Pacemaker does: ``clone-max`` →
    ``OCF_RESKEY_CRM_meta_clone_max``); interval and timeout are milliseconds. ``cluster``
    is what the cluster adds (`AgentContext.cluster_env`), after that filter.
    """
    env = {k: v for k, v in base.items() if not k.startswith("OCF_") and k != "HAKEEPER_EPOCH"}
    env.update(cluster or {})
    env.update(
        {
            "OCF_ROOT": str(ocf_root),
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": instance,
            "OCF_RESOURCE_TYPE": type_,
            "OCF_RESOURCE_PROVIDER": provider,
            "OCF_CHECK_LEVEL": str(req.check_level),
            "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
            "HAKEEPER_EPOCH": str(req.epoch),
        }
    )
    for name, value in params.items():
        env[f"OCF_RESKEY_{name}"] = value
    per_op = {
        "interval": str(round(req.interval * 1000)),
        "timeout": str(round(req.timeout * 1000)),
        "name": action,
        "hakeeper_epoch": str(req.epoch),
    }
    if req.node:
        per_op["on_node"] = req.node
    for name, value in {**meta, **req.meta, **per_op}.items():
        env[f"OCF_RESKEY_CRM_meta_{name.replace('-', '_')}"] = value
    return env


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def read_meta_data(path: Path, env: Mapping[str, str], timeout: float = META_DATA_TIMEOUT) -> str:
    """Run ``<agent> meta-data`` synchronously (config load is synchronous), with a deadline."""
    try:
        proc = subprocess.Popen(
            [str(path), "meta-data"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"cannot run {path} meta-data: {exc.strerror}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        raise ConfigError(
            f"{path} meta-data did not answer within {timeout:.0f}s; the agent is broken or "
            "waits for something (run it by hand)"
        ) from exc
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip()[-500:]
        raise ConfigError(f"{path} meta-data failed with exit code {proc.returncode}: {tail}")
    return out.decode(errors="replace")


class OcfAgent(CommandAgent):
    """One OCF resource instance on this node; ``run`` runs any action (``notify``…)."""

    def __init__(
        self,
        *,
        provider: str,
        type_: str,
        instance: str,
        params: Mapping[str, str],
        meta: Mapping[str, str],
        metadata: MetaData,
        ocf_root: Path = DEFAULT_OCF_ROOT,
        cluster_env: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.type = type_
        self.instance = instance
        self.params = dict(params)
        self.meta = dict(meta)
        self.ocf_root = ocf_root
        self.path = agent_path(ocf_root, provider, type_)
        self._metadata = metadata
        self.cluster_env = dict(cluster_env or {})

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> OcfAgent:
        """Resolve ``<provider>:<type>``, read meta-data, check the parameters."""
        instance, params, meta = context.instance, context.params, context.meta
        parts = target.split(":")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(
                f"agent 'ocf:{target}': write ocf:<provider>:<type>, e.g. ocf:heartbeat:Dummy"
            )
        provider, type_ = parts
        root = context.ocf_root or Path(os.environ.get("OCF_ROOT") or DEFAULT_OCF_ROOT)
        path = check_agent(root, provider, type_)
        texts = {name: param_text(name, value) for name, value in params.items()}
        for name in texts:
            if not _NAME.fullmatch(name):
                raise ConfigError(
                    f"ocf:{target} parameter {name!r}: names must be letters, digits and '_' "
                    "(they become the shell variable OCF_RESKEY_<name>)"
                )
        meta_texts = {name: param_text(name, value) for name, value in meta.items()}
        env = build_ocf_env(
            ocf_root=root,
            provider=provider,
            type_=type_,
            instance=instance,
            params={},
            meta={},
            action="meta-data",
            req=OpRequest(timeout=META_DATA_TIMEOUT),
            base=_base_env(),
        )
        metadata = parse_meta_data(read_meta_data(path, env), source=f"{path} meta-data")
        missing = metadata.missing_required(set(texts))
        if missing:
            raise ConfigError(
                f"resource {instance!r} (ocf:{target}) lacks required parameter(s) "
                f"{', '.join(missing)}; set them in the resource's params"
            )
        known = {p.name for p in metadata.parameters} | UNIVERSAL_PARAMS
        for name in texts:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"resource {instance!r}: ocf:{target} has no parameter {name!r}{hint}; "
                    f"its parameters are {', '.join(sorted(p.name for p in metadata.parameters))}"
                )
        return cls(
            provider=provider,
            type_=type_,
            instance=instance,
            params=texts,
            meta=meta_texts,
            metadata=metadata,
            ocf_root=root,
            cluster_env=context.cluster_env,
        )

    def meta_data(self) -> MetaData:
        return self._metadata

    def effective_params(self) -> dict[str, str]:
        """Given parameters plus advertised defaults (for display; not what the agent gets)."""
        return self._metadata.with_defaults(self.params)

    def environment(self, action: str, req: OpRequest) -> dict[str, str]:
        return build_ocf_env(
            ocf_root=self.ocf_root,
            provider=self.provider,
            type_=self.type,
            instance=self.instance,
            params=self.params,
            meta=self.meta,
            action=action,
            req=req,
            base=_base_env(),
            cluster=self.cluster_env,
        )

    async def validate_all(self, req: OpRequest) -> OpResult:
        return await self.run("validate-all", req)

    def argv(self, action: str) -> list[str]:
        return [str(self.path), action]

    def answer(self, action: str, op: str, done: Completed, req: OpRequest) -> Answer:
        # OCF agents answer OCF codes; the reason is the one they gave on stderr.
        reason = done.exit_reason
        if done.timed_out and not reason:
            reason = f"{self.path.name} {op} did not finish within {req.timeout:g}s"
        return Answer(done.rc, reason)
