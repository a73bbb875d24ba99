"""The cluster file's schema: pydantic v2 models, frozen, unknown keys refused.

Reference checks that span sections (a constraint naming a resource that does not exist,
cycles) live in `hakeeper.config.checks`; turning the result into the plain model the
scheduler reads lives in `hakeeper.config.loader.to_spec`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hakeeper.config.api_section import ApiSection
from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import parse_availability
from hakeeper.model.cluster import (
    DEFAULT_EVENTS_MAX_AGE,
    DEFAULT_EVENTS_MAX_COUNT,
    DEFAULT_OP_TIMEOUT,
    OnFail,
)
from hakeeper.model.durations import parse_duration
from hakeeper.model.roles import RoleFilter, TargetRole
from hakeeper.model.scores import parse_score


def _duration(value: object) -> float:
    """A duration (`hakeeper.model.durations`), refused in the words of the other keys."""
    try:
        return parse_duration(value)
    except ConfigError:
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{value} is negative (use 0 or more, e.g. 5s, 500ms)") from None
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"{shown} is not a duration (use 5s, 500ms)") from None


def _score(value: object) -> int:
    try:
        return parse_score(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _availability_target(value: object) -> float:
    """``"99.95%"``, ``99.95``, ``0.9995`` or ``"4 nines"``; above 0 (0 % is no target)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'{value!r} is not an availability (use e.g. "99.95%")')
    try:
        target = parse_availability(str(value), "availability_target")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if not 0 < target <= 1 or math.isnan(target):
        raise ValueError(f'{value!r} is not above 0 and at most 100 % (use e.g. "99.95%")')
    return target


# Matched with fullmatch: "$" would accept a trailing newline. A unit may start with "-"
# ("-.mount"): systemctl gets it after "--".
_AGENT = re.compile(
    r"(process|vip|balancer|sessions|ocf:[\w.-]+:[\w.-]+|systemd:[\w@.:-]+|lsb:[\w.-]+)"
)


def _agent(value: object) -> object:
    if isinstance(value, str) and not _AGENT.fullmatch(value):
        raise ValueError(
            f'"{value}" is not an agent (use process, vip, balancer, sessions, '
            "ocf:<provider>:<type>, systemd:<unit> or lsb:<script>)"
        )
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
Score = Annotated[int, BeforeValidator(_score)]
Agent = Annotated[str, BeforeValidator(_agent)]
AvailabilityTarget = Annotated[float, BeforeValidator(_availability_target)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ClusterSection(Section):
    name: str = "hakeeper"
    profile: Literal["fast", "default", "wan"] = "default"
    no_quorum_policy: Literal["stop", "freeze", "demote", "ignore"] = "stop"
    fencing: bool = True
    failback: Literal["auto", "manual"] = "auto"
    stickiness: Score | None = None
    # The availability every service is measured against (the API and the dashboard).
    availability_target: AvailabilityTarget | None = None
    # The event log's bound (runtime/event_retention.py): the controller trims it hourly.
    events_max_age: Duration = Field(default=DEFAULT_EVENTS_MAX_AGE, ge=3600.0)
    events_max_count: int = Field(default=DEFAULT_EVENTS_MAX_COUNT, ge=100, le=10_000_000)


class CoordinationSection(Section):
    backend: Literal["raft", "etcd"] = "raft"
    # The cluster secret, by absolute path (hakeeper.config.secret_file): the config itself
    # is replicated, so a secret never stands in it.
    secret_file: str = "/etc/hakeeper/secret"
    raft_port: int = Field(default=7480, ge=1, le=65535)
    endpoints: list[str] = []
    # etcd: TLS (server CA, client certificate) and an etcd user; files by absolute path.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    user: str | None = None
    password_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise ValueError(
                "an inline secret would be replicated with the config: put it in a file of "
                'mode 0600 and name it with secret_file = "/etc/hakeeper/secret" '
                "(`hakeeper init` writes one)"
            )
        return data

    @field_validator("secret_file", "ca_file", "cert_file", "key_file", "password_file")
    @classmethod
    def _file_absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(ord(c) < 32 for c in value)):
            raise ValueError(
                "give an absolute path without control characters, e.g. "
                '"/etc/hakeeper/secret" (every node reads it from its own disk)'
            )
        return value

    @model_validator(mode="after")
    def _endpoints_match_backend(self) -> CoordinationSection:
        if self.backend == "etcd" and not self.endpoints:
            raise ValueError('backend "etcd" needs endpoints = ["http://10.0.0.1:2379", ...]')
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the client certificate)")
        if (self.user is None) != (self.password_file is None):
            raise ValueError("user and password_file go together (the etcd user)")
        if self.user is not None and any(ord(c) < 33 or c == ":" for c in self.user):
            raise ValueError("user: no spaces, control characters or ':' in an etcd user name")
        if self.backend == "raft" and self.endpoints:
            raise ValueError(
                'endpoints are for backend "etcd"; the raft backend derives its peers from '
                "each node's address and raft_port"
            )
        return self


class NodeSection(Section):
    address: str | None = None
    raft_port: int | None = Field(default=None, ge=1, le=65535)
    attributes: dict[str, str] = {}
    standby: bool = False
    maintenance: bool = False
    watchdog: bool = False


class OpSection(Section):
    interval: Duration = 0.0
    timeout: Duration = DEFAULT_OP_TIMEOUT


OpName = Literal["monitor", "start", "stop", "promote", "demote", "notify"]


class ResourceSection(Section):
    agent: Agent
    params: dict[str, Any] = {}
    ops: dict[OpName, OpSection] = {}
    stickiness: Score | None = None
    migration_threshold: int = Field(default=0, ge=0)
    #: None: the agent's default (`hakeeper.config.agent_defaults`), else 0 (never).
    failure_timeout: Duration | None = None
    #: None: the agent's default (`hakeeper.config.agent_defaults`), else "restart".
    on_fail: OnFail | None = None
    exclusive: bool = True
    priority: int = 0
    target_role: TargetRole = "started"


class GroupSection(Section):
    members: list[str] = Field(min_length=1)
    stickiness: Score | None = None
    priority: int = 0
    target_role: TargetRole = "started"


class CloneSection(Section):
    resource: str
    max: int | None = Field(default=None, ge=1)
    max_per_node: int = Field(default=1, ge=1)
    promotable: bool = False
    stickiness: Score | None = None
    priority: int = 0
    target_role: TargetRole = "started"
    notify: bool = False


class LocationSection(Section):
    resource: str
    score: Score
    node: str | None = None
    attribute: str | None = None
    value: str | None = None
    role: RoleFilter = "any"

    @model_validator(mode="after")
    def _one_target(self) -> LocationSection:
        by_attr = self.attribute is not None or self.value is not None
        if (self.node is None) == (not by_attr):
            raise ValueError(
                'give either node = "n1" or attribute = "rack" with value = "a", not both'
            )
        if by_attr and (self.attribute is None or self.value is None):
            raise ValueError("an attribute rule needs both attribute and value")
        return self


class ColocationSection(Section):
    resource: str
    with_resource: str = Field(alias="with")
    score: Score = 1_000_000
    with_role: RoleFilter = "any"


class OrderSection(Section):
    first: str
    then: str
    first_action: Literal["start", "promote"] = "start"
    then_action: Literal["start", "promote"] = "start"


class ConstraintsSection(Section):
    location: list[LocationSection] = []
    colocation: list[ColocationSection] = []
    order: list[OrderSection] = []


class FenceDeviceSection(Section):
    agent: str
    params: dict[str, Any] = {}
    hosts: dict[str, str] = {}
    host_list: list[str] = []
    host_argument: Literal["auto", "port", "plug", "none"] = "auto"
    timeout: Duration = 60.0
    retries: int = Field(default=2, ge=0, le=10)
    delay_base: Duration = 0.0
    delay_max: Duration = 0.0
    kind: Literal["power", "fabric"] = "power"
    prestart: bool = False


def _watchdog_mode(value: object) -> object:
    """``true``/``false`` from older files mean required/off."""
    if value is True:
        return "required"
    if value is False:
        return "off"
    return value


class FencingSection(Section):
    watchdog: Annotated[
        Literal["off", "automatic", "required"], BeforeValidator(_watchdog_mode)
    ] = "off"
    watchdog_device: str = "/dev/watchdog"
    watchdog_timeout: int | None = Field(default=None, ge=1, le=3600)
    suspect_after: Duration | None = None
    devices: dict[str, FenceDeviceSection] = {}
    levels: dict[str, list[list[str]]] = {}


def _no_control(value: str, what: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} must not hold control characters (newlines, tabs, ...)")
    return value


class AlertSection(Section):
    """One ``[[alerts]]`` entry: an alert agent (Pacemaker's interface) or a webhook."""

    id: str = Field(pattern=r"^[A-Za-z0-9][\w.-]{0,63}$")
    agent: str | None = None
    webhook: str | None = None
    recipients: list[str] = Field(default=[], max_length=32)
    params: dict[str, str] = Field(default={}, max_length=64)
    kinds: list[str] = []
    resources: list[str] = []
    timeout: Duration = 30.0
    timestamp_format: str = Field(default="%H:%M:%S.%06N", max_length=128)
    secret_file: str | None = None
    retries: int = Field(default=3, ge=0, le=10)
    queue: int = Field(default=100, ge=1, le=10_000)

    @field_validator("agent", "secret_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or not value.isprintable()):
            raise ValueError(
                "give an absolute path without control characters, e.g. "
                '"/usr/share/pacemaker/alerts/alert_file.sh.sample"'
            )
        return value

    @field_validator("recipients", "resources", "kinds")
    @classmethod
    def _printable(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value or len(value) > 1024:
                raise ValueError("each entry is 1 to 1024 characters")
            _no_control(value, "an entry")
        return values

    @field_validator("params")
    @classmethod
    def _environment(cls, params: dict[str, str]) -> dict[str, str]:
        for name, value in params.items():
            # They become environment variables of the agent: a name the shell can read,
            # never one of Pacemaker's own (an agent must be able to trust those).
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name) or name.startswith(
                ("CRM_", "PATH", "LD_")
            ):
                raise ValueError(
                    f"params: {name!r} is not usable as an environment variable (letters, "
                    "digits and _; not CRM_*, PATH or LD_*)"
                )
            _no_control(value, f"params.{name}")
        return params

    @field_validator("timestamp_format")
    @classmethod
    def _format(cls, value: str) -> str:
        return _no_control(value, "timestamp_format")

    @model_validator(mode="after")
    def _one_way(self) -> AlertSection:
        if (self.agent is None) == (self.webhook is None):
            raise ValueError(
                'give either agent = "/path/to/alert_agent" or webhook = "https://...", not both'
            )
        if self.webhook is not None:
            if not re.fullmatch(r"https?://[^\s@/]+(/\S*)?", self.webhook):
                raise ValueError(
                    "webhook: an http:// or https:// URL without spaces or user:password@ "
                    "(the config is replicated: name a secret_file for the signature instead)"
                )
            if self.secret_file is None:
                raise ValueError(
                    "a webhook needs secret_file (a 0600 file whose first line signs each "
                    "body; `hakeeper secret` or `openssl rand -hex 32 > FILE` writes one)"
                )
            if self.recipients or self.params:
                raise ValueError("recipients and params are for alert agents, not webhooks")
        if self.timeout <= 0 or self.timeout > 600:
            raise ValueError("timeout must be more than 0 and at most 600s")
        return self


def _private_path(value: str | None) -> str | None:
    if value is not None and (not value.startswith("/") or any(ord(c) < 32 for c in value)):
        raise ValueError("give an absolute path without control characters")
    return value


PrivatePath = Annotated[str | None, BeforeValidator(_private_path)]


class BackupSection(Section):
    """Where backups go and how (docs/dr.md). ``store`` is a directory (absolute path) or
    ``s3://bucket/prefix``; secrets only by path: the backup key and the S3 credentials."""

    store: str
    key_file: PrivatePath = None
    endpoint: str | None = None
    region: str = "us-east-1"
    credentials_file: PrivatePath = None
    keep_last: int | None = Field(default=None, ge=1, le=100_000)
    max_age: Duration | None = None
    schedule: Duration | None = None
    drill: Duration | None = None

    @field_validator("store")
    @classmethod
    def _store_form(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value) or not (
            value.startswith("/") or value.startswith("s3://")
        ):
            raise ValueError(
                'give an absolute directory ("/var/backups/hakeeper") or an S3 URL '
                '("s3://bucket/prefix"), without control characters'
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.startswith(("http://", "https://")) or any(ord(c) < 33 for c in value)
        ):
            raise ValueError('give a URL such as "https://s3.example.net"')
        return value

    @field_validator("schedule", "drill", "max_age")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("give a period above zero, e.g. 1h or 1d")
        return value


class ClusterFile(Section):
    """The whole file. ``balancer`` and ``sessions`` are reserved: accepted, not yet read."""

    cluster: ClusterSection = ClusterSection()
    coordination: CoordinationSection = CoordinationSection()
    nodes: dict[str, NodeSection] = Field(min_length=1)
    resources: dict[str, ResourceSection] = {}
    groups: dict[str, GroupSection] = {}
    clones: dict[str, CloneSection] = {}
    constraints: ConstraintsSection = ConstraintsSection()
    fencing: FencingSection = FencingSection()
    alerts: list[AlertSection] = Field(default=[], max_length=32)
    api: ApiSection = ApiSection()
    balancer: dict[str, Any] | None = None
    sessions: dict[str, Any] | None = None
    backup: BackupSection | None = None
