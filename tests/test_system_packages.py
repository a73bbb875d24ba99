"""`make test` installs every program the tests start, `make demo` every one the demo starts.

The programs are found in the code, not listed by hand: `require_binary`/`require_file`/
`require_ocf_agent` calls, `shutil.which` look-ups and the literal argv of every process the
tests (and the demo's modules) start. Each must be in `tests/conftest.py:SYSTEM_PROGRAMS`
with its Debian package, and that package in the Makefile's list.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeeper.cli.main import app
from tests.conftest import BUILT_IN_PROGRAMS, ESSENTIAL_PACKAGES, SYSTEM_PROGRAMS

ROOT = Path(__file__).resolve().parent.parent
# The modules `make demo` runs that could start an external program.
DEMO_MODULES = ("cli/demo.py", "lab/loopback.py", "lab/fence_agent.py", "lab/http_app.py")
# Calls whose first argument is an argv (a list whose first item is the program); the
# generic names count only as methods (subprocess.run, lab.exec), not as local helpers.
ARGV_CALLS = frozenset({"Popen", "check_call", "check_output", "create_subprocess_exec"})
ARGV_METHODS = frozenset({"run", "call", "exec"})
OCF_ROOT = "/usr/lib/ocf/resource.d"


def makefile_list(name: str) -> set[str]:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}\s*:?=(.*)$", text, re.MULTILINE)
    assert match, f"the Makefile defines no {name}"
    return set(match.group(1).split())


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _argv_program(node: ast.expr) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        program = _text(node.elts[0])
        if program and not program.startswith("-"):
            return program
    return None


def programs_in(path: Path) -> Iterator[tuple[str, int]]:
    """(program, line) for every external program the module looks up or starts."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and ("argv" in t.id or "cmd" in t.id) for t in node.targets
        ):
            program = _argv_program(node.value)
            if program:
                yield program, node.lineno
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name, first = _name(node.func), node.args[0]
        if name in ("require_binary", "which") and _text(first):
            yield str(_text(first)), node.lineno
        elif name == "require_ocf_agent" and len(node.args) == 2:
            provider, kind = (_text(a) for a in node.args)
            if provider and kind:
                yield f"{OCF_ROOT}/{provider}/{kind}", node.lineno
        elif name in ARGV_CALLS or (name in ARGV_METHODS and isinstance(node.func, ast.Attribute)):
            # lab.exec(host, argv) takes the argv second; create_subprocess_exec(program, ...)
            # takes the program itself.
            for arg in node.args[:2]:
                program = _argv_program(arg)
                if program:
                    yield program, node.lineno
            if name == "create_subprocess_exec" and _text(first):
                yield str(_text(first)), node.lineno


def hakeeper_commands() -> frozenset[str]:
    """``hakeeper``'s own subcommands: an argv of the CLI app in a test starts with one."""
    groups = {g.name for g in app.registered_groups}
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    return frozenset((groups | commands) - {None, ""})


def found(paths: list[Path]) -> dict[str, str]:
    """program -> where it is first used, over ``paths``; built-in programs left out."""
    built_in = BUILT_IN_PROGRAMS | hakeeper_commands()
    seen: dict[str, str] = {}
    for path in paths:
        for program, line in programs_in(path):
            if Path(program).name not in built_in:
                seen.setdefault(program, f"{path.relative_to(ROOT)}:{line}")
    return seen


def test_programs_are_found_in_the_tests() -> None:
    # The finder itself: these are started by today's tests in the three ways it knows.
    seen = found(sorted((ROOT / "tests").rglob("*.py")))
    assert {"etcd", "nginx", "fence_dummy", "ip", f"{OCF_ROOT}/heartbeat/Dummy"} <= set(seen)


def test_every_program_the_tests_start_has_its_package_in_make_test() -> None:
    deb = makefile_list("DEB_PKGS")
    problems = []
    for program, where in sorted(found(sorted((ROOT / "tests").rglob("*.py"))).items()):
        package = SYSTEM_PROGRAMS.get(program)
        if package is None:
            problems.append(
                f"{where} starts {program!r}, which tests/conftest.py:SYSTEM_PROGRAMS does not "
                "name: add it with its Debian package"
            )
        elif package not in deb | ESSENTIAL_PACKAGES:
            problems.append(
                f"{where} starts {program!r} from Debian package {package!r}, which the "
                "Makefile's DEB_PKGS lacks: a fresh machine's `make test` would not install it"
            )
    assert not problems, "\n".join(problems)


def test_every_program_the_demo_starts_has_its_package_in_make_demo() -> None:
    demo = makefile_list("DEMO_PKGS")
    modules = [ROOT / "src" / "hakeeper" / m for m in DEMO_MODULES]
    problems = [
        f"{where} starts {program!r} (package {SYSTEM_PROGRAMS.get(program, '?')}), not in "
        "the Makefile's DEMO_PKGS"
        for program, where in sorted(found(modules).items())
        if SYSTEM_PROGRAMS.get(program) not in demo
    ]
    assert not problems, "\n".join(problems)


def test_demo_packages_are_installed_by_make_test_too() -> None:
    # The tests run the demo (tests/cli/test_demo.py).
    assert makefile_list("DEMO_PKGS") <= makefile_list("DEB_PKGS")


def _dpkg_owner(path: str) -> str | None:
    # usrmerge: dpkg knows /bin/ip where the program is found as /usr/sbin/ip.
    real = os.path.realpath(path)
    candidates = {path, real, re.sub(r"^/usr(?=/s?bin/)", "", real)}
    candidates |= {f"/bin/{Path(real).name}", f"/sbin/{Path(real).name}"}
    for candidate in sorted(candidates):
        done = subprocess.run(
            ["dpkg-query", "-S", "--", candidate], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0]
    return None


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
@pytest.mark.parametrize("program", sorted(SYSTEM_PROGRAMS))
def test_the_package_named_for_each_installed_program_is_the_one_that_ships_it(
    program: str,
) -> None:
    path = program if program.startswith("/") else shutil.which(program)
    if path is None or not Path(path).exists():
        pytest.skip(f"{program} not installed here: its package cannot be checked")
    assert _dpkg_owner(path) == SYSTEM_PROGRAMS[program]
