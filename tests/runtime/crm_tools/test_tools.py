"""Each tool's options, output and exit codes, as Pacemaker 2.1's, against a fake daemon."""

from __future__ import annotations

from tests.runtime.crm_tools.conftest import FakeDaemon, call

PAF_ENV = {"OCF_RESOURCE_INSTANCE": "pgsqld"}


def test_crm_master_sets_the_local_promotion_score_for_ever_by_default(daemon: FakeDaemon) -> None:
    ran = call(daemon, "crm_master --quiet --update 1001", PAF_ENV)
    assert (ran.code, ran.out) == (0, "")
    assert daemon.attrs[("n1", "master-pgsqld", "forever")] == ("1001", False)


def test_crm_master_reads_another_node_s_score_quietly(daemon: FakeDaemon) -> None:
    daemon.attrs[("n2", "master-pgsqld", "forever")] = ("990", False)
    ran = call(daemon, "crm_master --quiet --get-value --node n2", PAF_ENV)
    assert (ran.code, ran.out) == (0, "990\n")


def test_crm_master_without_a_resource_is_a_usage_error(daemon: FakeDaemon) -> None:
    ran = call(daemon, "crm_master -v 5")
    assert ran.code == 64
    assert "OCF_RESOURCE_INSTANCE" in ran.err


def test_crm_attribute_promotion_defaults_to_reboot_and_strips_the_instance(
    daemon: FakeDaemon,
) -> None:
    assert call(daemon, "crm_attribute -p -v 5", {"OCF_RESOURCE_INSTANCE": "db:2"}).code == 0
    assert ("n1", "master-db", "reboot") in daemon.attrs
    ran = call(daemon, "crm_attribute --promotion=db -G")
    assert (ran.code, ran.out) == (0, "scope=status  name=master-db value=5\n")


def test_crm_attribute_query_of_a_missing_attribute_exits_105(daemon: FakeDaemon) -> None:
    ran = call(daemon, "crm_attribute -N n2 -n rack -G -q")
    assert (ran.code, ran.out) == (105, "")
    assert ran.err == "crm_attribute: Error performing operation: No such device or address\n"


def test_crm_attribute_with_a_node_defaults_to_the_permanent_scope(daemon: FakeDaemon) -> None:
    assert call(daemon, "crm_attribute -N n2 -n rack -v b").code == 0
    ran = call(daemon, "crm_attribute -N n2 -n rack -G")
    assert ran.out == "scope=nodes  name=rack value=b\n"
    assert call(daemon, "crm_attribute -N n2 -n rack -l reboot -G").code == 105


def test_crm_attribute_delete_of_an_absent_attribute_succeeds(daemon: FakeDaemon) -> None:
    assert call(daemon, "crm_attribute -N n1 -n nothing -D").code == 0


def test_crm_attribute_refuses_options_it_does_not_answer(daemon: FakeDaemon) -> None:
    ran = call(daemon, "crm_attribute -n x --type rsc_defaults -G")
    assert ran.code == 64
    ran = call(daemon, "crm_attribute --bogus")
    assert ran.code == 64
    assert "supports" in ran.err
    assert daemon.seen == []


def test_crm_attribute_without_node_lifetime_or_type_answers_a_cluster_property(
    daemon: FakeDaemon,
) -> None:
    """As alert_smtp.sh.sample asks: ``crm_attribute --query -n cluster-name -q``."""
    ran = call(daemon, "crm_attribute --query -n cluster-name -q")
    assert (ran.code, ran.out, ran.err) == (0, "c1\n", "")
    ran = call(daemon, "crm_attribute -G -n cluster-name")
    assert ran.out == "scope=crm_config  name=cluster-name value=c1\n"
    ran = call(daemon, "crm_attribute --type crm_config --name cluster-name --query")
    assert ran.out == "scope=crm_config  name=cluster-name value=c1\n"


def test_crm_attribute_unknown_cluster_property_exits_105(daemon: FakeDaemon) -> None:
    ran = call(daemon, "crm_attribute -G -n no-such-property")
    assert (ran.code, ran.out) == (105, "")
    assert ran.err == "crm_attribute: Error performing operation: No such device or address\n"


def test_crm_attribute_refuses_to_write_a_cluster_property(daemon: FakeDaemon) -> None:
    for command in ("crm_attribute -n cluster-name -v other", "crm_attribute -n cluster-name -D"):
        ran = call(daemon, command)
        assert ran.code == 3
        assert "read-only" in ran.err
        assert "[cluster]" in ran.err
    assert daemon.seen == []


def test_crm_node_answers_name_partition_and_list(daemon: FakeDaemon) -> None:
    assert call(daemon, "crm_node -n").out == "n1\n"
    assert call(daemon, "crm_node --partition").out == "n1 n2\n"
    assert call(daemon, "crm_node -l").out == "1 n1 member\n2 n2 member\n3 n3 lost\n"
    assert call(daemon, "crm_node -l -q").out == "n1\nn2\nn3\n"
    assert call(daemon, "crm_node -i").code == 64


def test_crm_resource_gets_a_meta_attribute_or_exits_105(daemon: FakeDaemon) -> None:
    daemon.meta["pgsqld"] = {"notify": "true"}
    ran = call(daemon, "crm_resource --resource pgsqld --meta --get-parameter notify")
    assert (ran.code, ran.out) == (0, "true\n")
    assert call(daemon, "crm_resource -r pgsqld --meta -g nothing").code == 105
    assert call(daemon, "crm_resource -r pgsqld -g notify").code == 64


def test_crm_resource_locates_running_instances(daemon: FakeDaemon) -> None:
    daemon.located = (("n1", "Promoted"), ("n2", ""))
    ran = call(daemon, "crm_resource --resource pgsqld --locate")
    assert ran.out == (
        "resource pgsqld is running on: n1 Promoted\nresource pgsqld is running on: n2\n"
    )
    daemon.located = ()
    ran = call(daemon, "crm_resource -r pgsqld -W")
    assert (ran.code, ran.err) == (0, "resource pgsqld is NOT running\n")


def test_attrd_updater_private_update_query_delete_as_paf_calls_it(daemon: FakeDaemon) -> None:
    base = "attrd_updater --private --lifetime reboot --name lsn_location-pgsqld"
    assert call(daemon, f"{base} --update 0/3000060").code == 0
    assert daemon.attrs[("n1", "lsn_location-pgsqld", "reboot")] == ("0/3000060", True)
    ran = call(daemon, f"{base} --query --node n1")
    assert ran.out == 'name="lsn_location-pgsqld" host="n1" value="0/3000060"\n'
    assert call(daemon, f"{base} --delete").code == 0
    ran = call(daemon, f"{base} --query")
    assert (ran.code, ran.out) == (105, "")


def test_a_daemon_that_cannot_be_reached_gives_exit_102_and_the_fix(daemon: FakeDaemon) -> None:
    daemon.down = True
    ran = call(daemon, "crm_node -n")
    assert ran.code == 102
    assert "connection refused" in ran.err
