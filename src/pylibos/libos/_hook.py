"""The LibOS under the program: the interpreter's thread start and ``select.epoll``.

In Gramine the application's thread library sits above the LibOS: glibc's
``pthread_create`` calls the LibOS's ``clone``, which asks the PAL for a host thread.
Here the program's thread library is ``threading`` (and whoever calls ``_thread``
directly), and while a ``Hook`` is installed its low-level thread start is the LibOS's
clone path::

    3.11, 3.12   Thread.start -> threading._start_new_thread(self._bootstrap, ())
    3.13+        Thread.start -> threading._start_joinable_thread(self._bootstrap,
                                     handle=self._handle, daemon=self.daemon)
    any          _thread.start_new_thread(function, args[, kwargs])

``threading`` copies these functions into its own namespace when it is imported, so the
hook replaces the ``threading`` attributes as well as the ``_thread`` ones.  Each
replacement runs the clone path (tid, pollable event, PAL thread create, the phase
profile) and returns what the original returns: an ident, or on 3.13 the thread handle,
started on the handle ``threading`` made (the PAL starts the host thread with the
interpreter's own primitive).  Everything ``threading`` does around the primitive is left
alone (its ``Thread`` objects, ``current_thread``, ``enumerate``, ``excepthook``, locals,
joining through the thread-state lock or handle, waiting for non-daemon threads at exit),
so a program sees what it sees natively.  An exception escaping a thread started through
``_thread`` reaches the interpreter, which reports it as it does natively.

Not reached: a copy of a function taken before ``install`` (``from _thread import
start_new_thread``), and threads C code starts with ``PyThread_start_new_thread``.  Those
threads run natively; the LibOS adopts one the first time it uses the LibOS
(``LibOS.current_thread``, e.g. through epoll), as Gramine meets a thread it did not create.

``select.epoll`` is replaced by a class named as it is (``select.epoll``, with ``fromfd``)
that makes LibOS epolls and that ``isinstance`` accepts a LibOS or native epoll against, and so is
``selectors.EpollSelector._selector_cls``, which ``selectors`` bound to ``select.epoll``
at import: ``selectors.DefaultSelector`` is ``EpollSelector`` on Linux, so asyncio's
default event loop polls through the LibOS too.

The replacements stay callable after ``uninstall`` (the program may hold one, or another
hook installed later may call through to it): they then do what the original does.  One
hook is installed at a time.  ``LibOS.shutdown`` uninstalls its hook first, so thread
starts after it are native ones and never reach a LibOS that is gone.  A start refused by
the LibOS (no thread slot, no descriptor for the event, shut down meanwhile) raises
``RuntimeError``, what the primitive raises when the OS refuses a thread; ``threading``
undoes its own bookkeeping for it.
"""

from __future__ import annotations

import _thread
import functools
import itertools
import os
import select
import selectors
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..pal import (
    ShutDownError,
    critical_deliver,
    critical_owed,
    marks_critical_sections_from_entry,
)
from ._epoll import Epoll
from ._thread import UNRAISABLE_ARGS

if TYPE_CHECKING:
    from ._libos import LibOS
    from ._thread import LibOSThread

# The interpreter's originals, bound before any hook can replace them.
_ORIGINAL_START = _thread.start_new_thread
_ORIGINAL_JOINABLE: Callable[..., Any] | None = getattr(_thread, "start_joinable_thread", None)
_ORIGINAL_EPOLL: Any = select.epoll

# Where ``sys.UnraisableHookArgs`` could not be had, a failure escaping a thread started
# through ``_thread`` is raised again for the interpreter to report (``reraise``).
_REPORTS_ITSELF = UNRAISABLE_ARGS is None

_install_lock = threading.Lock()
# Guarded by _install_lock.
_current: Hook | None = None


def _after_fork_in_child() -> None:
    # A parent's thread may have been installing or uninstalling at the fork: the child,
    # which has no such thread, would wait for the lock for ever (its LibOS's shutdown
    # uninstalls).
    global _install_lock
    _install_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def installed() -> Hook | None:
    """The hook installed now, if any."""
    return _current


class _EpollFactory(type):
    """The type of the class that stands in for ``select.epoll`` while a hook is installed.

    The stand-in is a class, as ``select.epoll`` is: named ``select.epoll``, with
    ``fromfd``; calling it makes a LibOS epoll of that class (a subclass of ``Epoll``
    adding nothing, so ``type(select.epoll()) is select.epoll`` as natively), and
    ``isinstance`` / ``issubclass`` against it accept a LibOS epoll and a native one
    (made before ``install``, or after ``uninstall``, when the stand-in makes native
    ones).  It cannot be subclassed, as ``select.epoll`` cannot.
    """

    _hook: Hook

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        hook = cls._hook
        if not hook.installed:
            return _ORIGINAL_EPOLL(*args, **kwargs)
        ep = hook.libos.epoll(*args, **kwargs)
        ep.__class__ = cls  # type: ignore[assignment]  # (a subclass of Epoll adding nothing)
        return ep

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, (Epoll, _ORIGINAL_EPOLL))

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, (Epoll, _ORIGINAL_EPOLL))

    def __repr__(cls) -> str:
        return f"<class 'select.epoll' of {cls._hook.libos!r}>"


def _epoll_fromfd(cls: Any, fd: int) -> Any:
    if not cls._hook.installed:
        return _ORIGINAL_EPOLL.fromfd(fd)
    ep = Epoll.fromfd(fd)
    ep.__class__ = cls
    return ep


def _no_subclass(cls: Any, /, **kwargs: Any) -> None:
    raise TypeError("type 'select.epoll' is not an acceptable base type")


def _epoll_class(hook: Hook) -> _EpollFactory:
    """A ``select.epoll`` stand-in for ``hook``."""
    return _EpollFactory(
        "epoll",
        (Epoll,),
        {
            "__module__": _ORIGINAL_EPOLL.__module__,
            "__qualname__": _ORIGINAL_EPOLL.__qualname__,
            "__doc__": _ORIGINAL_EPOLL.__doc__,
            "__slots__": (),
            "_hook": hook,
            "fromfd": classmethod(_epoll_fromfd),
            # ``select.epoll`` cannot be subclassed: a class made over the stand-in is
            # refused as it would be natively.
            "__init_subclass__": classmethod(_no_subclass),
        },
    )


class Hook:
    """The LibOS installed as the interpreter's thread starter and ``select.epoll``.

    ``threads_created`` counts the threads started through the LibOS while installed.
    Use it as a context manager, or call ``install`` and ``uninstall``.
    """

    def __init__(self, libos: LibOS) -> None:
        self.libos = libos
        self.installed = False
        # Advanced once per thread started through the LibOS: ``next`` on an
        # itertools.count is one C call, whole under the GIL, so no lock is needed.
        self._created = itertools.count()
        self._epoll_factory = _epoll_class(self)
        self._replaced: list[tuple[object, str, object, object]] = []

    # -- install / uninstall ---------------------------------------------------------

    def _replacements(self) -> list[tuple[object, str, object]]:
        out: list[tuple[object, str, object]] = [
            (_thread, "start_new_thread", self._start_new_thread),
            (_thread, "start_new", self._start_new_thread),
            (select, "epoll", self._epoll_factory),
            (selectors.EpollSelector, "_selector_cls", staticmethod(self._epoll_factory)),
        ]
        if "_start_new_thread" in vars(threading):
            out.append((threading, "_start_new_thread", self._start_new_thread))
        if _ORIGINAL_JOINABLE is not None:
            out.append((_thread, "start_joinable_thread", self._start_joinable_thread))
            if "_start_joinable_thread" in vars(threading):
                out.append((threading, "_start_joinable_thread", self._start_joinable_thread))
        return out

    def install(self) -> Hook:
        """Replace the thread start and epoll; all or nothing.  Returns ``self``."""
        global _current
        with _install_lock:
            if self.installed:
                raise RuntimeError("this hook is already installed")
            if _current is not None:
                raise RuntimeError(
                    f"a thread-start hook is already installed, for {_current.libos!r}"
                )
            if self.libos.closed:
                raise ShutDownError("the LibOS is shut down")
            if self.libos._hook is not None:
                raise RuntimeError("this LibOS already has a hook")
            done: list[tuple[object, str, object, object]] = []
            try:
                for owner, name, new in self._replacements():
                    done.append((owner, name, vars(owner)[name], new))
                    setattr(owner, name, new)
                self._replaced = done
                self.libos._hook = self
                self.installed = True
                _current = self
            except BaseException:
                self._restore(done)
                self.libos._hook = None
                self.installed = False
                raise
        return self

    @staticmethod
    def _restore(done: list[tuple[object, str, object, object]]) -> None:
        for owner, name, old, new in reversed(done):
            # A later replacement someone made over ours stays: ours, called through it,
            # does what the original does once uninstalled.
            if vars(owner).get(name) is new:
                setattr(owner, name, old)

    def uninstall(self) -> None:
        """Put the originals back.  Threads already started run on.  Every step can be
        repeated, so a call cut short (Ctrl-C) is finished by calling it again."""
        global _current
        with _install_lock:
            self._restore(self._replaced)
            self.installed = False
            if self.libos._hook is self:
                self.libos._hook = None
            if _current is self:
                _current = None
            self._replaced = []

    @property
    def threads_created(self) -> int:
        """Threads started through the LibOS while installed."""
        # The count's repr, ``count(N)``, reads it without advancing it.
        return int(repr(self._created)[6:-1])

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        state = "installed" if self.installed else "not installed"
        return f"<Hook {self.libos!r} {state}, {self.threads_created} threads>"

    # -- the replacements ------------------------------------------------------------

    # A KeyboardInterrupt between any two bytecodes of a replacement, or from a wait
    # inside the LibOS, leaves one of two states, told apart by ``started``: no thread
    # runs, and the ``threading.Thread`` being started is taken out of
    # ``threading._limbo`` (``Thread.start`` does that only for an ``Exception``, and
    # natively no interruption falls inside the primitive); or the thread runs and takes
    # itself out of ``_limbo`` as it starts, as it does natively when the interruption
    # arrives just after the primitive returned.
    #
    # Each replacement is one flat path to ``LibOS._clone`` (positional arguments, the
    # errors mapped in place): it runs on every thread the program starts.
    #
    # A replacement is in a Ctrl-C-safe section from its first bytecode to the first line
    # of its ``try`` (``marks_critical_sections_from_entry``): an interrupt landing before
    # the ``try`` is held back and raised inside it, where ``_not_started`` undoes it.
    # ``started`` is None on the interpreter's own start (the hook uninstalled under a
    # caller that still holds the replacement): its errors go out as they come.

    @marks_critical_sections_from_entry
    def _start_new_thread(
        self,
        function: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
        /,
    ) -> int:
        started: list[LibOSThread] | None = []
        try:
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if not self.installed:
                started = None
                if kwargs is None:
                    return _ORIGINAL_START(function, args)
                return _ORIGINAL_START(function, args, kwargs)
            # The primitive's own checks and messages, before any LibOS work.
            if not callable(function):
                raise TypeError("first arg must be callable")
            if not isinstance(args, tuple):
                raise TypeError("2nd arg must be a tuple")
            fn = function
            if kwargs is not None:
                if not isinstance(kwargs, dict):
                    raise TypeError("optional 3rd arg must be a dictionary")
                if kwargs:
                    fn = functools.partial(function, **kwargs)
            # A failure is reported against ``function``, as the interpreter does; where
            # that cannot be had, the interpreter reports it itself (``reraise``: then
            # ``unraisable`` is not used).
            pal = self.libos._clone(
                fn, args, None, function, None, _REPORTS_ITSELF, function, started
            )._pal
        except BaseException as exc:
            self._not_started(exc, started, function)
            raise
        next(self._created)
        return pal.ident  # type: ignore[union-attr,return-value]  # set: the thread runs

    @marks_critical_sections_from_entry
    def _start_joinable_thread(
        self, function: Callable[..., object], /, handle: object = None, daemon: bool = True
    ) -> object:
        started: list[LibOSThread] | None = []
        try:
            installed = self.installed  # (still in the section: a Ctrl-C waits a line)
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
            if installed:
                if not callable(function):
                    raise TypeError("thread function must be callable")
                pal = self.libos._clone(
                    function, (), None, function, (handle, bool(daemon)), True, None, started
                )._pal
            else:
                started = None
                assert _ORIGINAL_JOINABLE is not None
                return _ORIGINAL_JOINABLE(function, handle=handle, daemon=daemon)
        except BaseException as exc:
            self._not_started(exc, started, function)
            raise
        next(self._created)
        return pal.handle  # type: ignore[union-attr]  # set: the thread runs

    def _not_started(
        self, exc: BaseException, started: list[LibOSThread] | None, function: object
    ) -> None:
        """After ``exc`` came out of a start: a refusal becomes the primitive's
        ``RuntimeError``; after a KeyboardInterrupt (or another non-``Exception``), count
        the thread if it runs all the same, else undo what ``threading`` did for it.  On
        the interpreter's own start (``started`` None) nothing: it is as native."""
        if started is None:
            return
        if isinstance(exc, OSError):
            raise RuntimeError(f"can't start new thread: {exc}") from exc
        if isinstance(exc, RuntimeError):  # the LibOS shut down under a start in flight
            raise RuntimeError(f"can't start new thread: {exc}") from None
        if isinstance(exc, Exception):
            return  # the primitive's own checks
        if started and started[0]._pal is not None:
            next(self._created)
        else:
            _forget_unstarted(function)


def _forget_unstarted(fn: object) -> None:
    """Take a ``threading.Thread`` whose start was interrupted, before any thread
    existed for it, out of ``threading._limbo``, as ``Thread.start`` does on failure."""
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, threading.Thread):
        return
    limbo: dict[threading.Thread, threading.Thread] = threading._limbo  # type: ignore[attr-defined]
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        limbo.pop(owner, None)


def install(libos: LibOS) -> Hook:
    """Install ``libos`` under the program's threads and epoll; see ``Hook``."""
    return Hook(libos).install()
