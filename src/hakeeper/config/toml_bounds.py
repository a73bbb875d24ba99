"""Bounds checked on a cluster file's text before `tomllib` parses it.

A config may come from the key space, written by whoever could reach it, so its parse must
cost little whatever the bytes. `tomllib` has two costs that grow faster than the text:

- nesting (``a = [[[[...]]]]``, ``{b = {b = ...}}``) recurses once per level and raises
  `RecursionError` from about 330 levels on;
- a dotted key or table header (``x.x.x....x = 1``) costs memory quadratic in its parts:
  40 kB of ``x.`` takes 1.5 GB and 9 s.

A real cluster file nests about five levels and is a few kB, so the bounds here are far
above any real one: 1 MiB of text, and 16 levels whether by dots in a key or by brackets.
The scan skips strings and comments (dots in ``"10.0.0.1"`` are no nesting); a float's or a
time's single dot is no key part either, since every ``=``, ``,``, bracket or line end starts
the count again.
"""

from __future__ import annotations

MAX_CONFIG_BYTES = 1024 * 1024
MAX_NESTING = 16

_RESETS = frozenset("=,[]{}\n")


def _string_end(text: str, start: int) -> int:
    """The index just past the string that opens at ``start`` (or the end of ``text``)."""
    quote = text[start]
    escapes = quote == '"'
    if text.startswith(quote * 3, start):
        i = start + 3
        while i < len(text):
            if escapes and text[i] == "\\":
                i += 2
                continue
            if text.startswith(quote * 3, i):
                i += 3
                while i < len(text) and text[i] == quote:  # up to two quotes end the content
                    i += 1
                return i
            i += 1
        return i
    i = start + 1
    while i < len(text) and text[i] != "\n":
        if escapes and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def nesting_problem(text: str, limit: int = MAX_NESTING) -> str | None:
    """Why ``text`` nests too deep to be parsed safely, or None."""
    depth = 0
    parts = 1
    line = 1
    i = 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        if char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if char in _RESETS:
            parts = 1
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth = max(0, depth - 1)
            elif char == "\n":
                line += 1
        elif char == ".":
            parts += 1
        if depth > limit or parts > limit:
            return (
                f"line {line}: nests deeper than {limit} levels (by brackets or dotted key "
                "parts); a cluster file needs about five"
            )
        i += 1
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` must not be given to the TOML parser (size or nesting), or None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        return f"{size} bytes, over the bound of {MAX_CONFIG_BYTES} for a cluster file"
    return nesting_problem(text)
