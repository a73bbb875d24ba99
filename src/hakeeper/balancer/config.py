"""The balancer's own file (``balancer.toml``), validated with pydantic.

```toml
[[frontend]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"            # or "tcp"
backend = "app"

[[backend]]
name = "app"
policy = "roundrobin"    # swrr, leastconn, source, consistent
cookie = "HKSRV"         # http only: stickiness by cookie
slowstart = "0s"
servers = [
  { name = "a", address = "127.0.0.1:9001", weight = 3 },
  { name = "b", address = "127.0.0.1:9002", backup = true },
]
[backend.check]          # HAProxy defaults: inter 2s, fall 3, rise 2, timeout = inter
type = "http"            # tcp, http, none
path = "/health"

[timeouts]
client_header = 10.0

[api]                    # off unless bound; loopback only unless a token hash is set
bind = "127.0.0.1:9900"
token_hash = "sha256:..." # `hakeeper lb token` makes one
```

Errors are one `ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hakeeper.errors import ConfigError
from hakeeper.model.address import split_address
from hakeeper.model.roles import ROLE_SELECTORS, RoleSelector

Policy = Literal["roundrobin", "swrr", "leastconn", "source", "consistent"]


def is_loopback(host: str) -> bool:
    """Whether a bind host reaches only this machine (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1 from a dual-stack socket
    return address.is_loopback


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckSpec(_Strict):
    type: Literal["tcp", "http", "none"] = "tcp"
    inter: float = Field(default=2.0, gt=0, description="seconds between checks")
    fall: int = Field(default=3, ge=1)
    rise: int = Field(default=2, ge=1)
    timeout: float | None = Field(default=None, gt=0, description="default: inter")
    method: str = "GET"
    path: str = "/"
    host: str = "localhost"
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = None

    @property
    def timeout_s(self) -> float:
        return self.timeout if self.timeout is not None else self.inter


class PassiveSpec(_Strict):
    """Early marking down from live traffic (HAProxy ``observe`` + ``error-limit``)."""

    error_limit: int = Field(
        default=3, ge=1, description="consecutive errors that mark a server down"
    )
    observe_5xx: bool = False


class ServerSpec(_Strict):
    name: str = Field(min_length=1)
    address: str
    weight: int = Field(default=1, ge=0, le=256)
    backup: bool = False

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address)


class CloneSpec(_Strict):
    """Servers are the live instances of a cluster resource (see clone_backends)."""

    resource: str = Field(min_length=1, description="as `hakeeper status` names it")
    port: int = Field(ge=1, le=65535, description="where each instance listens")
    cluster_config: str = Field(description="the cluster file: nodes, addresses, engine")
    role: RoleSelector | None = Field(
        default=None,
        description='"promoted": only the primary; "unpromoted": only replicas; default: all',
    )

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: object) -> object:
        # Checked before pydantic's own message, which would repeat the value as given (it may
        # hold control characters) and not say what the words mean.
        if value is not None and value not in ROLE_SELECTORS:
            raise ValueError(
                'must be "promoted" (only the primary of a promotable clone) or "unpromoted" '
                "(only its replicas); leave role out to take every running instance"
            )
        return value


class BackendSpec(_Strict):
    name: str = Field(min_length=1)
    policy: Policy = "roundrobin"
    servers: tuple[ServerSpec, ...] = ()
    clone: CloneSpec | None = None
    check: CheckSpec = CheckSpec()
    passive: PassiveSpec = PassiveSpec()
    cookie: str | None = None
    slowstart: float = Field(default=0.0, ge=0)
    retries: int = Field(default=3, ge=0, description="other servers tried when a connect fails")
    hash_balance_factor: float = Field(default=1.25, ge=1.0)

    @model_validator(mode="after")
    def _unique_servers(self) -> BackendSpec:
        if not self.servers and self.clone is None:
            raise ValueError(
                f"backend {self.name!r} has no servers; list some or follow a clone "
                "(clone = { resource = ..., port = ..., cluster_config = ... })"
            )
        names = [s.name for s in self.servers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"server names repeat: {sorted(dup)}; give each server its own name")
        return self


class FrontendSpec(_Strict):
    name: str = Field(min_length=1)
    bind: str
    mode: Literal["tcp", "http"] = "http"
    backend: str
    forwarded: bool = Field(default=True, description="add X-Forwarded-For and Forwarded (http)")
    maxconn: int = Field(
        default=10000, ge=1, le=1_000_000, description="client connections served at once"
    )
    maxqueue: int = Field(
        default=1024, ge=0, le=1_000_000, description="connections held above maxconn"
    )

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        split_address(value, listen=True)
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.bind, listen=True)


class Timeouts(_Strict):
    client_header: float = Field(default=10.0, gt=0, description="whole request head must arrive")
    client_idle: float = Field(default=60.0, gt=0, description="keep-alive client with no request")
    connect: float = Field(default=3.0, gt=0)
    response: float = Field(default=60.0, gt=0, description="upstream silent while a request waits")
    tcp_idle: float = Field(default=600.0, gt=0, description="tcp mode: no bytes either way")
    sweep: float = Field(default=0.5, gt=0, description="how often deadlines are checked")
    queue: float = Field(default=5.0, gt=0, description="longest wait for a maxconn slot")
    hard_stop: float = Field(
        default=2.0,
        gt=0,
        description="after SIGTERM and the frontends' close, longest wait for the rest "
        "(HAProxy's hard-stop-after)",
    )


class Limits(_Strict):
    max_header_bytes: int = Field(default=16384, ge=1024)
    max_pipeline: int = Field(default=32, ge=1, description="queued requests before reading pauses")
    pool_idle_per_server: int = Field(default=64, ge=0)


# "sha256:" and the hex digest of the token (see `token_digest`).
TOKEN_HASH = re.compile(r"sha256:[0-9a-f]{64}")


class ApiSpec(_Strict):
    bind: str | None = Field(default=None, description="runtime REST API, e.g. 127.0.0.1:9900")
    token_hash: str | None = Field(
        default=None, description='"sha256:<hex>" of the API token (`hakeeper lb token`)'
    )
    host_names: tuple[str, ...] = Field(
        default=(), description="more names the API may be reached by (the Host header)"
    )

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value, listen=True)
        return value

    @field_validator("token_hash")
    @classmethod
    def _token_hash(cls, value: str | None) -> str | None:
        if value is not None and not TOKEN_HASH.fullmatch(value):
            raise ValueError(
                'must be "sha256:" and 64 lowercase hex digits; make one with `hakeeper lb token`'
            )
        return value

    @field_validator("host_names")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]+\]", name):
                raise ValueError(f"{name!r} is not a host name (letters, digits, '.', '-')")
        return tuple(n.lower() for n in value)

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> ApiSpec:
        if self.bind is not None and self.token_hash is None:
            host, _ = split_address(self.bind, listen=True)
            if not is_loopback(host):
                raise ValueError(
                    f"bind {self.bind!r} is beyond loopback: anyone who reaches it could change "
                    "the balancer; set token_hash (make one with `hakeeper lb token`) or bind "
                    "to 127.0.0.1"
                )
        return self

    @property
    def host_port(self) -> tuple[str, int] | None:
        return split_address(self.bind, listen=True) if self.bind is not None else None


class BalancerConfig(_Strict):
    frontend: tuple[FrontendSpec, ...] = Field(min_length=1)
    backend: tuple[BackendSpec, ...] = Field(min_length=1)
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()
    api: ApiSpec = ApiSpec()

    @model_validator(mode="after")
    def _references(self) -> BalancerConfig:
        backends = {b.name for b in self.backend}
        if len(backends) != len(self.backend):
            raise ValueError("backend names repeat; give each backend its own name")
        for fe in self.frontend:
            if fe.backend not in backends:
                raise ValueError(
                    f"frontend {fe.name!r} names backend {fe.backend!r}, which is not defined; "
                    f"define it or use one of {sorted(backends)}"
                )
            if fe.mode == "tcp" and self.backend_named(fe.backend).cookie is not None:
                raise ValueError(f"frontend {fe.name!r} is tcp: cookie stickiness needs mode http")
        return self

    def backend_named(self, name: str) -> BackendSpec:
        return next(b for b in self.backend if b.name == name)


def insecure_settings(cfg: BalancerConfig) -> list[str]:
    """What `hakeeper check` reports about a balancer file, each problem with its fix."""
    found: list[str] = []
    api = cfg.api
    if api.bind is None:
        return found
    host, _ = split_address(api.bind, listen=True)
    if not is_loopback(host):
        found.append(
            f"api: bind {api.bind} is beyond loopback: other hosts reach the runtime API and "
            "only its token stands between them and your servers (fix: bind = "
            '"127.0.0.1:9900" and run `hakeeper lb` on this host, or firewall the port to the '
            "admin hosts)"
        )
    if api.token_hash is None:
        found.append(
            "api: no token_hash: the API refuses every change (drain, weight, reload) and "
            "answers reads to any local user (fix: `hakeeper lb token --file "
            "/etc/hakeeper/lb-token` and put the token_hash line it prints under [api])"
        )
    return found


def parse_config(data: dict[str, Any], source: str) -> BalancerConfig:
    try:
        return BalancerConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"{source}: {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


def load_config(path: Path | str) -> BalancerConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path))
