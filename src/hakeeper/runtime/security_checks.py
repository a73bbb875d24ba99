"""What `hakeeper check` finds insecure on this host: the secret, the state, etcd's transport,
the alerts' agents and webhook keys.

Rule 6 of shared/DESIGN.md section 4: secrets live in files of mode 0600, nothing others can
read holds cluster state, and the engine's traffic is authenticated. Each finding names the
problem and its fix as a command that runs as printed (paths shell-quoted), or, where the
fix is an edit of the cluster file, the lines to write.

These read local files only; they never contact the cluster.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from hakeeper.config.file_modes import open_entries
from hakeeper.config.secret_file import mode_problem, read_secret_file
from hakeeper.coord.etcd_security import insecure_settings
from hakeeper.errors import ConfigError
from hakeeper.fencing.device import is_secret_param
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.safety_checks import Finding

DEFAULT_STATE_ROOT = Path("/var/lib/hakeeper")
#: Paths named in one finding about a state dir (the count says how many more).
SHOWN_PATHS = 5


def _new_secret(path: Path) -> str:
    quoted, folder = shlex.quote(str(path)), shlex.quote(str(path.parent))
    return (
        f"(umask 077 && mkdir -p {folder} && head -c 32 /dev/urandom | base64 > {quoted})"
        "  # then copy the same file to every node"
    )


def _private_file(path: Path, what: str, missing_fix: str) -> list[Finding]:
    """A file holding a secret: missing, unreadable, open to others, or owned by another."""
    quoted = shlex.quote(str(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        return [Finding("error", f"{what} {path} does not exist", missing_fix)]
    except OSError as exc:
        return [
            Finding(
                "error",
                f"{what} {path} cannot be read here ({exc.strerror})",
                "sudo hakeeper check  # as the user the agent runs as",
            )
        ]
    problem = mode_problem(path, st)
    if problem is None:
        return []
    if not stat.S_ISREG(st.st_mode):
        fix = "point the setting at a regular file of mode 0600 (this is not one)"
    elif st.st_mode & 0o077:
        fix = f"chmod 600 {quoted}"
    else:
        # Another owner, mode fine: the agent's user (root) may well own it; this check
        # simply runs as someone else. Never advise giving the secret to this user.
        return [
            Finding(
                "warning",
                f"{what} {path} belongs to uid {st.st_uid}; checked as uid {os.geteuid()}, "
                "so it was not read here",
                "sudo hakeeper check  # as the user the agent runs as",
            )
        ]
    return [Finding("error", f"{what}: {problem}", fix)]


def secret_findings(spec: ClusterSpec) -> list[Finding]:
    """The cluster secret: present, readable, 0600, well-formed."""
    path = Path(spec.coordination.secret_file)
    found = _private_file(path, "the cluster secret", _new_secret(path))
    if found:
        return found
    try:
        read_secret_file(path)
    except ConfigError as exc:
        return [Finding("error", f"the cluster secret: {exc}", _new_secret(path))]
    return []


def state_findings(state_root: Path) -> list[Finding]:
    """The agents' state under ``state_root`` (journal, dump, last good config, logs)."""
    if not state_root.exists():
        return []
    loose = open_entries(state_root)
    if not loose:
        return []
    shown = ", ".join(str(e.path) for e in loose[:SHOWN_PATHS])
    more = f" and {len(loose) - SHOWN_PATHS} more" if len(loose) > SHOWN_PATHS else ""
    return [
        Finding(
            "error",
            f"group or others can read cluster state under {state_root} (the Raft journal "
            f"holds the whole key space): {shown}{more}",
            f"chmod -R go-rwx {shlex.quote(str(state_root))}",
        )
    ]


def etcd_findings(spec: ClusterSpec) -> list[Finding]:
    """The etcd backend's own judgement of its settings (`etcd_security.insecure_settings`:
    plain HTTP beyond loopback, no client certificate or user for a remote etcd, a key or
    password file others can read), each an error with the fix it names."""
    return [Finding("error", *_what_and_fix(text)) for text in insecure_settings(spec.coordination)]


def _what_and_fix(text: str) -> tuple[str, str]:
    what, found, fix = text.partition(" (fix: ")
    if found:
        return what, fix.removesuffix(")")
    what, _, fix = text.partition("; ")
    return what, fix


def fence_password_findings(spec: ClusterSpec) -> list[Finding]:
    """A fence password written in the cluster file is replicated with it (the key space,
    the journal, every node's last good config): fence-agents' ``passwd_script`` keeps it in
    a file of this host instead."""
    out = []
    for device in spec.fence_devices:
        inline = sorted(
            key for key in device.params if is_secret_param(key) and not key.endswith("_script")
        )
        for key in inline:
            out.append(
                Finding(
                    "warning",
                    f"fencing.devices.{device.name}.params.{key}: a password in the cluster "
                    "file is replicated to every node and into the key space",
                    f'params: passwd_script = "/etc/hakeeper/{device.name}-pass" (a 0700 '
                    "script that prints it), instead of " + key,
                )
            )
    return out


def alert_findings(spec: ClusterSpec) -> list[Finding]:
    """Each ``[[alerts]]`` entry as this node would run it: an agent that is not an
    executable file here, a webhook key that is missing or open, a webhook over plain HTTP
    beyond loopback (every node may be the controller that delivers)."""
    out: list[Finding] = []
    for alert in spec.alerts:
        where = f"alert {alert.id}"
        if alert.via == "agent":
            path = Path(alert.target)
            if not path.is_file() or not os.access(path, os.X_OK):
                sample = path.parent == Path("/usr/share/pacemaker/alerts")
                fix = (
                    "apt-get install pacemaker-common"
                    if sample
                    else f"install the agent at {path} (mode 0755) on every node"
                )
                out.append(Finding("error", f"{where}: {path} is not an executable file", fix))
            continue
        assert alert.secret_file is not None  # the schema requires one for a webhook
        key = Path(alert.secret_file)
        quoted = shlex.quote(str(key))
        new_key = f"(umask 077 && openssl rand -hex 32 > {quoted})  # then copy it to every node"
        found = _private_file(key, f"the webhook key of {where}", new_key)
        if not found:
            try:
                read_secret_file(key)
            except ConfigError as exc:
                found = [Finding("error", f"the webhook key of {where}: {exc}", new_key)]
        out += found
        host = alert.target.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if alert.target.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
            out.append(
                Finding(
                    "warning",
                    f"{where}: {alert.target} is plain HTTP: the cluster's events cross the "
                    "network unencrypted (the signature proves the sender, it hides nothing)",
                    "use an https:// URL",
                )
            )
    return out
