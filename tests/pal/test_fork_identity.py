"""The PAL in a forked child, forked by Python or below it (where no fork hook runs): the
child leaves the parent's registry alone, and descriptor identity (kcmp) is asked of the
child's own descriptors."""

from __future__ import annotations

import contextlib
import ctypes
import os

import pytest

from pylibos import pal

from ._pal_support import in_a_child, is_open


def _libc_fork() -> int:
    # A fork made below Python (a C library, ctypes, cffi): Python's at-fork hooks do not
    # run.  PyDLL keeps the GIL across the call, so the child has it.
    fork = ctypes.PyDLL(None).fork
    fork.restype = ctypes.c_int
    return int(fork())


@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_child_forked_below_python_closing_an_eventfd_leaves_the_parents_working(
    kind: str,
) -> None:
    """A child forked without Python's hooks (a pid kept by a fork hook would still be
    the parent's) closes an eventfd: it must not unregister it from the registry's epoll,
    which the parent shares, or the parent's handle fails as if the host swapped it."""
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        number = handle._fd

        def work() -> int:
            host.close(handle)
            return 0

        assert in_a_child(work, _libc_fork) == 0
        try:
            host.write(handle, pal.EVENT_TOKEN)
            failure = None
        except pal.PalError as exc:
            failure = str(exc)
        host.close(handle)
        if failure is not None:
            os.close(number)  # the failed handle let its number go: ours to clean up
        assert failure is None, f"the child's close broke the parent's eventfd: {failure}"


@pytest.mark.parametrize("fork", ["os.fork", "libc fork"])
@pytest.mark.parametrize("kind", ["direct", "sgx"])
def test_in_a_forked_child_a_swapped_eventfd_is_seen_and_left_alone(kind: str, fork: str) -> None:
    """In a child (os.fork, or a fork below Python), the host swaps the child's copy of
    an eventfd for a pipe.  The identity check asks about the child's descriptors (a
    kcmp naming the pid the registry was made in would find the parent's eventfd): the
    child's PAL neither writes into the pipe nor closes it."""
    with pal.open_host(kind) as host:
        handle = host.stream_open("eventfd:", nonblocking=True)
        number = handle._fd

        def work() -> int:
            r, w = os.pipe()
            os.dup2(w, number, inheritable=False)  # the host swaps the child's copy
            os.close(w)
            os.set_blocking(r, False)
            with contextlib.suppress(pal.PalError):
                host.write(handle, pal.EVENT_TOKEN)
            try:
                leaked = os.read(r, 64)
            except BlockingIOError:
                leaked = b""
            host.close(handle)
            closed_other = not is_open(number)
            return (1 if leaked else 0) | (2 if closed_other else 0)

        status = in_a_child(work, os.fork if fork == "os.fork" else _libc_fork)
        host.close(handle)
        assert status == 0, (
            "in a forked child the PAL acted on a descriptor the host swapped: "
            + ("it wrote into the pipe; " if status & 1 else "")
            + ("it closed the pipe" if status & 2 else "")
        )
