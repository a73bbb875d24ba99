"""Pacemaker's SMTP alert agent (``alert_smtp.sh.sample``), run unchanged by hakeeper's agent
runner for a failover: a real mail client (Debian's msmtp, as the ``sendmail`` the sample
calls, through ``deploy/msmtp-sendmail``) delivers it to a real SMTP server on 127.0.0.1, and
the mail carries the subject and the ``CRM_alert_*`` lines the sample writes. The sample asks
the cluster's name with ``crm_attribute``: the node's tools (real executables and socket, the
store a fake) are first on the agent's PATH, as a node daemon's alert dispatcher puts them.

msmtp refuses the sample's ``-r SENDER`` (it knows only ``-f``): the adapter an operator
installs as ``/usr/local/sbin/sendmail`` passes it as ``-f``; here a symlink to it, in a
directory the test owns, is first on the agent's PATH (nothing under /usr is touched)."""

from __future__ import annotations

import asyncio
import email
import os
import threading
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from hakeeper.config.loader import spec_from_text
from hakeeper.lab.loopback import free_port_on
from hakeeper.model.events import FailoverFinished
from hakeeper.runtime.alert_agents import run_agent
from hakeeper.runtime.alert_env import agent_environment, notice_of
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.conftest import require_binary, require_file
from tests.fakes import LocalCoordinator
from tests.runtime.crm_tools.conftest import served_tools

SAMPLE = Path("/usr/share/pacemaker/alerts/alert_smtp.sh.sample")
ADAPTER = Path(__file__).resolve().parents[2] / "deploy" / "msmtp-sendmail"
SPEC = spec_from_text(
    '[cluster]\nname = "mailed"\n[nodes.n1]\naddress = "127.0.0.1"\n'
    '[nodes.n2]\naddress = "127.0.0.2"\n',
    "t",
)
WAIT = 30.0


class Mailbox:
    """What the SMTP server received: (envelope sender, recipients, the message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], Message]] = []
        self.arrived = threading.Event()  # the server runs in a thread of its own

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), message))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port_on(["127.0.0.1"])
    server = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=WAIT)
    server.start()
    try:
        yield mailbox, port
    finally:
        server.stop()


@pytest.fixture
async def tools_dir() -> AsyncIterator[Path]:
    async with served_tools(SPEC, ClusterStore(LocalCoordinator(), KeySpace("mailed")), "n1") as d:
        yield d


def mail_client(home: Path, port: int) -> Path:
    """A directory holding ``sendmail`` (msmtp through the adapter), and an msmtp account
    for the test's server in ``home``."""
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sendmail").symlink_to(ADAPTER)
    rc = home / ".msmtprc"
    rc.write_text(f"account default\nhost 127.0.0.1\nport {port}\nauth off\ntls off\ntimeout 20\n")
    rc.chmod(0o600)
    return bin_dir


def failover_alert(home: Path, bin_dir: Path, tools: Path | None = None) -> dict[str, str]:
    """The agent environment of a failover of db from n2 to n1 (revision 42), mailed to
    ops@example.org. The alert's params give msmtp its HOME; ``bin_dir`` comes first on the
    fixed PATH, as /usr/local/sbin does on a host where an operator installed the adapter."""
    event = FailoverFinished(1_700_000_000.5, "db", "n2", "n1", 9.25)
    notice = notice_of(event, 42, SPEC, "n1")
    assert notice is not None
    env = agent_environment(
        notice, recipient="ops@example.org", timestamp_format="%H:%M:%S",
        params={"HOME": str(home)}, tools_dir=str(tools or ""),
    )  # fmt: skip
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


async def test_pacemakers_smtp_sample_mails_a_failover_through_msmtp(
    tmp_path: Path, smtp_server: tuple[Mailbox, int], tools_dir: Path
) -> None:
    require_file(SAMPLE)
    require_binary("msmtp")
    mailbox, port = smtp_server
    bin_dir = mail_client(tmp_path, port)
    env = failover_alert(tmp_path, bin_dir, tools_dir)

    outcome = await run_agent(str(SAMPLE), env, timeout=WAIT)

    assert outcome.ok, outcome.reason
    # msmtp exits once the server took the mail, so it is here already (or never comes).
    assert await asyncio.to_thread(mailbox.arrived.wait, WAIT)
    [(sender, recipients, message)] = mailbox.mails
    host = os.uname().nodename
    assert (sender, recipients) == (f"hacluster@{host}", ["ops@example.org"])
    assert message["To"] == "ops@example.org"
    assert message["Subject"].endswith(
        ": Resource operation 'failover' for 'db' on 'n1': moved from n2 in 9.2s"
    )
    # "<timestamp> <cluster name>: ...": the sample's crm_attribute found the node's tools.
    assert message["Subject"].split(" ", 1)[1].startswith("mailed: Resource operation")
    body = str(message.get_payload())
    for line in (
        "CRM_alert_kind=resource",
        "CRM_alert_rsc=db",
        "CRM_alert_task=failover",
        "CRM_alert_node=n1",
        "CRM_alert_node_sequence=42",
        "CRM_alert_desc=moved from n2 in 9.2s",
    ):
        assert line in body.splitlines(), (line, body)


async def test_msmtp_alone_refuses_the_samples_dash_r_which_the_adapter_is_for(
    tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    """Why ``deploy/msmtp-sendmail`` exists: msmtp as ``sendmail`` (a plain symlink, as
    Debian's msmtp-mta installs it) fails on the sample's ``-r`` and sends nothing."""
    require_file(SAMPLE)
    require_binary("msmtp")
    mailbox, port = smtp_server
    bin_dir = mail_client(tmp_path, port)
    (bin_dir / "sendmail").unlink()
    (bin_dir / "sendmail").symlink_to("/usr/bin/msmtp")
    env = failover_alert(tmp_path, bin_dir)

    outcome = await run_agent(str(SAMPLE), env, timeout=WAIT)

    assert not outcome.ok
    assert "invalid option" in outcome.reason
    assert mailbox.mails == []
