"""The ``[api]`` section: where each node's REST API listens and who may use it.

Read by `hakeeper.api` when ``hakeeper agent`` starts; the access keys (tokens,
client_certs, anonymous_read, host_names) then follow the config each node adopts
(`hakeeper.api.live_access`), the listener's keys need an agent restart.
Tokens are stored as hashes only (``hakeeper api token create`` makes one and prints the
line to paste); a client certificate's CN is a name whose role ``client_certs`` gives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hakeeper.model.address import split_address

ApiRole = Literal["read", "operate", "admin"]
#: What each role may do, lowest first: a role may do everything of the roles before it.
API_ROLES: tuple[ApiRole, ...] = ("read", "operate", "admin")
DEFAULT_API_LISTEN = "127.0.0.1:7440"

_HASH_PREFIXES = ("sha256:",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ApiToken(_Section):
    """One bearer token: its SHA-256 (``sha256:<64 hex>``), its role, an optional expiry."""

    hash: str
    role: ApiRole
    expires: datetime | None = None

    @field_validator("hash")
    @classmethod
    def _hash_form(cls, value: str) -> str:
        digest = value.removeprefix("sha256:")
        if not value.startswith(_HASH_PREFIXES) or len(digest) != 64 or not _is_hex(digest):
            raise ValueError(
                'give "sha256:<64 hex digits>" (`hakeeper api token create --name N --role R` '
                "prints the line to paste); never the token itself"
            )
        return value

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A TOML date-time without an offset is read as UTC, so every node agrees.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _absolute(value: str | None) -> str | None:
    if value is not None and (not value.startswith("/") or any(ord(c) < 32 for c in value)):
        raise ValueError("give an absolute path without control characters")
    return value


class ApiSection(_Section):
    enabled: bool = True
    #: ``host:port``; loopback unless the operator says otherwise.
    listen: str = DEFAULT_API_LISTEN
    #: Per-node ``host:port`` (several nodes on one host, or each on its own address).
    listen_on: dict[str, str] = {}
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: Clients presenting a certificate signed by this CA are named by its CN.
    client_ca_file: str | None = None
    client_certs: dict[str, ApiRole] = {}
    tokens: dict[str, ApiToken] = {}
    #: Reads (status, events, health) without a credential.
    anonymous_read: bool = False
    #: Extra names the API may be called by (the Host header), besides its own addresses.
    host_names: list[str] = []
    max_connections: int = Field(default=256, ge=1, le=10_000)
    max_streams: int = Field(default=200, ge=1, le=10_000)

    @field_validator("tls_cert_file", "tls_key_file", "client_ca_file")
    @classmethod
    def _files(cls, value: str | None) -> str | None:
        return _absolute(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_address(value, listen=True)
        return value

    @field_validator("listen_on")
    @classmethod
    def _listen_on(cls, value: dict[str, str]) -> dict[str, str]:
        for address in value.values():
            split_address(address, listen=True)
        return value

    @model_validator(mode="after")
    def _pairs(self) -> ApiSection:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("client_ca_file needs TLS: set tls_cert_file and tls_key_file")
        if self.client_certs and self.client_ca_file is None:
            raise ValueError("client_certs needs client_ca_file (the CA that signs them)")
        return self

    def listen_for(self, node: str) -> str:
        return self.listen_on.get(node, self.listen)

    def expired(self, name: str, now: datetime) -> bool:
        expires = self.tokens[name].expires
        return expires is not None and now >= expires
