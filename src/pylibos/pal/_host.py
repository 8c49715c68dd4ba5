"""The PAL host: streams by URI, waiting on handles, threads, and the count of host calls.

``Host`` holds everything the two host kinds share.  ``DirectHost`` (``_direct.py``) adds
nothing; ``SgxHost`` (``_sgx.py``) overrides the three places where Gramine's Linux-SGX
PAL differs: pipe ends are secured with TLS-PSK, session keys come from the master key,
and thread creation is bounded by ``sgx.max_threads``.

Host calls
----------
Every operation that would leave an SGX enclave is counted in ``calls`` under the name
of the OCALL Gramine's Linux-SGX PAL makes for it: ``listen`` (socket, bind and listen
together), ``connect``, ``accept``, ``send``/``recv`` (one per system call that moves
pipe bytes, handshake bytes included), ``read``/``write`` (eventfd), ``poll``,
``eventfd``, ``shutdown``, ``close`` and ``clone_thread``; and, for the edge watches
behind the LibOS's edge-triggered epoll, ``epoll_create``, ``epoll_ctl`` and
``epoll_wait``.  Both host kinds count the same way, so a ``direct`` run shows what the
same work would cost in transitions.

Abstract socket names
---------------------
Pipes are abstract UNIX sockets named ``pylibos/<instance>/<p|r>/<NAME>``.  The instance
is drawn at random per host unless given, so two hosts never meet by accident; two
processes that should talk (IPC) open their hosts with the same instance and master key.
TLS pipes (``p``) and raw pipes (``r``) live in separate branches, so a raw end can never
be paired with an encrypted one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import secrets
import select
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from . import _interrupts
from ._errors import PalError, PalErrorCode
from ._handle import Handle, HandleKind
from ._thread import PalThread

WAIT_READ = 1
WAIT_WRITE = 2
WAIT_ERROR = 4
WAIT_HANG_UP = 8
# Beyond Gramine's four, so epoll over a program's own descriptors keeps Linux's meaning:
WAIT_PRI = 16  # urgent data (POLLPRI)
WAIT_RDHUP = 32  # the peer shut down its writing side (POLLRDHUP)

EVENT_TOKEN = b"\x01"
"""The only payload raw pipes and eventfds carry: one wakeup."""

# The host's epoll, taken at import: under ``pylibos run`` the program's ``select.epoll``
# is the LibOS's, which stands on this one.
_host_epoll = select.epoll

# How WAIT_* flags and epoll's bits correspond (an edge watch speaks epoll to the host).
_EPOLL_BITS = (
    (WAIT_READ, select.EPOLLIN),
    (WAIT_WRITE, select.EPOLLOUT),
    (WAIT_PRI, select.EPOLLPRI),
    (WAIT_RDHUP, select.EPOLLRDHUP),
    (WAIT_ERROR, select.EPOLLERR),
    (WAIT_HANG_UP, select.EPOLLHUP),
)

_ABSTRACT_MAX = 107  # sizeof(sun_path) minus the leading NUL of an abstract name
_RECV_CHUNK = 8192
_HELPER_JOIN_S = 5.0

PhaseHook = Callable[[str], AbstractContextManager[None]]


def _no_phase(_name: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


def _from_oserror(exc: OSError, what: str) -> PalError:
    code = {
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
    }.get(exc.errno or 0, PalErrorCode.DENIED)
    return PalError(code, f"{what}: {os.strerror(exc.errno or 0)}")


class _KcmpEpollSlot(ctypes.Structure):
    _fields_ = (("efd", ctypes.c_uint32), ("tfd", ctypes.c_uint32), ("toff", ctypes.c_uint32))


_SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
_KCMP_EPOLL_TFD = 7


class _EventfdRegistry:
    """Tells an eventfd of ours from any other object at its number.

    Every eventfd shares the kernel's one anonymous inode, so fstat cannot tell two apart.
    An epoll instance can: each eventfd the PAL opens is registered in this one (for no
    events), and ``kcmp(KCMP_EPOLL_TFD)`` then says whether the file now at a number is
    the file registered under that number.  One descriptor per host, one epoll_ctl at
    open and at close, one kcmp per check.
    """

    def __init__(self) -> None:
        self._epoll = _host_epoll()  # never the LibOS's, which pylibos run puts there
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall
        self._pid = os.getpid()

    @classmethod
    def make(cls) -> _EventfdRegistry | None:
        """A registry, or None where kcmp is not to be had (another architecture, or a
        seccomp filter): eventfds are then checked by inode only."""
        if _SYS_KCMP is None:
            return None
        registry = cls()
        fd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            registry.add(fd)
            works = registry.same(fd) is True
            registry.remove(fd)
        except OSError:
            works = False
        finally:
            os.close(fd)
        if not works:
            registry.close()
            return None
        return registry

    def add(self, fd: int) -> None:
        self._epoll.register(fd, 0)

    def remove(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)

    def same(self, fd: int) -> bool | None:
        """True if ``fd`` holds the file registered under its number, False if another
        object, None if ``fd`` is closed."""
        efd = self._epoll.fileno()
        for toff in range(4):  # a number the host recycled may be registered twice
            slot = _KcmpEpollSlot(efd, fd, toff)
            ret = self._syscall(
                _SYS_KCMP, self._pid, self._pid, _KCMP_EPOLL_TFD, fd, ctypes.byref(slot)
            )
            if ret == 0:
                return True
            if ret < 0:
                return None if ctypes.get_errno() == errno.EBADF else False
        return False

    def close(self) -> None:
        self._epoll.close()


# Host epolls whose number the host took away: a ``select.epoll`` closes its number when
# it is freed, and cannot let go of it, so these are never freed (one small object each).
_STRANDED: list[select.epoll] = []


def _never_close(epoll: select.epoll) -> None:
    _STRANDED.append(epoll)


_SO_COOKIE = getattr(socket, "SO_COOKIE", 57)  # Linux; not named by Python before 3.12


def _cookies_work() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            return len(probe.getsockopt(socket.SOL_SOCKET, _SO_COOKIE, 8)) == 8
        except OSError:
            return False


_COOKIES = _cookies_work()


def _identity(handle: Handle) -> object:
    """What the descriptor under ``handle`` is: a socket's cookie (unique for the life of
    the system, cheaper than fstat), else device and inode.  Raises ``OSError`` when the
    descriptor is closed (or, asking for a cookie, is no socket)."""
    sock = handle._sock
    if sock is not None and _COOKIES:
        return sock.getsockopt(socket.SOL_SOCKET, _SO_COOKIE, 8)
    st = os.fstat(handle._fd)
    return (st.st_dev, st.st_ino)


class Host:
    """One untrusted host, as the LibOS sees it through the PAL."""

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
        self._master_key = bytes(master_key)
        self.instance = instance
        self.calls: Counter[str] = Counter()
        # The sum of ``calls``, kept alongside so reading it costs nothing.
        self.calls_total = 0
        self._calls_lock = threading.Lock()
        # Per thread: a one-item list, the calls that thread (and the handshake helpers it
        # started) made.  Guarded by _calls_lock; the profile reads it, so a phase counts
        # its own thread's calls and never those of threads running beside it.
        self._accounts = threading.local()
        # Guarded by _lock: every open handle and live thread, so shutdown leaves nothing.
        self._lock = threading.Lock()
        self._handles: set[Handle] = set()
        self._threads: set[PalThread] = set()
        self.handshake_timeout = 10.0
        self.slot_timeout = 0.25
        # Made at the first eventfd (see _EventfdRegistry); False: not to be had here.
        self._eventfds: _EventfdRegistry | bool | None = None
        self.phase: PhaseHook = _no_phase
        self.closed = False
        self._sigint = _interrupts.install()

    # -- bookkeeping ---------------------------------------------------------------

    def _count(self, call: str, n: int = 1) -> None:
        try:
            account: list[int] = self._accounts.calls
        except AttributeError:
            account = self._accounts.calls = [0]
        with self._calls_lock:
            self.calls[call] += n
            self.calls_total += n
            account[0] += n

    def thread_calls(self) -> int:
        """Host calls made so far by the calling thread and the helpers it started."""
        return self.thread_account()[0]

    def thread_account(self) -> list[int]:
        """The calling thread's count of host calls, as a live one-item list another
        thread may read later (``[0]``)."""
        try:
            account: list[int] = self._accounts.calls
        except AttributeError:
            account = self._accounts.calls = [0]
        return account

    def _charge_to(self, account: list[int], fn: Callable[..., object], *args: Any) -> None:
        self._accounts.calls = account
        fn(*args)

    def _track(self, handle: Handle) -> Handle:
        if handle.kind in (
            HandleKind.PIPE, HandleKind.PIPE_SRV, HandleKind.EVENTFD, HandleKind.EDGES
        ):  # fmt: skip
            try:
                registry = None
                if handle.kind in (HandleKind.EVENTFD, HandleKind.EDGES):
                    # An edge watch is an epoll: it shares the one anonymous inode too.
                    registry = self._eventfd_registry()
                if registry is not None:
                    registry.add(handle._fd)
                    handle._ident = registry
                else:
                    handle._ident = _identity(handle)
            except OSError as exc:
                # Gone between its opening and here: the number is not ours to close.
                handle.closed = True
                if handle._sock is not None:
                    handle._sock.detach()
                if handle._epoll is not None:
                    _never_close(handle._epoll)
                raise _from_oserror(exc, f"{handle.uri}: identity") from None
        with self._lock:
            self._handles.add(handle)
        return handle

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
        self._verify(handle)

    # Descriptor identity
    # -------------------
    # The host owns the descriptor table.  It can close a descriptor the PAL holds, and
    # the number is then handed to the next object anyone opens: a socket of the program,
    # or the channel the LibOS opens to replace the broken one.  Acting on the number then
    # reads, writes or closes that other object.  So each handle keeps the identity of its
    # descriptor from its opening (a socket's cookie, a number the kernel never reuses;
    # else device and inode, from fstat) and the PAL compares it before it acts.  A
    # descriptor that is gone or is now something else fails the handle, for good, and
    # its number is never touched again (close only forgets it).  Every eventfd shares
    # the kernel's one anonymous inode, so eventfds are told apart by an epoll instance
    # that holds them all (_EventfdRegistry), where kcmp is to be had.  The check and
    # the action are two system calls; the kernel offers no way to make them one, so the
    # check narrows the window to the gap between them.  (A real SGX host answers these
    # calls as it likes: there only the channel's content, none, or its TLS, protects the
    # enclave.  Here the kernel is honest and the host is another process or a test, so
    # the check is sound.)  It is not counted as a host call: Gramine's PAL makes no such
    # OCALL.

    def _verify(self, handle: Handle) -> None:
        ident = handle._ident
        if ident is None:
            return
        if not handle._stale:
            if isinstance(ident, _EventfdRegistry):
                same = ident.same(handle._fd)
                if same:
                    return
                what = (
                    "the host closed its descriptor"
                    if same is None
                    else f"its descriptor {handle._fd} now belongs to another object"
                )
                handle._stale = True
                handle._failure = PalError(PalErrorCode.BADHANDLE, f"{handle.uri}: {what}")
                raise handle._failure
            try:
                now = _identity(handle)
            except OSError:
                what = "the host closed its descriptor, or another object has its number"
            else:
                if now == ident:
                    return
                what = f"its descriptor {handle._fd} now belongs to another object"
            handle._stale = True
            handle._failure = PalError(PalErrorCode.BADHANDLE, f"{handle.uri}: {what}")
        assert handle._failure is not None
        raise handle._failure

    def _eventfd_registry(self) -> _EventfdRegistry | None:
        with self._lock:
            if self._eventfds is None:
                self._eventfds = _EventfdRegistry.make() or False
            registry = self._eventfds
        return registry if isinstance(registry, _EventfdRegistry) else None

    def _still_ours(self, handle: Handle) -> bool:
        try:
            self._verify(handle)
        except PalError:
            return False
        return True

    def _abstract_name(self, name: str, raw: bool) -> bytes:
        if not name:
            raise PalError(PalErrorCode.INVAL, "pipe name is empty")
        if "\0" in name:
            raise PalError(PalErrorCode.INVAL, "pipe name contains a NUL byte")
        full = f"pylibos/{self.instance}/{'r' if raw else 'p'}/{name}".encode()
        if len(full) > _ABSTRACT_MAX:
            room = _ABSTRACT_MAX - (len(full) - len(name.encode()))
            raise PalError(
                PalErrorCode.TOOLONG,
                f"pipe name is {len(name.encode())} bytes; at most {room} fit in sockaddr_un",
            )
        return b"\0" + full

    # -- mechanism that differs between host kinds -----------------------------------

    def session_key(self, name: str) -> bytes:
        """The key that protects pipe ``name``; only ``sgx`` hosts use it."""
        raise PalError(PalErrorCode.NOTSUPPORT, f"{self.kind} hosts have no session keys")

    def _secure_connecting(self, handle: Handle, name: str) -> None:
        """Called on a freshly connected ``pipe:`` end."""

    def _secure_accepted(self, handle: Handle, name: str) -> None:
        """Called on the end ``wait_for_client`` is about to return."""

    def _await_slot(self, deadline: float, helper: bool) -> None:
        """Wait until a thread slot may be free, or raise ``NOMEM`` at ``deadline``."""

    def _take_slot(self, thread: PalThread) -> bool:
        """Give ``thread`` a slot if one is free now (never waits); False if none is."""
        return True

    def _release_thread(self, thread: PalThread) -> None:
        """Give back the slot of ``thread``; nothing if it holds none."""

    # -- streams ---------------------------------------------------------------------

    def stream_open(self, uri: str, *, nonblocking: bool = False) -> Handle:
        """Open ``pipe.srv:NAME``, ``pipe:NAME``, ``pipe.raw.srv:NAME``, ``pipe.raw:NAME`` or
        ``eventfd:``."""
        if self.closed:
            raise PalError(PalErrorCode.BADHANDLE, "host is shut down")
        if not isinstance(uri, str) or ":" not in uri:
            raise PalError(PalErrorCode.INVAL, f"malformed URI (want PREFIX:NAME): {uri!r}")
        prefix, _, name = uri.partition(":")
        if prefix == "eventfd":
            if name:
                raise PalError(PalErrorCode.INVAL, f"eventfd: takes no name, got {name!r}")
            return self._open_eventfd(uri, nonblocking)
        if prefix in ("pipe.srv", "pipe.raw.srv"):
            return self._open_listener(uri, name, prefix == "pipe.raw.srv", nonblocking)
        if prefix in ("pipe", "pipe.raw"):
            return self._open_connecting(uri, name, prefix == "pipe.raw", nonblocking)
        raise PalError(
            PalErrorCode.NOTSUPPORT,
            f"unknown URI prefix {prefix!r}; "
            "known: pipe.srv, pipe, pipe.raw.srv, pipe.raw, eventfd",
        )

    def _open_eventfd(self, uri: str, nonblocking: bool) -> Handle:
        flags = os.EFD_CLOEXEC | (os.EFD_NONBLOCK if nonblocking else 0)
        entered = _interrupts.enter()
        try:
            self._count("eventfd")
            try:
                fd = os.eventfd(0, flags)
            except OSError as exc:
                raise _from_oserror(exc, "eventfd") from None
            handle = Handle(HandleKind.EVENTFD, uri, raw=True, nonblocking=nonblocking, fd=fd)
            self._track(handle)
        finally:
            _interrupts.leave(entered)
        return handle

    def _socket_handle(
        self, kind: HandleKind, uri: str, raw: bool, nonblocking: bool, call: str
    ) -> Handle:
        """A handle over a new stream socket, recorded as it is made; ``call`` names the
        one host call it is part of."""
        entered = _interrupts.enter()
        try:
            self._count(call)
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            except OSError as exc:
                raise _from_oserror(exc, f"{uri}: socket") from None
            handle = Handle(kind, uri, raw=raw, nonblocking=nonblocking, sock=sock)
            self._track(handle)
        finally:
            _interrupts.leave(entered)
        return handle

    def _discard(self, handle: Handle, *, count: bool) -> None:
        """Undo a handle that never opened: untrack it and close its socket."""
        with self._lock:
            handle.closed = True
            self._handles.discard(handle)
        if count:
            self._count("close")
        assert handle._sock is not None
        handle._sock.close()

    def _open_listener(self, uri: str, name: str, raw: bool, nonblocking: bool) -> Handle:
        address = self._abstract_name(name, raw)
        handle = self._socket_handle(HandleKind.PIPE_SRV, uri, raw, nonblocking, "listen")
        sock = handle._sock
        assert sock is not None
        try:
            sock.bind(address)
            sock.listen(128)
        except BaseException as exc:
            self._discard(handle, count=False)
            if isinstance(exc, OSError):
                if exc.errno == errno.EADDRINUSE:
                    raise PalError(
                        PalErrorCode.STREAMEXIST, f"{uri}: this pipe name already has a listener"
                    ) from None
                raise _from_oserror(exc, f"{uri}: bind") from None
            raise
        sock.setblocking(not nonblocking)
        return handle

    def _open_connecting(self, uri: str, name: str, raw: bool, nonblocking: bool) -> Handle:
        address = self._abstract_name(name, raw)
        handle = self._socket_handle(HandleKind.PIPE, uri, raw, nonblocking, "connect")
        sock = handle._sock
        assert sock is not None
        try:
            sock.connect(address)
        except BaseException as exc:
            self._discard(handle, count=False)
            if isinstance(exc, OSError):
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    raise PalError(
                        PalErrorCode.STREAMNOTEXIST, f"{uri}: no listener for this pipe name"
                    ) from None
                raise _from_oserror(exc, f"{uri}: connect") from None
            raise
        if not raw:
            try:
                self._secure_connecting(handle, name)
            except BaseException:
                self._discard(handle, count=True)
                raise
        if handle._ready is None:
            sock.setblocking(not nonblocking)
        return handle

    def wait_for_client(self, server: Handle) -> Handle:
        """Accept one connection on a listening pipe (``PalStreamWaitForClient``)."""
        self._check(server, HandleKind.PIPE_SRV)
        listener = server._sock
        assert listener is not None
        if not server.nonblocking:
            # Wait here, where a Ctrl-C is not deferred; the accept below then finds the
            # client at once (part of the same host call).
            poller = select.poll()
            poller.register(listener.fileno(), select.POLLIN)
            with contextlib.suppress(OSError):
                poller.poll()
        uri = server.uri.replace(".srv:", ":", 1)
        entered = _interrupts.enter()
        try:
            self._count("accept")
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                raise PalError(PalErrorCode.TRYAGAIN, f"{server.uri}: no client waiting") from None
            except OSError as exc:
                raise _from_oserror(exc, f"{server.uri}: accept") from None
            handle = Handle(
                HandleKind.PIPE, uri, raw=server.raw, nonblocking=server.nonblocking, sock=sock
            )
            self._track(handle)
        finally:
            _interrupts.leave(entered)
        if not server.raw:
            try:
                self._secure_accepted(handle, server.uri.partition(":")[2])
            except BaseException:
                self._discard(handle, count=True)
                raise
        sock.setblocking(not server.nonblocking)
        return handle

    def create_pipe(self, *, raw: bool = False, nonblocking: bool = False) -> tuple[Handle, Handle]:
        """An anonymous pipe: a fresh random name, both ends connected, the listener closed.

        Returns ``(accepted_end, connecting_end)``, as Gramine's ``create_pipe`` followed by
        ``PalStreamOpen`` and ``PalStreamWaitForClient`` gives them.
        """
        prefix = "pipe.raw" if raw else "pipe"
        for _ in range(8):
            name = secrets.token_hex(8)
            try:
                server = self.stream_open(f"{prefix}.srv:{name}", nonblocking=False)
            except PalError as exc:
                if exc.code is PalErrorCode.STREAMEXIST:
                    continue
                raise
            break
        else:
            raise PalError(PalErrorCode.STREAMEXIST, "no free random pipe name after 8 tries")
        try:
            connecting = self.stream_open(f"{prefix}:{name}", nonblocking=nonblocking)
            try:
                accepted = self.wait_for_client(server)
            except BaseException:
                self.close(connecting)
                raise
            if nonblocking:
                self._set_nonblocking(accepted)
            return accepted, connecting
        finally:
            self.close(server)

    def _set_nonblocking(self, handle: Handle) -> None:
        handle.nonblocking = True
        if handle._sock is not None and (handle._ready is None or handle._ready.is_set()):
            handle._sock.setblocking(False)

    def stream_from_fd(self, fd: int) -> Handle:
        """A handle over a descriptor the program owns, so it can be waited on beside PAL
        streams.  Closing the handle leaves the descriptor open."""
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            raise _from_oserror(exc, f"fd {fd}") from None
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            raise PalError(
                PalErrorCode.NOTSUPPORT,
                f"fd {fd} is a file or directory, always ready: not pollable",
            )
        return self._track(
            Handle(HandleKind.FD, f"fd:{fd}", raw=True, nonblocking=True, fd=fd, owns_fd=False)
        )

    # -- I/O -------------------------------------------------------------------------

    def read(self, handle: Handle, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of stream."""
        self._check(handle, HandleKind.PIPE, HandleKind.EVENTFD)
        if size <= 0:
            raise PalError(PalErrorCode.INVAL, f"read size must be positive, got {size}")
        with handle._read_lock:
            if handle.kind is HandleKind.EVENTFD:
                return self._read_eventfd(handle, size)
            if handle._ready is not None:
                return self._read_tls(handle, size)
            return self._recv(handle, size)

    def _recv(self, handle: Handle, size: int) -> bytes:
        assert handle._sock is not None
        self._count("recv")
        try:
            return handle._sock.recv(size)
        except BlockingIOError:
            raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: nothing to read") from None
        except OSError as exc:
            raise _from_oserror(exc, f"{handle.uri}: recv") from None

    def _read_eventfd(self, handle: Handle, size: int) -> bytes:
        self._count("read")
        try:
            value = os.eventfd_read(handle._fd)
        except BlockingIOError:
            raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: not signalled") from None
        except OSError as exc:
            raise _from_oserror(exc, f"{handle.uri}: read") from None
        return EVENT_TOKEN * min(value, size)

    def _await_handshake(self, handle: Handle) -> None:
        assert handle._ready is not None
        if not handle._ready.is_set():
            if handle.nonblocking:
                raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: handshake in progress")
            if not handle._ready.wait(self.handshake_timeout):
                raise PalError(PalErrorCode.TIMEDOUT, f"{handle.uri}: handshake did not finish")
        if handle._failure is not None:
            raise handle._failure

    def _read_tls(self, handle: Handle, size: int) -> bytes:
        from ._tls import TlsFailure

        self._await_handshake(handle)
        session = handle._tls
        if session is None:
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
        while True:
            with handle._tls_lock:
                if session.buffered:
                    return session.take(size)
                if session.peer_closed:
                    return b""
            data = self._recv(handle, _RECV_CHUNK)
            with handle._tls_lock:
                if not data:
                    if session.mid_record:
                        raise self._fail(handle, "stream ended inside a TLS record (truncated)")
                    if handle._deleted:
                        return b""  # this end was shut down here: the end is ours
                    # Without close_notify, the host may have dropped whole records and
                    # then closed the connection: a cut stream, not an end.
                    raise self._fail(handle, "stream ended without a TLS close_notify (cut)")
                try:
                    session.feed(data)
                except TlsFailure as exc:
                    raise self._fail(handle, str(exc)) from None

    def _fail(self, handle: Handle, message: str) -> PalError:
        """Mark a TLS handle broken for good: nothing more is read from or written to it."""
        err = PalError(PalErrorCode.AUTH_FAILED, f"{handle.uri}: {message}")
        handle._failure = err
        return err

    def write(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        """Write ``data``; returns how many bytes were taken, which may be fewer on a
        nonblocking handle: the peer gets every byte counted, with no further call.  After
        a short count (or TRYAGAIN) on a TLS handle, the next write must start with the
        bytes not taken, as mbed TLS asks after WANT_WRITE.  Raw pipes and eventfds take
        only ``EVENT_TOKEN``."""
        self._check(handle, HandleKind.PIPE, HandleKind.EVENTFD)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PalError(PalErrorCode.INVAL, f"write wants bytes, got {type(data).__name__}")
        if handle.raw and bytes(data) != EVENT_TOKEN:
            raise PalError(
                PalErrorCode.DENIED,
                f"{handle.uri} carries no data: only the event token may be written "
                f"(got {len(data)} bytes)",
            )
        with handle._write_lock:
            if handle.kind is HandleKind.EVENTFD:
                self._count("write")
                try:
                    os.eventfd_write(handle._fd, 1)
                except BlockingIOError:
                    raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: counter full") from None
                except OSError as exc:
                    raise _from_oserror(exc, f"{handle.uri}: write") from None
                return len(EVENT_TOKEN)
            if handle._ready is not None:
                return self._write_tls(handle, memoryview(bytes(data)))
            return self._send(handle, bytes(data))

    def _send(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        assert handle._sock is not None
        self._count("send")
        try:
            return handle._sock.send(data)
        except BlockingIOError:
            raise PalError(PalErrorCode.TRYAGAIN, f"{handle.uri}: would block") from None
        except OSError as exc:
            raise _from_oserror(exc, f"{handle.uri}: send") from None

    def _send_all(self, handle: Handle, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._send(handle, view) :]

    def _flush_out(self, handle: Handle) -> None:
        while handle._out:
            sent = self._send(handle, handle._out)
            del handle._out[:sent]

    def _write_tls(self, handle: Handle, data: memoryview) -> int:
        from ._tls import TlsFailure

        self._await_handshake(handle)
        session = handle._tls
        if session is None:
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")
        if handle._goodbye:
            # close_notify is out: no record may follow it (OpenSSL will not seal one).
            raise PalError(PalErrorCode.CONNFAILED_PIPE, f"{handle.uri}: this end was shut down")
        taken = 0
        if handle._out_plain:
            # The last write parked a sealed record and did not count it: it goes first, and
            # counts now, provided this write starts with the same bytes.
            if data[: len(handle._out_plain)] != handle._out_plain:
                raise PalError(
                    PalErrorCode.INVAL,
                    f"{handle.uri}: a nonblocking write that took fewer bytes must be retried "
                    "starting with the bytes it did not take",
                )
            self._flush_out(handle)  # TRYAGAIN here means nothing was taken
            taken = len(handle._out_plain)
            handle._out_plain = b""
        while taken < len(data):
            with handle._tls_lock:
                try:
                    n, record = session.seal(data[taken:])
                except TlsFailure as exc:
                    raise self._fail(handle, str(exc)) from None
            if not handle.nonblocking:
                self._send_all(handle, record)
                taken += n
                continue
            # A sealed record must reach the peer whole, and bytes count as written only
            # once their record is all in the socket: a record the socket will not take now
            # waits in _out, uncounted, and goes first on the next write (as mbed TLS's own
            # ``mbedtls_ssl_write`` wants a retry with the same data after WANT_WRITE).
            handle._out += record
            try:
                self._flush_out(handle)
            except PalError as exc:
                if exc.code is not PalErrorCode.TRYAGAIN:
                    raise
                handle._out_plain = bytes(data[taken : taken + n])
                if not taken:
                    raise
                break
            taken += n
        return taken

    def streams_wait_events(
        self, handles: Sequence[Handle], events: Sequence[int], timeout_us: int | None
    ) -> list[int]:
        """Wait until one of ``handles`` is ready for its ``events`` (WAIT_* flags).

        Returns the ready flags per handle, all zero on timeout.  ``timeout_us`` None waits
        without bound.  A TLS handle holding decrypted bytes is readable at once, without
        asking the host; one whose session has failed (bad record, failed handshake) is
        reported with ``WAIT_ERROR``, so a waiter over many handles learns which one broke.
        A connecting end whose handshake is still running is waited for first (within the
        timeout): until it ends, the end has no readiness of its own.
        """
        if len(handles) != len(events):
            raise PalError(PalErrorCode.INVAL, "handles and events differ in length")
        if timeout_us is not None and timeout_us < 0:
            raise PalError(PalErrorCode.INVAL, f"timeout_us must be >= 0, got {timeout_us}")
        ready = [0] * len(handles)
        deadline = None if timeout_us is None else time.monotonic() + timeout_us / 1e6
        for h in handles:
            # An end whose handshake is still running on its helper has no readiness to
            # report yet (its socket carries handshake bytes): wait for the handshake.
            if isinstance(h, Handle) and h._ready is not None and not h._ready.is_set():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not h._ready.wait(remaining):
                    return ready
        if deadline is not None:
            timeout_us = max(0, int((deadline - time.monotonic()) * 1e6))
        local = False
        for i, (h, ev) in enumerate(zip(handles, events, strict=True)):
            if isinstance(h, Handle) and h._failure is None and not h.closed:
                with contextlib.suppress(PalError):
                    self._verify(h)  # a descriptor gone or replaced fails the handle
            if isinstance(h, Handle) and h._failure is not None and not h.closed:
                # A broken handle (a failed TLS session, a descriptor the host closed or
                # replaced) is an error to report, not raise, and is never polled.
                ready[i] = WAIT_ERROR
                local = True
                continue
            self._check(h)
            session = h._tls
            if ev & WAIT_READ and session is not None and session.buffered:
                ready[i] = WAIT_READ
                local = True
        if local:
            return ready
        # One registration per descriptor: poll() keeps only the last mask given for an fd,
        # and the same descriptor may come twice (once for read, once for write).
        masks: dict[int, int] = {}
        for h, ev in zip(handles, events, strict=True):
            mask = 0
            if ev & WAIT_READ:
                mask |= select.POLLIN
            if ev & WAIT_WRITE:
                mask |= select.POLLOUT
            if ev & WAIT_PRI:
                mask |= select.POLLPRI
            if ev & WAIT_RDHUP:
                mask |= select.POLLRDHUP
            masks[h._fd] = masks.get(h._fd, 0) | mask
        poller = select.poll()
        for fd, mask in masks.items():
            poller.register(fd, mask)
        timeout_ms = None if timeout_us is None else (timeout_us + 999) // 1000
        self._count("poll")
        try:
            polled = poller.poll(timeout_ms)
        except OSError as exc:
            raise _from_oserror(exc, "poll") from None
        by_fd: dict[int, int] = {}
        for fd, rev in polled:
            by_fd[fd] = by_fd.get(fd, 0) | rev
        for i, (h, ev) in enumerate(zip(handles, events, strict=True)):
            rev = by_fd.get(h._fd, 0)
            flags = 0
            if rev & select.POLLIN and ev & WAIT_READ:
                flags |= WAIT_READ
            if rev & select.POLLPRI and ev & WAIT_PRI:
                flags |= WAIT_PRI
            if rev & select.POLLRDHUP and ev & WAIT_RDHUP:
                flags |= WAIT_RDHUP
            if rev & select.POLLOUT and ev & WAIT_WRITE:
                flags |= WAIT_WRITE
            if rev & (select.POLLERR | select.POLLNVAL):
                flags |= WAIT_ERROR
            if rev & select.POLLHUP:
                flags |= WAIT_HANG_UP
            ready[i] = flags
        return ready

    # -- edge watches ------------------------------------------------------------------
    #
    # The LibOS's epoll reports an edge-triggered descriptor again whenever new data (or
    # room, or a hang-up) arrives, as Linux does.  Gramine learns of edges by watching the
    # program's reads and writes, which all pass through it; here the program reads its
    # own descriptors directly, so only the host kernel sees the edges.  An edge watch is
    # a host epoll with every descriptor in EPOLLET mode: the kernel queues a descriptor
    # whenever it is woken, and a take reports its full readiness at that moment, exactly
    # what an EPOLLET registration of the program's would report.  The watch's handle is
    # readable while something is queued, so it is waited on with streams_wait_events
    # beside the other handles, and taken from only when it wakes.

    def edge_watch_open(self) -> Handle:
        """A new edge watch (one host call: ``epoll_create``)."""
        if self.closed:
            raise PalError(PalErrorCode.BADHANDLE, "host is shut down")
        self._count("epoll_create")
        try:
            epoll = _host_epoll()
        except OSError as exc:
            raise _from_oserror(exc, "epoll_create") from None
        handle = Handle(HandleKind.EDGES, "edges:", raw=True, nonblocking=True, fd=epoll.fileno())
        handle._epoll = epoll
        return self._track(handle)

    def edge_watch_add(
        self, watch: Handle, handle: Handle, events: int, *, oneshot: bool = False
    ) -> None:
        """Watch ``handle`` (from ``stream_from_fd``) for edges of ``events`` (WAIT_*
        flags), or change what is watched if it is watched already.  Like ``epoll_ctl``,
        this queues the descriptor at once if it is ready now.  With ``oneshot`` it is
        queued once, then not again until the next ``edge_watch_add``."""
        self._check(watch, HandleKind.EDGES)
        self._check(handle, HandleKind.FD)
        assert watch._epoll is not None
        mask = select.EPOLLET | (select.EPOLLONESHOT if oneshot else 0)
        for flag, bit in _EPOLL_BITS:
            if events & flag and not flag & (WAIT_ERROR | WAIT_HANG_UP):
                mask |= bit
        # Known before the kernel can queue it, or a take would drop it as forged.
        previous = watch._watched.get(handle._fd)
        watch._watched[handle._fd] = handle
        self._count("epoll_ctl")
        try:
            try:
                watch._epoll.register(handle._fd, mask)
            except FileExistsError:
                watch._epoll.modify(handle._fd, mask)
        except (OSError, ValueError) as exc:
            if watch._watched.get(handle._fd) is handle:
                if previous is None:
                    del watch._watched[handle._fd]
                else:
                    watch._watched[handle._fd] = previous
            if isinstance(exc, OSError):
                raise _from_oserror(exc, f"{handle.uri}: epoll_ctl") from None
            # ValueError: the watch was closed by another thread.
            raise PalError(PalErrorCode.BADHANDLE, "edge watch is closed") from None

    def edge_watch_remove(self, watch: Handle, handle: Handle) -> None:
        """Stop watching ``handle``.  A descriptor the program has closed already left
        the watch then (the kernel drops it), so that is no error."""
        self._check(watch, HandleKind.EDGES)
        assert watch._epoll is not None
        if watch._watched.get(handle._fd) is handle:
            del watch._watched[handle._fd]
        self._count("epoll_ctl")
        try:
            watch._epoll.unregister(handle._fd)
        except (FileNotFoundError, ValueError):
            pass  # not watched (any more), or the watch closed meanwhile
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise _from_oserror(exc, f"{handle.uri}: epoll_ctl") from None

    def edge_watch_take(self, watch: Handle, max_events: int) -> list[tuple[Handle, int]]:
        """Up to ``max_events`` queued edges, without waiting: each watched handle with
        its readiness now (WAIT_* flags).  What is left stays queued for the next take.
        A descriptor the host names that is not watched is left out, and taken out of
        the watch."""
        self._check(watch, HandleKind.EDGES)
        assert watch._epoll is not None
        self._count("epoll_wait")
        try:
            got = watch._epoll.poll(0, max_events)
        except OSError as exc:
            raise _from_oserror(exc, "epoll_wait") from None
        except ValueError:
            raise PalError(PalErrorCode.BADHANDLE, "edge watch is closed") from None
        edges: list[tuple[Handle, int]] = []
        for fd, mask in got:
            handle = watch._watched.get(fd)
            if handle is None:
                # Not ours: the host put it there.  Left in, it could keep the watch
                # readable for ever and its waiters spinning; so it goes.
                self._count("epoll_ctl")
                with contextlib.suppress(OSError, ValueError):
                    watch._epoll.unregister(fd)
                continue
            if handle.closed:
                continue
            flags = 0
            for flag, bit in _EPOLL_BITS:
                if mask & bit:
                    flags |= flag
            edges.append((handle, flags))
        return edges

    def descriptor_number(self, handle: Handle) -> int:
        """The number of the host descriptor behind ``handle``, for the LibOS to show a
        program the object it stands for (an epoll's ``fileno()``).  Knowing the number
        gives no way to act on the descriptor: that stays with the PAL."""
        self._check(handle)
        return handle._fd

    # -- teardown --------------------------------------------------------------------

    def delete(self, handle: Handle) -> None:
        """Shut a connected pipe down both ways (``PalStreamDelete``); the peer sees end of
        stream (after a TLS close_notify, on an encrypted pipe)."""
        self._check(handle, HandleKind.PIPE, failed_ok=True)
        assert handle._sock is not None
        if handle._ready is not None and not handle.nonblocking:
            # A blocking end lets its handshake end first (its helper keeps the
            # handshake's deadline), so the peer gets a close_notify, not a cut.
            handle._ready.wait(self.handshake_timeout)
        if handle._tls is not None and handle._failure is None:
            self._say_goodbye(handle)
        handle._deleted = True
        self._count("shutdown")
        try:
            handle._sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise _from_oserror(exc, f"{handle.uri}: shutdown") from None

    def close(self, handle: Handle) -> None:
        """Release a handle.  Closing a closed handle does nothing.

        An encrypted pipe end tells its peer with a TLS close_notify, so the peer can tell
        a close from a host that cut the stream.
        """
        self._close(handle, _HELPER_JOIN_S)

    def _close(self, handle: Handle, helper_wait: float) -> None:
        if not isinstance(handle, Handle):
            raise PalError(PalErrorCode.BADHANDLE, f"not a PAL handle: {handle!r}")
        with self._lock:
            if handle.closed:
                return
            handle.closed = True
            self._handles.discard(handle)
        self._release(handle, helper_wait)

    def _release(self, handle: Handle, helper_wait: float) -> None:
        """Free what a handle just marked closed holds."""
        helper = handle._helper
        if helper is not None and handle._sock is not None:
            if handle._ready is not None and not handle._ready.is_set():
                # Wake a handshake still in progress, so its thread ends before the fd goes.
                self._count("shutdown")
                with contextlib.suppress(OSError):
                    handle._sock.shutdown(socket.SHUT_RDWR)
            helper.join(helper_wait)
            handle._helper = None
        if not handle._owns_fd:
            return
        ours = self._still_ours(handle)
        if ours and handle._tls is not None and handle._failure is None:
            self._say_goodbye(handle)
        # A closed handle keeps nothing of its session: the TLS contexts are large (about
        # 100 KiB with mbed TLS), and a finished thread's event may be kept long after.
        handle._tls = None
        if not ours:
            # The number is no longer ours: forget it, never close it.
            if handle._sock is not None:
                handle._sock.detach()
            if handle._epoll is not None:
                _never_close(handle._epoll)
            return
        if isinstance(handle._ident, _EventfdRegistry):
            handle._ident.remove(handle._fd)
        self._count("close")
        try:
            if handle._sock is not None:
                handle._sock.close()
            elif handle._epoll is not None:
                handle._epoll.close()
            else:
                os.close(handle._fd)
        except OSError:
            pass  # the host closed it between the check and here: nothing of ours is left

    def _say_goodbye(self, handle: Handle) -> None:
        """Best effort, never blocking: send close_notify on an established session.

        Skipped when a writer holds the handle (it is mid-send) or a sealed record is
        parked in ``_out``: its plaintext was never reported written, and a close_notify
        sealed after it would not authenticate without it.  The peer then sees the stream
        end without close_notify, which it reports as a cut stream, as it should.
        """
        assert handle._sock is not None and handle._tls is not None
        ready = handle._ready
        if ready is None or not ready.is_set() or handle._goodbye:
            return
        if not handle._write_lock.acquire(blocking=False):
            return
        try:
            if handle._out:
                return
            handle._goodbye = True
            with handle._tls_lock:
                alert = handle._tls.close_notify()
            if alert:
                with contextlib.suppress(OSError):
                    handle._sock.setblocking(False)
                    self._count("send")
                    handle._sock.send(alert)
        finally:
            handle._write_lock.release()

    # -- threads ---------------------------------------------------------------------

    def thread_create(
        self,
        fn: Callable[..., object],
        *args: Any,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        """Start ``fn(*args)`` on a new host thread (``PalThreadCreate``).

        ``record``, if given, is called with the thread just before it starts, where a
        Ctrl-C cannot come between: a caller interrupted during ``thread_create`` knows
        the thread started if and only if ``record`` was called (and no ``PalError``
        followed).  The thread is the host's either way: ``shutdown`` joins it.
        """
        return self._spawn(
            fn, args, helper=False, name=getattr(fn, "__name__", "pal-thread"), record=record
        )

    def thread_start(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        *,
        name: str,
        joinable: tuple[object, bool] | None = None,
        reraise: bool = False,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        """``thread_create`` with the interpreter's own options, for a thread the program
        starts: ``joinable=(handle, daemon)`` starts it with ``_thread.start_joinable_thread``
        on that handle (Python 3.13+); ``reraise`` lets an exception escaping ``fn``
        reach the interpreter, which reports it as it does for its own threads.
        ``record`` as for ``thread_create``."""
        return self._spawn(
            fn,
            args,
            helper=False,
            name=name,
            joinable=joinable,
            reraise=reraise,
            record=record,
        )

    def _spawn(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        *,
        helper: bool,
        name: str,
        joinable: tuple[object, bool] | None = None,
        reraise: bool = False,
        record: Callable[[PalThread], object] | None = None,
    ) -> PalThread:
        if self.closed:
            raise PalError(PalErrorCode.BADHANDLE, "host is shut down")
        if helper:
            # A helper works for its creator: its host calls are the creator's.
            self.thread_calls()
            args = (self._accounts.calls, fn, *args)
            fn = self._charge_to
        thread = PalThread(
            fn, args, self._thread_exited, name, helper, joinable=joinable, reraise=reraise
        )
        deadline = time.monotonic() + self.slot_timeout
        while True:
            # The wait for a slot is outside the critical section (a Ctrl-C stops it);
            # taking the slot, the record and the start are inside, so an interrupt
            # finds either none of them done or all.
            self._await_slot(deadline, helper)
            entered = _interrupts.enter()
            try:
                if not self._take_slot(thread):
                    continue  # taken by another thread in the meantime
                with self._lock:
                    self._threads.add(thread)
                if record is not None:
                    record(thread)
                self._count("clone_thread")
                try:
                    thread.start()
                except RuntimeError as exc:
                    self._thread_exited(thread)
                    raise PalError(
                        PalErrorCode.NOMEM, f"cannot start a host thread: {exc}"
                    ) from None
                return thread
            finally:
                _interrupts.leave(entered)

    def _thread_exited(self, thread: PalThread) -> None:
        with self._lock:
            self._threads.discard(thread)
        self._release_thread(thread)

    def open_handles(self) -> list[Handle]:
        with self._lock:
            return list(self._handles)

    def live_threads(self) -> list[PalThread]:
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Close every handle still open and wait for the host's threads, all within
        ``timeout`` seconds overall.

        Threads of the LibOS may be asleep in ``streams_wait_events`` on these handles.
        Closing a descriptor does not wake a ``poll()`` already sleeping on it (the kernel
        keeps the file alive for the poller), so every handle is first made ready: a
        socket is shut down both ways (readable, hung up) and an eventfd gets a count.  A
        woken waiter finds its handle closed and fails with ``BADHANDLE``.  Threads still
        running when the time is up are left running (no thread can be killed); they hold
        no handle of this host any more.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self.closed = True
        if self._sigint:
            self._sigint = False
            _interrupts.uninstall()
        # Closed first, woken next: a waiter that wakes (even one that drains the wakeup
        # from an eventfd) finds its handle closed on its next call, and cannot go back
        # to sleep on it.
        with self._lock:
            handles, self._handles = list(self._handles), set()
            for handle in handles:
                handle.closed = True
        for handle in handles:
            self._wake(handle)
        for handle in handles:
            self._release(handle, max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
            registry, self._eventfds = self._eventfds, False
        if isinstance(registry, _EventfdRegistry):
            registry.close()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _wake(self, handle: Handle) -> None:
        """Make ``handle`` ready for any poller, before it is closed under it."""
        if not handle._owns_fd or not self._still_ours(handle):
            return  # a number no longer ours is not touched
        with contextlib.suppress(OSError):
            if handle._sock is not None:
                self._count("shutdown")
                handle._sock.shutdown(socket.SHUT_RDWR)
            elif handle.kind is HandleKind.EVENTFD:
                os.set_blocking(handle._fd, False)  # a full counter must not stall us
                self._count("write")
                os.eventfd_write(handle._fd, 1)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} instance={self.instance}>"
