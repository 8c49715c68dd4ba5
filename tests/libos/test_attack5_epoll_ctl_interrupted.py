"""A Ctrl-C at each line of an epoll's ``register`` and ``unregister`` (the main thread's
epoll: asyncio's selector under ``pylibos run``).

Whatever line is hit, once the epoll is closed nothing it made may stay open on the
host: no handle over a registered descriptor, no edge watch.

Before the fix (failed on 777d49b):
``register`` opens the handle over the descriptor, then enters the
``try`` whose ``finally`` closes it if it was not added: a Ctrl-C in between (the
handler runs as the call returns) leaves the handle open and in no entry; so does one
between ``added = True`` and the entry's store (the ``finally`` then skips the close).
``unregister`` pops the entry, then tests it, then enters the ``try`` whose
``finally`` closes its handle: a Ctrl-C in between leaves the handle open (and, for an
edge-triggered entry, the host's edge watch still watching the descriptor)."""

from __future__ import annotations

import functools
import inspect
import select
import signal
import socket
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from libos_support import interrupted
from pylibos.libos import LibOS
from pylibos.libos._interest import EpollInstance
from pylibos.pal import _interrupts, open_host

MAIN = threading.main_thread().ident


def _with_lines(code: CodeType) -> set[int]:
    """Lines opening a ``with`` block: their exit is given the line again, at a step
    where the interpreter runs no signal handler (not a place a Ctrl-C can land)."""
    lines, first = inspect.getsourcelines(code)
    return {first + i for i, line in enumerate(lines) if line.lstrip().startswith("with ")}


def _interrupt_at_line(
    code: CodeType, n: int, fired: list[int]
) -> Callable[[FrameType, str, Any], Any]:
    count = 0
    skip = _with_lines(code)

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line" and threading.get_ident() == MAIN and frame.f_lineno not in skip:
            count += 1
            if count == n:
                fired.append(frame.f_lineno)
                _interrupts._on_sigint(signal.SIGINT, frame)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return tracer


def _ctl_cut_short(op: str, mask: int, n: int) -> tuple[int | None, list[str]]:
    host = open_host("direct")
    libos = LibOS(host, "eventfd")
    a, b = socket.socketpair()
    fired: list[int] = []
    try:
        before = set(host.open_handles())
        ep = libos.epoll()
        try:
            if op == "unregister":
                ep.register(a.fileno(), mask)
            work = functools.partial(
                getattr(ep, op), a.fileno(), *([mask] if op == "register" else [])
            )
            code = getattr(EpollInstance, op).__code__
            came = interrupted(work, _interrupt_at_line(code, n, fired))
            assert came == bool(fired), fired
        finally:
            ep.close()
        left = [f"{h.uri} fd {h._fd}" for h in set(host.open_handles()) - before]
    finally:
        libos.shutdown()
        host.shutdown()
        a.close()
        b.close()
    return (fired[0] if fired else None), left


@pytest.mark.parametrize(
    "mask", [select.EPOLLIN, select.EPOLLIN | select.EPOLLET], ids=["level", "edge"]
)
@pytest.mark.parametrize("op", ["register", "unregister"])
def test_an_epoll_ctl_cut_short_leaves_nothing_open_once_closed(op: str, mask: int) -> None:
    leaks: dict[int, list[str]] = {}
    n = 1
    while True:
        line, left = _ctl_cut_short(op, mask, n)
        if line is None:
            break
        if left:
            leaks[line] = left
        n += 1
    assert n > 3, "no interrupt landed"
    assert not leaks, f"handles left open once the epoll closed, by line: {leaks}"
