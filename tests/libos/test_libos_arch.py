"""The rule of the architecture: the LibOS reaches the host only through PAL handles.

It never opens, reads, writes, polls or closes a socket or a descriptor itself, and never
looks inside a handle.  From ``os`` and ``select`` it may take constants and harmless
helpers (``os.getpid``, ``os.strerror``, ``os.register_at_fork``: a hook into the
interpreter's own fork); nothing else that touches the host.

One descriptor number comes out of the PAL: ``Host.descriptor_number`` of an epoll's edge
watch, which the epoll shows the program as its ``fileno()`` (the program-visible object
is that host epoll).  With nothing here able to act on a number, knowing it is no access;
the call is allowed in ``_interest.py`` only, so no other module starts to rely on numbers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pylibos.libos

LIBOS_DIR = Path(pylibos.libos.__file__).parent
SOURCES = sorted(LIBOS_DIR.glob("*.py"))

FORBIDDEN_MODULES = {
    "socket",
    "fcntl",
    "ssl",
    "mmap",
    "subprocess",
    "selectors",
    "asyncio",
    "multiprocessing",
    "signal",
    "io",
    "_socket",
    "_thread",
}
ALLOWED_OS = {"getpid", "register_at_fork", "strerror"}
ALLOWED_SELECT_PREFIXES = ("EPOLL", "POLL")
HANDLE_INTERNALS = {
    "_sock",
    "_fd",
    "_tls",
    "_ready",
    "_failure",
    "_helper",
    "_owns_fd",
    "_epoll",
    "_watched",
}
NUMBER_USERS = {"descriptor_number": "_interest.py"}
# The thread-start hook replaces the interpreter's thread start and epoll class with the
# LibOS's, and puts them back: it names them, and calls an original only once uninstalled
# (the program's own native call).  That is the interpreter, not the host.
INTERPRETER_BRIDGE = {"_hook.py": {"import _thread", "import selectors", "select.epoll"}}


def _module_of(node: ast.ImportFrom) -> str:
    return "." * node.level + (node.module or "")


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []

    def say(node: ast.AST, what: str) -> None:
        found.append(f"{path.name}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    say(node, f"import {alias.name}")
                if top in ("os", "select") and alias.asname:
                    say(node, f"import {alias.name} as {alias.asname} (hides what is used)")
        elif isinstance(node, ast.ImportFrom):
            module = _module_of(node)
            top = module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                say(node, f"from {module} import ...")
            if top in ("os", "select"):
                for alias in node.names:
                    if not (alias.name in ALLOWED_OS or alias.name.isupper()):
                        say(node, f"from {module} import {alias.name}")
            if module.startswith("..pal.") or module.startswith("pylibos.pal."):
                say(node, f"from {module} import ...: only the public pylibos.pal API")
        elif isinstance(node, ast.Attribute):
            base = node.value
            name = base.id if isinstance(base, ast.Name) else None
            if name == "os" and node.attr not in ALLOWED_OS and not node.attr.isupper():
                say(node, f"os.{node.attr}")
            if name == "select" and not node.attr.startswith(ALLOWED_SELECT_PREFIXES):
                say(node, f"select.{node.attr}")
            if node.attr in HANDLE_INTERNALS:
                say(node, f".{node.attr}: looks inside a PAL handle")
            if node.attr in NUMBER_USERS and path.name != NUMBER_USERS[node.attr]:
                say(node, f".{node.attr}: only {NUMBER_USERS[node.attr]} may ask for it")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("open", "__import__", "eval", "exec"):
                say(node, f"{func.id}(...)")
    return found


def test_the_scan_sees_the_libos_sources() -> None:
    names = {path.name for path in SOURCES}
    assert {"_libos.py", "_event.py", "_epoll.py", "_ipc.py", "_async.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_libos_touches_the_host_only_through_pal_handles(path: Path) -> None:
    allowed = INTERPRETER_BRIDGE.get(path.name, set())
    assert [v for v in _violations(path) if v.split(": ", 1)[1] not in allowed] == []


_CAUGHT = [
    "import socket",
    "import fcntl",
    "from socket import socketpair",
    "x = os.read(fd, 1)",
    "os.write(fd, b'x')",
    "os.close(fd)",
    "os.eventfd(0)",
    "os.pipe()",
    "os.fstat(fd)",
    "from os import read",
    "p = select.poll()",
    "e = select.epoll()",
    "select.select([], [], [], 0)",
    "handle._sock.send(b'x')",
    "n = handle._fd",
    "from ..pal._host import _no_phase",
    "n = host.descriptor_number(handle)",
    "watch._epoll.poll(0)",
    "open('/dev/null')",
]
_ALLOWED = [  # constants and calls that touch no descriptor
    "x = select.EPOLLIN | select.POLLIN",
    "os.getpid()",
    "os.strerror(9)",
    "from os import SEEK_SET",
]


@pytest.mark.parametrize(
    ("source", "caught"), [*((s, True) for s in _CAUGHT), *((s, False) for s in _ALLOWED)]
)
def test_the_scan_catches_what_touches_the_host_and_allows_constants(
    source: str, caught: bool, tmp_path: Path
) -> None:
    path = tmp_path / "scanned.py"
    path.write_text(source + "\n")
    assert bool(_violations(path)) is caught, f"{'not caught' if caught else 'caught'}: {source}"
