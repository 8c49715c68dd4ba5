"""Threads the PAL creates (``PalThreadCreate``): the host's clone.

A PAL thread is started with the interpreter's own low-level primitive,
``_thread.start_new_thread``, the way Gramine's PAL issues the host's ``clone``: no
``threading.Thread`` object is made for it.  ``threading`` sits *above* the LibOS (its
thread start can be the LibOS's, see ``pylibos.libos.install``), so the PAL must reach
the primitive the interpreter had before anything replaced it: it is bound here, when
the PAL is first imported.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

# Bound at import, before a thread-start hook can replace the module attribute.
_start_new_thread = _thread.start_new_thread
_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident


class PalThread:
    """A host thread running ``fn(*args)``.

    An exception escaping ``fn`` is kept in ``exception`` for whoever joins the thread.
    The thread holds ``_done`` from before it starts until its exit work (``on_exit``)
    has run, so ``join`` is one lock acquisition.
    """

    __slots__ = ("_done", "_fn", "_fn_args", "_on_exit", "exception", "helper", "ident", "name")

    def __init__(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        on_exit: Callable[[PalThread], None],
        name: str,
        helper: bool = False,
    ) -> None:
        self.name = name
        self.helper = helper
        self.exception: BaseException | None = None
        self.ident: int | None = None
        self._fn: Callable[..., object] | None = fn
        self._fn_args = args
        self._on_exit = on_exit
        self._done = _allocate_lock()

    def start(self) -> None:
        """Start the host thread; raises ``RuntimeError`` when the OS refuses one."""
        self._done.acquire()
        try:
            ident = _start_new_thread(self._run, ())
        except BaseException:
            self._done.release()
            raise
        if self.ident is None:
            self.ident = ident

    def _run(self) -> None:
        self.ident = _get_ident()
        fn, args = self._fn, self._fn_args
        self._fn, self._fn_args = None, ()
        try:
            assert fn is not None
            fn(*args)
        except BaseException as exc:
            self.exception = exc
        finally:
            try:
                self._on_exit(self)
            finally:
                self._done.release()

    def is_alive(self) -> bool:
        """True from ``start`` until the thread's exit work is done."""
        return self._done.locked()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` seconds, if given) for the thread to end; True when it
        has, or when it was never started."""
        if timeout is None:
            acquired = self._done.acquire()
        else:
            acquired = self._done.acquire(timeout=max(timeout, 0.0))
        if acquired:
            self._done.release()
        return acquired

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else "done" if self.ident else "initial"
        return f"<PalThread {self.name} {state} ident={self.ident}>"
