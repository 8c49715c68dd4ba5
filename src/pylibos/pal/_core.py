"""What every mechanism of a host stands on: its key and instance, the ledger, the set
of open handles and live threads, and the checks made before a handle is used.

Each mechanism (``_pipes``, ``_eventfd``, ``_wait``, ``_edges``, ``_clone``) is a class
over ``HostCore``; ``Host`` (``_host``) puts them together, and ``SgxHost`` (``_sgx``)
overrides the hooks where Gramine's Linux-SGX PAL differs (``_tls_pipes``, ``_slots``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal, NoReturn

from . import _identity, _interrupts
from ._errors import PalError, PalErrorCode, ShutDownError
from ._handle import Handle, HandleKind
from ._identity import EventfdRegistry
from ._ledger import Ledger, from_oserror
from ._thread import PalThread

PhaseHook = Callable[[str], AbstractContextManager[None]]


def _no_phase(_name: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


SHUT_DOWN = "the host is shut down"

# Asked of the kernel each time it matters (one system call, no cache): a fork hook
# (os.register_at_fork) misses a fork made below Python, by a C library or ctypes.
_getpid = os.getpid

# Hosts open in this process, for the fork hook below.
_hosts: weakref.WeakSet[HostCore] = weakref.WeakSet()


def _own_records_in_child() -> None:
    # Right after os.fork, in the child's one thread: every record of I/O and closes
    # under way is the parent's threads', none of which the child has.
    # A lock a parent's thread held at the fork is made anew: the child has no such
    # thread, and would wait for it for ever.  (_interrupts and _edges do the same.)
    for host in list(_hosts):
        host._lock = threading.Lock()
        for handle in list(host._handles):
            if handle.kind is HandleKind.PIPE:  # a pipe end's I/O and TLS locks
                handle._make_locks()
        host._own_ledger()
        host._own_threads()
        host._own_io()
        host._own_closes()


class HostCore(Ledger):
    """State and checks shared by every mechanism of a host."""

    kind = "base"
    tls: str | None = None
    """The TLS library of this host's pipes (``sgx``: ``"mbedtls"`` or ``"openssl"``);
    None where pipes carry plain bytes."""

    def __init__(self, master_key: bytes | None = None, *, instance: str | None = None) -> None:
        if master_key is None:
            master_key = secrets.token_bytes(32)
        if not isinstance(master_key, bytes | bytearray) or len(master_key) != 32:
            got = len(master_key) if isinstance(master_key, bytes | bytearray) else None
            raise ValueError(
                f"master_key must be 32 bytes, got {got if got is not None else type(master_key)}"
            )
        if instance is None:
            instance = secrets.token_hex(8)
        if not instance or "/" in instance or "\0" in instance:
            raise ValueError(f"instance must be a non-empty name without '/' or NUL: {instance!r}")
        super().__init__()
        self._master_key = bytes(master_key)
        self.instance = instance
        self._lock = threading.Lock()  # Guards _eventfds' making.
        # Every open handle and live thread, so shutdown leaves nothing.  No lock: each
        # change is one set operation, one step for the interpreter (add when made;
        # remove or pop, which tells whoever takes a handle that it is theirs, when
        # closed; discard when a thread exits), and readers copy with list(set).
        self._handles: set[Handle] = set()
        self._threads: set[PalThread] = set()
        # Every host thread's ``_on_exit``, bound once (not a bound method per start).
        self._on_thread_exit = self._thread_exited
        self.handshake_timeout = 10.0
        self.slot_timeout = 0.25
        # Made at the first eventfd (see _identity.EventfdRegistry); False: not to be had.
        self._eventfds: EventfdRegistry | Literal[False] | None = None
        self.phase: PhaseHook = _no_phase
        self.closed = False
        self._sigint = _interrupts.install()
        # A child forked from this process holds the same sockets and eventfds: there the
        # host may close its copies of the descriptors, never shut down, wake or end a
        # session under the parent (see _in_a_fork).
        self._pid = _getpid()
        # One item per ``close`` under way, from before it takes its handle to its end:
        # shutdown leaves the eventfd registry (which the close checks its descriptor
        # against) to the last of them (see ``Host.shutdown``).
        self._closes: list[None] = []
        self._retired: EventfdRegistry | None = None
        # One item per read or write of an eventfd under way: its handle.  A close of a
        # handle in here leaves its release to the last of them (``Host.close``).
        self._io: list[Handle] = []
        # The handles shutdown took from the host, each until it is released: a shutdown
        # cut short by a Ctrl-C leaves the rest here for the next one.
        self._taken: list[Handle] = []
        # The process ``_io`` and ``_closes`` were recorded in: in a fork child, those of
        # the parent are forgotten (by the fork hook, or at the next close or shutdown
        # that needs them, for a fork no hook saw).
        self._io_pid = self._closes_pid = self._pid
        _hosts.add(self)

    def _in_a_fork(self) -> bool:
        """True in a child forked after this host opened (by any means): the descriptors
        it holds are copies of the parent's, whose sockets, sessions and counters are the
        parent's."""
        return self._pid != _getpid()

    def _own_io(self) -> None:
        """In a fork child, forget the reads and writes under way that the parent's
        threads recorded: they never end here.  A handle a close left to them is moved
        to ``_taken``, for the child's shutdown to release (its copy of the descriptor)."""
        pid = _getpid()
        if self._io_pid == pid:
            return
        self._io_pid = pid
        io, taken = self._io, self._taken
        for handle in list(io):
            if handle.closed and handle._io_token and handle not in taken:
                taken.append(handle)
        io.clear()

    def _own_threads(self) -> None:
        """In a fork child: the parent's other host threads are not here (``Threads``)."""

    def _own_closes(self) -> None:
        """In a fork child, forget the closes under way that the parent's threads
        counted: shutdown would leave the registry to them for ever."""
        pid = _getpid()
        if self._closes_pid == pid:
            return
        self._closes_pid = pid
        self._closes.clear()

    def session_key(self, name: str) -> bytes:
        """The key that protects pipe ``name``; only ``sgx`` hosts use it."""
        raise PalError(PalErrorCode.NOTSUPPORT, f"{self.kind} hosts have no session keys")

    def _track(self, handle: Handle) -> Handle:
        """Record what the descriptor of a handle just opened is, and the handle as the
        host's (a handle over the program's descriptor, kind FD: the handle only)."""
        kind = handle.kind
        if kind is not HandleKind.FD:
            try:
                if kind is HandleKind.EVENTFD or kind is HandleKind.EDGES:
                    # An edge watch is an epoll: it shares the one anonymous inode too.
                    registry = self._eventfds
                    if registry is None:
                        registry = self._eventfd_registry()
                    if registry:  # else False: kcmp is not to be had
                        handle._ident = registry
                        registry.add(handle._fd, handle)
                    else:
                        handle._ident = _identity.identity(handle)
                else:
                    handle._ident = _identity.identity(handle)
            except OSError as exc:
                self._untrack(handle, from_oserror(exc, f"{handle.uri}: identity"))
            except PalError as exc:
                if isinstance(handle._ident, EventfdRegistry):  # the registry refused it
                    self._registered_again(handle, handle._ident, exc)
                else:
                    self._unmade(handle, exc)
        handle._owner = self
        # One step (set.add): see shutdown, which takes each handle with one set.pop.
        self._handles.add(handle)
        if self.closed:
            self._taken_back(handle)
        return handle

    def _taken_back(self, handle: Handle) -> NoReturn:
        """A handle recorded just as ``shutdown`` ran (it set ``closed`` first, and then
        took the handles): closed here, unless shutdown took it, and the open fails.
        Its descriptor, opened and recorded a moment ago, is closed unchecked, as it was
        recorded: the registry it would be checked against may be closed already."""
        try:
            self._handles.remove(handle)
        except KeyError:
            pass  # shutdown took it, and closes it
        else:
            handle.closed = True
            if handle._owns_fd:
                _identity.forget(handle)
                self._close_fd(handle)
        raise ShutDownError(SHUT_DOWN)

    def _close_fd(self, handle: Handle) -> None:
        """Close the descriptor of a handle, errors ignored (a number the host closed
        meanwhile: nothing of ours is left)."""
        closer = (
            handle._sock.close
            if handle._sock is not None
            else handle._epoll.close
            if handle._epoll is not None
            else functools.partial(os.close, handle._fd)
        )
        try:  # noqa: SIM105 (on the close path; suppress() costs a context manager)
            self._call("close", handle.uri, closer)
        except PalError:
            pass

    @staticmethod
    def _untrack(handle: Handle, err: PalError) -> NoReturn:
        # Gone between its opening and here: the number is not ours to close.
        handle.closed = True
        _identity.let_go(handle)
        raise err

    def _unmade(self, handle: Handle, exc: PalError) -> NoReturn:
        """Undo a handle whose descriptor the eventfd registry would not take (a refused
        watch, or the registry closed by a racing ``shutdown``): the descriptor, just
        made, is closed and its number given back, unless the registry found it closed
        (then the number is not ours to close)."""
        if exc.code is PalErrorCode.BADHANDLE and not self.closed:
            self._untrack(handle, PalError(exc.code, f"{handle.uri}: identity: {exc.message}"))
        handle.closed = True
        self._close_fd(handle)
        if self.closed:
            raise ShutDownError(SHUT_DOWN)
        raise PalError(exc.code, f"{handle.uri}: identity: {exc.message}")

    def _check(self, handle: Handle, *kinds: HandleKind, failed_ok: bool = False) -> None:
        if not isinstance(handle, Handle):
            raise PalError(PalErrorCode.BADHANDLE, f"not a PAL handle: {handle!r}")
        if handle.closed:
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
        if kinds and handle.kind not in kinds:
            if HandleKind.PIPE_SRV in kinds:
                raise PalError(PalErrorCode.NOTSERVER, f"not a listening pipe: {handle.uri}")
            raise PalError(
                PalErrorCode.NOTCONNECTION, f"{handle.uri} does not support this operation"
            )
        if handle._failure is not None and not (failed_ok and not handle._stale):
            raise handle._failure
        _identity.verify(handle)

    def _registered_again(self, handle: Handle, registry: EventfdRegistry, exc: PalError) -> None:
        """``registry``, the host's, refused to watch the descriptor of a handle just
        opened (``exc``).  If its epoll was closed under it (``gone``: the host, or a
        program closing every descriptor it does not know of, as daemons do), it is
        abandoned, a new one takes its place (once, whoever finds it first) and the handle
        is registered there (or, where kcmp is no longer to be had, checked by inode):
        one closed descriptor must not stop every eventfd open for good.  Otherwise, or
        if that fails too, the handle is undone (``_unmade``), as for any refusal.  A
        registry that is not the host's any more (replaced since this open read it) is
        not asked: the handle goes to the one in its place; nor is one whose number the
        handle just opened holds (an epoll there, the handle's own: it is gone)."""
        if (
            registry is self._eventfds
            and registry._efd != handle._fd  # (the number of the handle just opened)
            and not registry.gone()
        ):
            self._unmade(handle, exc)
        try:
            now = self._registry_instead_of(registry)
            if now:
                handle._ident = now
                now.add(handle._fd, handle)
            else:
                handle._ident = _identity.identity(handle)
        except PalError as again:
            self._unmade(handle, again)
        except OSError as again:
            self._untrack(handle, from_oserror(again, f"{handle.uri}: identity"))

    def _registry_instead_of(self, gone: EventfdRegistry) -> EventfdRegistry | Literal[False]:
        """The host's registry after ``gone`` was found gone: a new one (False where kcmp
        is not to be had any more), made once whoever finds it first.  Handles checked
        against the old one fail their checks from now on (their numbers are not known
        to be theirs)."""
        with self._lock:
            if self._eventfds is gone:
                gone.abandon()
                self._eventfds = None
                self._eventfds = EventfdRegistry.make(self._aside) or False
            now = self._eventfds
        # None: a make cut short (a Ctrl-C, a refusal for an instant): made again here.
        return self._eventfd_registry() if now is None else now

    def _eventfd_registry(self) -> EventfdRegistry | Literal[False]:
        """The registry (made at the first eventfd), or False where kcmp is not to be
        had."""
        with self._lock:
            if self._eventfds is None:
                self._eventfds = EventfdRegistry.make(self._aside) or False
            return self._eventfds

    def _alive(self) -> None:
        if self.closed:
            raise ShutDownError(SHUT_DOWN)

    # What one mechanism asks of another; ``Host`` has them all.

    def close(self, handle: Handle) -> None:
        raise NotImplementedError

    def _io_done(self, handle: Handle) -> None:
        raise NotImplementedError

    def _thread_exited(self, thread: PalThread) -> None:
        raise NotImplementedError

    def stream_open(self, uri: str, *, nonblocking: bool = False) -> Handle:
        raise NotImplementedError


os.register_at_fork(after_in_child=_own_records_in_child)
