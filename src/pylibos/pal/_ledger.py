"""The host-call ledger and the one gate every system call of the PAL goes through.

Every operation that would leave an SGX enclave is counted in ``calls`` under the name
of the OCALL Gramine's Linux-SGX PAL makes for it: ``listen`` (socket, bind and listen
together), ``connect``, ``accept``, ``send``/``recv`` (one per system call that moves
pipe bytes, handshake bytes included), ``read``/``write`` (eventfd), ``poll``,
``eventfd``, ``shutdown``, ``close`` and ``clone_thread``; and, for the edge watches
behind the LibOS's edge-triggered epoll, ``epoll_create``, ``epoll_ctl`` and
``epoll_wait``.  Both host kinds count the same way, so a ``direct`` run shows what the
same work would cost in transitions.

The gate
--------
``_call(kind, where, fn, *args)`` counts one host call of ``kind``, runs the system call
``fn(*args)`` and turns an ``OSError`` into the ``PalError`` its errno means: the one
place where the PAL meets the host kernel's errors.  A system call that is part of a
host call already counted (the ``bind`` and ``listen`` of ``listen``, the wait before
an ``accept``) or that is the PAL's own bookkeeping (the eventfd registry of
``_identity``, the ``fstat`` of ``stream_from_fd``) goes through ``_aside``, which maps
errors the same way and, while an audit has set ``aside`` to a ``Counter``, records the
system call there instead of in ``calls``.  A thread start (``clone_thread``) is counted
in place by ``Threads.thread_start_now``, with the same two counts: the interpreter's
thread primitive raises no ``OSError`` for the gate to map.
Two kinds of system call stay outside, by design, and are named here so an audit can
leave them out: the descriptor identity check before each action (``getsockopt``,
``fstat``, ``kcmp``; see ``_identity``), and the blocking mode of a socket
(``fcntl``/``ioctl``), which change no host object.  ``tests/pal/test_pal_gate.py``
runs a fixed program under ``strace`` and holds the system calls it sees against
``calls`` and ``aside``.

The counts take no lock.  Each is bumped by one call of ``_collections._count_elements``
(the C helper behind ``Counter.update``): for a ``dict`` or a ``Counter`` it reads the
count, adds one and stores it without running any Python code, so it is one step for
the interpreter, which no other thread and no signal handler can come between.  (``x[k]
+= 1`` is three steps: two threads can both read the old count, and one of the two adds
is lost; a handshake helper counts into its creator's account, beside the creator.)
With no lock, a host call made on a thread of the parent at a fork holds nothing the
child's host calls then wait for.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from . import _interrupts
from ._errors import PalError, PalErrorCode

if TYPE_CHECKING:

    def _count(mapping: MutableMapping[Any, int], items: Iterable[Any], /) -> None:
        """Add one to ``mapping[item]`` (0 if absent) for each item, in one step."""

else:
    from _collections import _count_elements as _count

T = TypeVar("T")
_get_ident = threading.get_ident
_ONE_CALL = (0,)  # what ``_count`` adds to an account: one call, under its key 0

HostCallAccount = dict[int, int]
"""A thread's count of host calls, live: ``account[0]``, read whenever wanted."""

_CODES = {
    errno.EAGAIN: PalErrorCode.TRYAGAIN,
    errno.EMFILE: PalErrorCode.TOOMANY,
    errno.ENFILE: PalErrorCode.TOOMANY,
    errno.ENOMEM: PalErrorCode.NOMEM,
    errno.ENOBUFS: PalErrorCode.NOMEM,
    errno.EADDRINUSE: PalErrorCode.STREAMEXIST,
    errno.ECONNREFUSED: PalErrorCode.STREAMNOTEXIST,
    errno.ENOENT: PalErrorCode.STREAMNOTEXIST,
    errno.EPIPE: PalErrorCode.CONNFAILED_PIPE,
    errno.ECONNRESET: PalErrorCode.CONNFAILED,
    errno.EBADF: PalErrorCode.BADHANDLE,
    errno.ENOTCONN: PalErrorCode.NOTCONNECTION,
    errno.EINTR: PalErrorCode.INTERRUPTED,
}


def from_oserror(exc: OSError, what: str) -> PalError:
    """The ``PalError`` an ``OSError`` from the host means (a socket timeout, which has
    no errno, is ``TIMEDOUT``)."""
    if exc.errno is None and isinstance(exc, TimeoutError):
        return PalError(PalErrorCode.TIMEDOUT, f"{what}: timed out")
    code = _CODES.get(exc.errno or 0, PalErrorCode.DENIED)
    return PalError(code, f"{what}: {os.strerror(exc.errno or 0)}")


@dataclass(frozen=True)
class HostCallStats:
    """The host calls made up to one moment: a frozen copy, where ``Host.calls`` (a live
    ``Counter``) goes on changing.  ``by_kind`` is read-only."""

    total: int
    by_kind: Mapping[str, int]

    def __sub__(self, earlier: HostCallStats) -> HostCallStats:
        """The calls made between ``earlier`` and this moment."""
        kinds = Counter(self.by_kind)
        kinds.subtract(earlier.by_kind)
        return HostCallStats(
            self.total - earlier.total, MappingProxyType({k: n for k, n in kinds.items() if n})
        )


class _Accounts(dict[int, HostCallAccount]):
    """Host-call accounts by thread ident.  A thread's own is made on its first lookup
    (``__missing__``): only a thread looks its own ident up, so it never gets two, and
    the gate's common path, the account there, takes no branch for it."""

    def __missing__(self, ident: int) -> HostCallAccount:
        account: HostCallAccount = {0: 0}
        self[ident] = account
        return account


class Ledger:
    """The count of host calls, in total, by kind and per thread; and the gate."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        # System calls that are part of a counted host call, or bookkeeping of the PAL:
        # recorded only while an audit asks for it by setting a Counter here (they are
        # no host calls, and the clone path should not pay for counting them).
        self.aside: Counter[str] | None = None
        # Per thread, by ident: the calls that thread (and the handshake helpers it
        # started) made, as a ``HostCallAccount``.  The profile reads it, so a phase
        # counts its own thread's calls and never those of threads running beside it.
        # A dict, not a thread-local: a thread-local's first use in a thread costs some
        # microseconds (its per-thread dictionary), and a cloned thread's only host
        # call, its event's close at its exit, would pay it on every thread start.  A
        # host thread's entry goes when it ends (``Threads._thread_exited``); another
        # thread's stays, and a later thread given its ident goes on from its count
        # (every reader takes differences).  Each entry is stored only by its own
        # thread (or, in a fork child, by the fork hook, alone), and taken out by it
        # or once it has ended: one dict step each.
        self._accounts = _Accounts()

    def _own_ledger(self) -> None:
        """In a child made by ``os.fork`` (its fork hook, in the child's one thread): the
        accounts of the parent's other threads would pass to the child's new threads that
        the C library gives their idents.  Only the forking thread's account is kept;
        accounts others still hold (the LibOS's workers') stay as they were."""
        me = _get_ident()
        mine = self._accounts.get(me)
        self._accounts = _Accounts()
        if mine is not None:
            self._accounts[me] = mine

    @property
    def calls_total(self) -> int:
        """The sum of ``calls``."""
        # (One C call over the counts: no count changes halfway through it.)
        return sum(self.calls.values())

    def _call(self, kind: str, where: str, fn: Callable[..., T], *args: Any) -> T:
        """Count one host call of ``kind``, then make it: ``fn(*args)``.  An ``OSError``
        comes out as the matching ``PalError``, its message naming ``where``."""
        # Each count one step (see the module docstring): no lock, and no branch (a
        # thread's first call makes its account, in ``_Accounts.__missing__``).
        _count(self._accounts[_get_ident()], _ONE_CALL)  # (first: it may have to be made)
        _count(self.calls, (kind,))
        try:
            return fn(*args)
        except OSError as exc:
            raise from_oserror(exc, f"{where}: {kind}") from None

    def _aside(self, syscall: str, where: str, fn: Callable[..., T], *args: Any) -> T:
        """Make the system call ``fn(*args)`` that is no host call of its own (see the
        module docstring), recorded under ``syscall`` in ``aside``; errors as ``_call``."""
        aside = self.aside
        if aside is not None:
            _count(aside, (syscall,))
        try:
            return fn(*args)
        except OSError as exc:
            raise from_oserror(exc, f"{where}: {syscall}") from None

    def statistics(self) -> HostCallStats:
        """The host calls so far, frozen: total and by kind, taken together in the
        same step (one C call copies the counts, so they agree), beside the live ``calls``
        and ``calls_total``."""
        by_kind = dict(self.calls)
        return HostCallStats(sum(by_kind.values()), MappingProxyType(by_kind))

    def thread_calls(self) -> int:
        """Host calls made so far by the calling thread and the helpers it started."""
        return self.thread_account()[0]

    def thread_account(self) -> HostCallAccount:
        """The calling thread's count of host calls, live: another thread may read it
        later (``[0]``)."""
        return self._accounts[_get_ident()]

    def _charge_to(self, account: HostCallAccount, fn: Callable[..., object], *args: Any) -> None:
        _interrupts.quiet_thread()  # a helper takes no signal meant for the program
        self._accounts[_get_ident()] = account
        fn(*args)
