"""Every lab runs with a cluster secret of its own, as a real cluster must."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import ConfigError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.lab.raft_cluster import RaftCluster


def test_a_lab_makes_its_own_secret_of_mode_0600_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = lab_secret_file(Path("lab"))

    assert path == tmp_path / "lab" / "secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(read_secret_file(path).accepted) == 1


def test_a_lab_restarted_in_its_directory_keeps_its_secret(tmp_path: Path) -> None:
    first = read_secret_file(lab_secret_file(tmp_path)).current

    assert read_secret_file(lab_secret_file(tmp_path)).current == first


def test_a_lab_refuses_a_secret_that_others_can_read(tmp_path: Path) -> None:
    os.chmod(lab_secret_file(tmp_path), 0o644)

    with pytest.raises(ConfigError, match="chmod 600"):
        lab_secret_file(tmp_path)


def test_a_loopback_cluster_file_names_the_labs_secret(tmp_path: Path) -> None:
    # Made, not started: the cluster file is written by the constructor.
    cluster = LoopbackCluster(tmp_path, "")

    assert cluster.spec.coordination.secret_file == str(tmp_path / "secret")
    assert cluster.secret_file == tmp_path / "secret"


def test_a_raft_cluster_without_a_secret_given_makes_its_own(tmp_path: Path) -> None:
    # Made, not started: members start in `start()`.
    cluster = RaftCluster(3, base_dir=tmp_path)

    assert cluster.secret_file == tmp_path / "secret"
    read_secret_file(cluster.secret_file)
