"""PySyncObj, imported once, with its process-wide side effect undone.

``pysyncobj.tcp_connection`` imports ``pysyncobj/win_inet_pton.py``, which replaces
``socket.inet_ntop`` with a Windows-only version on every platform (its
``socket.inet_ntop = inet_ntop`` sits outside the ``os.name == 'nt'`` check). Any code in the
same process that formats an address afterwards (pyroute2 in the ``vip`` agent, for one)
then fails. Everything in hakeeper imports PySyncObj through this module.
"""

from __future__ import annotations

import _socket
import socket

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

socket.inet_ntop = _socket.inet_ntop

__all__ = ["FAIL_REASON", "SyncObj", "SyncObjConf", "SyncObjConsumer", "replicated"]
