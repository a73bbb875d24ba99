"""The config a drill runs a backup in: this machine's loopback, nothing that could touch the
real machines or the real network, nothing written into the real backup store."""

from __future__ import annotations

from pathlib import Path

from hakeeper.cli.dr import scratch_config
from hakeeper.config.loader import file_from_text

PRODUCTION = """
[cluster]
name = "prod"
fencing = true

[coordination]
secret_file = "/etc/hakeeper/secret"

[nodes.db1]
address = "10.0.0.1"
[nodes.db2]
address = "10.0.0.2"

[fencing]
watchdog = "required"

[resources.ip]
agent = "vip"
params = { ip = "10.0.0.100", cidr = 24 }

[resources.app]
agent = "process"
params = { command = "/bin/sleep 100" }

[backup]
store = "/mnt/backups"
schedule = "1h"
drill = "7d"
"""


def test_the_scratch_config_keeps_the_drill_off_the_real_machines(tmp_path: Path) -> None:
    cf = file_from_text(scratch_config(PRODUCTION, "b1", tmp_path), "scratch")
    assert [n.address for n in cf.nodes.values()] == ["127.0.0.11", "127.0.0.12"]
    assert cf.cluster.fencing is False
    assert cf.fencing.watchdog == "off"
    assert cf.coordination.secret_file == str(tmp_path.resolve() / "secret")
    assert cf.resources["ip"].target_role == "stopped"
    assert cf.resources["app"].target_role == "started"
    assert cf.backup is not None
    assert cf.backup.store == str(tmp_path / "backups")
    assert cf.backup.schedule == cf.backup.drill == 3650 * 86400


def test_a_session_store_runs_on_loopback_on_free_ports_with_the_scratch_secret(
    tmp_path: Path,
) -> None:
    store = (
        '[resources.store]\nagent = "sessions"\nparams = { port = 11311, '
        'secret_file = "/etc/hakeeper/secret", nodes = { db1 = "10.0.0.1", db2 = "10.0.0.2" } }\n'
    )
    production = PRODUCTION.replace("[backup]", store + "\n[backup]")
    cf = file_from_text(scratch_config(production, "b1", tmp_path), "scratch")
    params = cf.resources["store"].params
    assert params["nodes"] == {"db1": "127.0.0.11", "db2": "127.0.0.12"}
    ports = {params["port"], params["peer_port"], cf.nodes["db1"].raft_port}
    assert len(ports) == 3
    assert 11311 not in ports
    assert params["secret_file"] == str(tmp_path.resolve() / "secret")
