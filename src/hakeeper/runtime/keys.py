"""Where each piece of cluster state lives in the coordination key space.

Everything of one cluster sits under ``/hakeeper/<cluster>/`` (shared/DESIGN.md section 3).
This is the whole layout: the cluster store (`hakeeper.runtime.store`) and the low-level
modules it uses (membership, election, event log) build keys only from here, and a running
cluster's keys must keep reading the same, so a path changes only with a migration.
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
    def store_format(self) -> str:
        """The cluster store's format version (`hakeeper.model.wire_version`)."""
        return f"{self.root}format"

    @property
    def assignments(self) -> str:
        return f"{self.root}assignments/"

    def assignment(self, resource: str) -> str:
        return f"{self.assignments}{resource}"

    @property
    def status(self) -> str:
        return f"{self.root}status/"

    def instance_status(self, node: str, resource: str, instance: int) -> str:
        return f"{self.status}{node}/{resource}#{instance}"

    @property
    def failcounts(self) -> str:
        return f"{self.root}failcounts/"

    def failcount(self, node: str, resource: str) -> str:
        return f"{self.failcounts}{node}/{resource}"

    @property
    def attributes(self) -> str:
        return f"{self.root}attributes/"

    def attribute(self, node: str, lifetime: str, name: str) -> str:
        """A node attribute (``hakeeper.model.attributes``); ``lifetime`` reboot|forever."""
        return f"{self.attributes}{node}/{lifetime}/{name}"

    @property
    def notify_rounds(self) -> str:
        return f"{self.root}notify/rounds/"

    def notify_round(self, resource: str, round_id: str) -> str:
        return f"{self.notify_rounds}{resource}/{round_id}"

    def notify_acks(self, resource: str, round_id: str) -> str:
        return f"{self.root}notify/acks/{resource}/{round_id}/"

    @property
    def runtime(self) -> str:
        return f"{self.root}runtime/"

    @property
    def constraints(self) -> str:
        return f"{self.runtime}constraints/"

    def constraint(self, resource: str, node: str) -> str:
        """A move or ban of ``resource`` on ``node`` (``node`` empty: all of the resource's)."""
        return f"{self.constraints}{resource}/{node}"

    @property
    def node_flags(self) -> str:
        return f"{self.runtime}nodes/"

    def node_flag(self, node: str) -> str:
        return f"{self.node_flags}{node}"

    @property
    def fenced_marks(self) -> str:
        return f"{self.runtime}fenced/"

    def fenced(self, node: str) -> str:
        """The mark that ``node`` is certainly off (a fence device or the operator said so)."""
        return f"{self.fenced_marks}{node}"

    @property
    def leaving_nodes(self) -> str:
        return f"{self.runtime}leaving/"

    def leaving(self, node: str) -> str:
        return f"{self.leaving_nodes}{node}"

    @property
    def node_change(self) -> str:
        """The one membership change in flight (``hakeeper node add|remove|replace``)."""
        return f"{self.runtime}node-change"

    @property
    def target_roles(self) -> str:
        return f"{self.runtime}roles/"

    def target_role(self, resource: str) -> str:
        return f"{self.target_roles}{resource}"

    @property
    def config(self) -> str:
        return f"{self.root}config"

    @property
    def events(self) -> str:
        return f"{self.root}events/"

    @property
    def alert_cursor(self) -> str:
        """The revision of the event log up to which every alert has been delivered."""
        return f"{self.root}alerts/cursor"

    @property
    def jobs(self) -> str:
        return f"{self.root}jobs/"

    def job(self, name: str) -> str:
        """A periodic controller job's record (a scheduled backup, a drill)."""
        return f"{self.jobs}{name}"

    @property
    def identity(self) -> str:
        """The cluster's id, made once (backups name it, so two clusters of one name differ)."""
        return f"{self.root}identity"
