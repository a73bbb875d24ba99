"""What `hakeeper check` finds insecure in the ``[api]`` section."""

from __future__ import annotations

import ipaddress

from hakeeper.config.api_section import ApiSection
from hakeeper.model.address import split_address
from hakeeper.runtime.safety_checks import Finding


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def api_findings(api: ApiSection, nodes: list[str]) -> list[Finding]:
    if not api.enabled:
        return []
    found: list[Finding] = []
    wide = sorted(
        {w for w in (api.listen_for(n) for n in nodes) if not _loopback(split_address(w)[0])}
    )
    for where in wide:
        if api.anonymous_read:
            found.append(
                Finding(
                    "warning",
                    f"[api] anonymous_read = true while the API listens on {where}, beyond "
                    "loopback: anyone who reaches it reads the cluster's status and events",
                    "set anonymous_read = false under [api] and give readers a token "
                    "(hakeeper api token create --name NAME --role read)",
                )
            )
        if api.tls_cert_file is None:
            found.append(
                Finding(
                    "warning",
                    f"the API listens on {where} without TLS: tokens cross the network in clear",
                    "set tls_cert_file and tls_key_file under [api], or listen on 127.0.0.1",
                )
            )
    return found
