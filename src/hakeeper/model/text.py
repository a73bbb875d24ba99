"""Control characters in names and parameters: what the config refuses and agents re-check.

A value that reaches a fence agent's stdin (``key=value`` lines), a resource agent's
environment or argv, or a systemd unit name must be one line of printable text: a newline in
a fence parameter would add a line of its own (``p1\\naction=on`` turns an ``off`` into an
``on``), a NUL cannot be passed to ``execve`` at all. Every character below U+0020 and U+007F
(DEL) is refused, with the key named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

_NAMED = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL byte", "\t": "a tab"}


def control_problem(text: str) -> str | None:
    """``"contains a newline"`` (or the first other control character), or None if clean."""
    for char in text:
        if ord(char) < 0x20 or char == "\x7f":
            return f"contains {_NAMED.get(char, f'the control character U+{ord(char):04X}')}"
    return None


def has_control(text: str) -> bool:
    return control_problem(text) is not None


def key_text(key: object) -> str:
    """A key as it appears in a path; quoted (escaped) when it holds control characters."""
    text = str(key)
    return json.dumps(text) if control_problem(text) else text


def control_paths(where: str, value: object) -> Iterator[tuple[str, str]]:
    """``(path, problem)`` for every string in ``value`` holding a control character: dict
    keys and values, list items, nested, e.g. ``("params.passwd", "contains a newline")``."""
    if isinstance(value, str):
        problem = control_problem(value)
        if problem:
            yield where, problem
    elif isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}.{key_text(key)}"
            yield from control_paths(path, str(key))
            yield from control_paths(path, item)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from control_paths(f"{where}[{i}]", item)
