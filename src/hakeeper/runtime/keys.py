"""Where each piece of cluster state lives in the coordination key space.

Everything of one cluster sits under ``/hakeeper/<cluster>/`` (shared/DESIGN.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.errors import ConfigError


@dataclass(frozen=True, slots=True)
class KeySpace:
    cluster: str

    def __post_init__(self) -> None:
        if not self.cluster or "/" in self.cluster or not self.cluster.isprintable():
            raise ConfigError(
                f"cluster name {self.cluster!r} must be non-empty, printable and without '/'"
            )

    @property
    def root(self) -> str:
        return f"/hakeeper/{self.cluster}/"

    @property
    def members(self) -> str:
        return f"{self.root}members/"

    def member(self, node: str) -> str:
        return f"{self.members}{node}"

    @property
    def controller(self) -> str:
        return f"{self.root}controller"

    @property
    def assignments(self) -> str:
        return f"{self.root}assignments/"

    def assignment(self, resource: str) -> str:
        return f"{self.assignments}{resource}"

    @property
    def status(self) -> str:
        return f"{self.root}status/"

    def node_status(self, node: str, resource: str) -> str:
        return f"{self.status}{node}/{resource}"

    @property
    def failcounts(self) -> str:
        return f"{self.root}failcounts/"

    def failcount(self, node: str, resource: str) -> str:
        return f"{self.failcounts}{node}/{resource}"

    @property
    def runtime(self) -> str:
        return f"{self.root}runtime/"

    def fenced(self, node: str) -> str:
        """The controller's mark that a fence device confirmed ``node`` off."""
        return f"{self.runtime}fenced/{node}"

    @property
    def events(self) -> str:
        return f"{self.root}events/"
