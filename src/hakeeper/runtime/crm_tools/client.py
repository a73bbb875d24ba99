"""The tools' side of the wire: one signed request to the local daemon, synchronously."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Protocol

from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import ConfigError
from hakeeper.runtime.crm_tools.protocol import (
    IO_TIMEOUT,
    MAX_LINE,
    ProtocolError,
    ToolAnswer,
    ToolRequest,
    decode_line,
    line,
    request_mac,
)


class ToolUnavailable(Exception):
    """The daemon could not be asked (not running, wrong secret, garbled answer)."""


class ToolClient(Protocol):
    def ask(self, request: ToolRequest) -> ToolAnswer: ...


class SocketClient:
    def __init__(self, socket_path: Path, secret_file: Path) -> None:
        self.socket_path = socket_path
        self.secret_file = secret_file

    def ask(self, request: ToolRequest) -> ToolAnswer:
        try:
            secret = read_secret_file(self.secret_file).current
        except ConfigError as exc:
            raise ToolUnavailable(str(exc)) from None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(IO_TIMEOUT)
                sock.connect(str(self.socket_path))
                with sock.makefile("rb") as reader:
                    hello = decode_line(reader.readline(MAX_LINE + 1))
                    nonce = hello.get("nonce") if isinstance(hello, dict) else None
                    if not isinstance(nonce, str):
                        raise ProtocolError("no nonce from the daemon")
                    mac = request_mac(secret, nonce, request)
                    sock.sendall(line({"mac": mac, "request": request.to_wire()}))
                    return ToolAnswer.from_wire(decode_line(reader.readline(MAX_LINE + 1)))
        except (OSError, ProtocolError) as exc:
            raise ToolUnavailable(
                f"cannot reach hakeeper's node daemon at {self.socket_path} ({exc}); "
                "is `hakeeper agent` running on this node?"
            ) from None
