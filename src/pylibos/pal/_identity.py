"""Descriptor identity: the PAL acts only on descriptors that are still its own.

The host owns the descriptor table.  It can close a descriptor the PAL holds, and the
number is then handed to the next object anyone opens: a socket of the program, or the
channel the LibOS opens to replace the broken one.  Acting on the number then reads,
writes or closes that other object.  So each handle keeps the identity of its descriptor
from its opening (a socket's cookie, a number the kernel never reuses; else device and
inode, from fstat) and the PAL compares it before it acts.  A descriptor that is gone or
is now something else fails the handle, for good, and its number is never touched again
(close only forgets it).  Every eventfd shares the kernel's one anonymous inode, so
eventfds are told apart by an epoll instance that holds them all (``EventfdRegistry``),
where kcmp is to be had.  The check and the action are two system calls; the kernel
offers no way to make them one, so the check narrows the window to the gap between them.
(A real SGX host answers these calls as it likes: there only the channel's content,
none, or its TLS, protects the enclave.  Here the kernel is honest and the host is
another process or a test, so the check is sound.)  It is not counted as a host call:
Gramine's PAL makes no such OCALL.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import platform
import select
import socket
from collections.abc import Callable
from typing import Any

from ._errors import PalError, PalErrorCode
from ._handle import Handle

Aside = Callable[..., Any]
"""The ledger's ``_aside`` gate: ``aside(syscall, where, fn, *args)``."""

# The host's epoll, taken at import: under ``pylibos run`` the program's ``select.epoll``
# is the LibOS's, which stands on this one.
HOST_EPOLL = select.epoll


class _KcmpEpollSlot(ctypes.Structure):
    _fields_ = (("efd", ctypes.c_uint32), ("tfd", ctypes.c_uint32), ("toff", ctypes.c_uint32))


_byref = ctypes.byref
_getpid = os.getpid
_SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
_KCMP_EPOLL_TFD = 7
# What kcmp fails with where it is not to be had: no such system call, a seccomp filter
# or ptrace rules, a kernel before KCMP_EPOLL_TFD (4.13).
_KCMP_MISSING = frozenset({errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EINVAL, errno.EOPNOTSUPP})
_RESOURCE = {errno.ENOMEM: PalErrorCode.NOMEM, errno.EMFILE: PalErrorCode.TOOMANY}


class EventfdRegistry:
    """Tells an eventfd of ours from any other object at its number.

    Every eventfd shares the kernel's one anonymous inode, so fstat cannot tell two apart.
    An epoll instance can: each eventfd the PAL opens is registered in this one (for no
    events), and ``kcmp(KCMP_EPOLL_TFD)`` then says whether the file now at a number is
    the file registered under that number.  One descriptor per host, one epoll_ctl at
    open and at close, one kcmp per check.  Its system calls go through the ledger's
    ``_aside`` gate (``aside``): they are the PAL's bookkeeping, not host calls.

    An entry outlives the number it was made under when the host keeps a copy of the
    file, so a number can hold two entries: the old file's and that of the eventfd of
    ours that got the number next.  kcmp then finds the file at the number among the
    entries, whichever handle it belongs to.  So the registry also knows which handle
    holds each number: a handle that opens at a number takes it, before its own entry is
    made, and the check (``check``) fails a handle that no longer holds its number (its
    descriptor was closed, or the kernel could not have handed the number out again).
    Taking a number and giving it back are single dict operations, one step each under
    the interpreter's lock; a give-back racing with a take can only drop the new
    holder's claim, which then fails it (never the other way round), and only where the
    host closed the old holder's descriptor under it.
    """

    def __init__(self, aside: Aside) -> None:
        self._gate = aside
        self._epoll: select.epoll = aside("epoll_create1", "eventfd registry", HOST_EPOLL)
        self._efd = self._epoll.fileno()
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall
        self._pid = os.getpid()
        self._kcmp_epoll_tfd = functools.partial(
            self._syscall, _SYS_KCMP, self._pid, self._pid, _KCMP_EPOLL_TFD
        )
        self._holders: dict[int, Handle] = {}  # number -> the handle of ours holding it
        self._abandoned = False  # ``abandon``: its number is not ours any more
        # number -> kcmp's last argument for the number's first entry (``toff`` 0), made
        # at the number's first check and kept: read-only, so threads share it, and one
        # per number the process has used (the descriptor table bounds them).
        self._first: dict[int, Any] = {}

    def _first_entry(self, fd: int) -> Any:
        """kcmp's argument naming the first entry registered under ``fd``."""
        ref = self._first.get(fd)
        if ref is None:
            ref = self._first[fd] = _byref(_KcmpEpollSlot(self._efd, fd, 0))
        return ref

    @classmethod
    def make(cls, aside: Aside) -> EventfdRegistry | None:
        """A registry, or None where kcmp is not to be had (another architecture, a
        kernel without it, or a seccomp filter): eventfds are then checked by inode only.
        A host that refuses the registry a resource (no descriptor free, no epoll watch)
        fails this call with the ``PalError`` it means, and the next call tries again: a
        refusal for an instant must not turn identity off for good."""
        if _SYS_KCMP is None:
            return None
        try:
            registry = cls(aside)
        except PalError as exc:
            if exc.code in (PalErrorCode.TOOMANY, PalErrorCode.NOMEM):
                raise
            return None  # epoll itself refused (a seccomp filter): not to be had
        try:
            fd = aside("eventfd2", "eventfd registry", os.eventfd, 0, os.EFD_CLOEXEC)
            try:
                registry.add(fd)
                works = registry._kcmp_works(fd)
                registry.remove(fd)
            finally:
                aside("close", "eventfd registry", os.close, fd)
        except BaseException:
            registry.close()
            raise
        if not works:
            registry.close()
            return None
        return registry

    def _kcmp_works(self, fd: int) -> bool:
        """Whether kcmp tells the file registered under ``fd`` (just registered): False
        where the kernel has no kcmp (or no ``KCMP_EPOLL_TFD``) or a filter refuses it;
        any other failure raises, to be tried again."""
        ret = self._kcmp_epoll_tfd(fd, _byref(_KcmpEpollSlot(self._efd, fd, 0)))
        if ret == 0:
            return True
        err = ctypes.get_errno() if ret < 0 else 0
        if ret > 0 or err in _KCMP_MISSING:
            return False
        raise PalError(
            _RESOURCE.get(err, PalErrorCode.DENIED),
            f"eventfd registry: kcmp: {os.strerror(err)}",
        )

    def add(self, fd: int, holder: Handle | None = None) -> None:
        """Register the file at ``fd``; ``holder``: the handle just opened on it.  A
        holder takes its number before its file is registered (``check`` relies on it);
        a refused watch gives the number back."""
        if holder is not None:
            self._holders[fd] = holder
        try:
            self._gate("epoll_ctl", "eventfd registry", self._epoll.register, fd, 0)
        except (PalError, ValueError) as exc:
            if holder is not None and self._holders.get(fd) is holder:
                self._holders.pop(fd, None)
            if isinstance(exc, ValueError):  # closed by shutdown
                raise PalError(PalErrorCode.BADHANDLE, "eventfd registry: closed") from None
            raise

    def remove(self, fd: int, holder: Handle | None = None) -> None:
        """Unregister the file at ``fd``; ``holder``: the handle closing it."""
        if holder is not None and self._holders.get(fd) is holder:
            self._holders.pop(fd, None)
        # On every eventfd's close: a bare try costs nothing, ``contextlib.suppress`` ~0.4 µs.
        try:  # noqa: SIM105
            self._gate("epoll_ctl", "eventfd registry", self._epoll.unregister, fd)
        except (PalError, ValueError):  # ValueError: the registry is closed
            pass

    def check(self, handle: Handle) -> bool | None:
        """True if ``handle`` still holds its number and the file there is the one
        registered under it; False if not; None if its descriptor is closed."""
        fd = handle._fd
        if self._holders.get(fd) is not handle:
            return False
        # ``same``'s first kcmp, here: the one a check takes but where the host recycled
        # the number.  It names the process the registry was made in: in a forked child
        # (or after a fork made below Python, which no fork hook sees) ``same`` asks
        # about the child's descriptors instead.
        if (
            _getpid() != self._pid
            or self._kcmp_epoll_tfd(fd, self._first.get(fd) or self._first_entry(fd)) != 0
        ):
            same = self.same(fd)
            if not same:
                return same
        # The file at the number is the one registered under it; but a racing open may
        # have been given the number (the host closed ours) and registered its own file
        # after the read above.  An open takes the number before it registers, so a
        # match with its file is seen here.
        return self._holders.get(fd) is handle

    def release_here(self, handle: Handle) -> bool:
        """``check`` and then ``remove``, for a close in the process the registry was
        made in (the caller knows): True if the file at the handle's number is still
        the handle's, which is then forgotten (its descriptor is the caller's to close);
        False if not, and nothing is done."""
        fd = handle._fd
        holders = self._holders
        if holders.get(fd) is not handle:
            return False
        if self._kcmp_epoll_tfd(
            fd, self._first.get(fd) or self._first_entry(fd)
        ) != 0 and not self.same(fd):
            return False
        if holders.get(fd) is not handle:  # a racing open took the number: see check
            return False
        holders.pop(fd, None)
        try:  # noqa: SIM105 (as in remove)
            self._gate("epoll_ctl", "eventfd registry", self._epoll.unregister, fd)
        except (PalError, ValueError):
            pass
        return True

    def same(self, fd: int) -> bool | None:
        """True if ``fd`` holds the file registered under its number, False if another
        object, None if ``fd`` is closed."""
        pid = _getpid()  # this process's: in a forked child, the child's table
        slot = _KcmpEpollSlot(self._efd, fd, 0)
        ret = self._syscall(_SYS_KCMP, pid, pid, _KCMP_EPOLL_TFD, fd, _byref(slot))
        if ret == 0:
            return True
        for toff in range(1, 4):  # a number the host recycled may be registered twice
            if ret < 0:
                return None if ctypes.get_errno() == errno.EBADF else False
            slot = _KcmpEpollSlot(self._efd, fd, toff)
            ret = self._syscall(_SYS_KCMP, pid, pid, _KCMP_EPOLL_TFD, fd, _byref(slot))
            if ret == 0:
                return True
        return None if ret < 0 and ctypes.get_errno() == errno.EBADF else False

    def close(self) -> None:
        """Close the registry's epoll, unless it is gone from its number (or was
        abandoned): then the number, which may be another object's now, is left alone
        and the registry abandoned."""
        if self._abandoned or self.gone():
            self.abandon()
            return
        with contextlib.suppress(PalError):
            self._gate("close", "eventfd registry", self._epoll.close)

    def gone(self) -> bool:
        """Whether this registry's epoll is no longer at its number: the number is closed,
        or holds a file that is no epoll (someone closed the registry's descriptor under
        the PAL: the host, or a program closing every descriptor it does not know, as
        daemons do).  Asked only once a watch was refused; another epoll at the number
        cannot be told from ours, and is taken for it."""
        try:
            os.fstat(self._efd)
        except OSError:
            return True
        try:
            return os.readlink(f"/proc/self/fd/{self._efd}") != "anon_inode:[eventpoll]"
        except OSError:
            return False  # no /proc to tell by: taken for ours

    def abandon(self) -> None:
        """Give up a registry that is ``gone``, for good, and never touch its number
        again: every handle checked against it fails (no number is held any more), its
        watches and its close are refused (its gate raises), and its ``select.epoll``,
        which would close the number when freed, is kept for ever (``_STRANDED``)."""
        # The flag first (one store: a Ctrl-C after it leaves the registry abandoned for
        # ``close``, which finishes the rest), then the epoll kept from closing the number.
        self._abandoned = True
        _STRANDED.append(self._epoll)
        self._gate = _refused_gate
        self._holders.clear()

    def foreign_entry(self, efd: int, fd: int) -> bool:
        """True if the epoll at ``efd`` holds, under number ``fd``, a file that is not
        the one at ``fd`` in this process: one the host added from its own table."""
        pid = _getpid()
        for toff in range(64):
            slot = _KcmpEpollSlot(efd, fd, toff)
            ret = self._syscall(_SYS_KCMP, pid, pid, _KCMP_EPOLL_TFD, fd, ctypes.byref(slot))
            if ret < 0:
                # ENOENT: no more entries under the number.  EBADF: the number is
                # closed here (the program closed it; Linux keeps its entry while the
                # file lives on elsewhere, natively too): nothing to compare with.
                return False
            if ret != 0:
                return True
        return True  # more entries under one number than anyone of ours makes


# Host epolls whose number the host took away: a ``select.epoll`` closes its number when
# it is freed, and cannot let go of it, so these are never freed (one small object each).
_STRANDED: list[select.epoll] = []


def _refused_gate(syscall: str, where: str, fn: Callable[..., Any], *args: Any) -> Any:
    """The gate of an abandoned registry: its descriptor is not ours any more."""
    raise PalError(PalErrorCode.BADHANDLE, f"{where}: {syscall}: the registry's descriptor is gone")


def let_go(handle: Handle) -> None:
    """Forget the descriptor of a handle whose number is no longer ours, never closing it."""
    if handle._sock is not None:
        handle._sock.detach()
    if handle._epoll is not None:
        _STRANDED.append(handle._epoll)


_SO_COOKIE = getattr(socket, "SO_COOKIE", 57)  # Linux; not named by Python before 3.12


def _cookies_work() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            return len(probe.getsockopt(socket.SOL_SOCKET, _SO_COOKIE, 8)) == 8
        except OSError:
            return False


_COOKIES = _cookies_work()


def identity(handle: Handle) -> object:
    """What the descriptor under ``handle`` is: a socket's cookie (unique for the life of
    the system, cheaper than fstat), else device and inode.  Raises ``OSError`` when the
    descriptor is closed (or, asking for a cookie, is no socket)."""
    sock = handle._sock
    if sock is not None and _COOKIES:
        return sock.getsockopt(socket.SOL_SOCKET, _SO_COOKIE, 8)
    st = os.fstat(handle._fd)
    return (st.st_dev, st.st_ino)


def verify(handle: Handle) -> None:
    """Raise the handle's failure if its descriptor is gone or is now another object
    (the handle then fails for good)."""
    ident = handle._ident
    if ident is None:
        return
    if not handle._stale:
        if isinstance(ident, EventfdRegistry):
            same = ident.check(handle)
            if same:
                return
            what = (
                "the host closed its descriptor"
                if same is None
                else f"its descriptor {handle._fd} now belongs to another object"
            )
            raise _lose(handle, what)
        try:
            now = identity(handle)
        except OSError:
            what = "the host closed its descriptor, or another object has its number"
        else:
            if now == ident:
                return
            what = f"its descriptor {handle._fd} now belongs to another object"
        raise _lose(handle, what)
    assert handle._failure is not None
    raise handle._failure


def _lose(handle: Handle, what: str) -> PalError:
    """Fail ``handle`` for good: its number is no longer ours.  Returns its failure.
    The failure is set before the flag, for a thread that reads the flag first."""
    if not handle._stale:
        handle._failure = PalError(PalErrorCode.BADHANDLE, f"{handle.uri}: {what}")
        handle._stale = True
    assert handle._failure is not None
    return handle._failure


def still_ours(handle: Handle) -> bool:
    """Whether the descriptor under ``handle`` is still the one it was opened on."""
    try:
        verify(handle)
    except PalError:
        return False
    return True


def forget(handle: Handle) -> None:
    """Before the descriptor of ``handle`` is closed: drop it from its registry."""
    if isinstance(handle._ident, EventfdRegistry):
        handle._ident.remove(handle._fd, handle)
