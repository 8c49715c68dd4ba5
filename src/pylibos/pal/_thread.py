"""Threads the PAL creates (``PalThreadCreate``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PalThread(threading.Thread):
    """A host thread running ``fn(*args)``.

    An exception escaping ``fn`` is kept in ``exception`` for whoever joins the thread.
    It is a ``threading.Thread`` itself (no wrapper), since thread creation is the path
    being measured.
    """

    def __init__(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        on_exit: Callable[[PalThread], None],
        name: str,
        helper: bool = False,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._fn: Callable[..., object] | None = fn
        self._fn_args = args
        self._on_exit = on_exit
        self.helper = helper
        self.exception: BaseException | None = None

    def run(self) -> None:
        fn, args = self._fn, self._fn_args
        self._fn, self._fn_args = None, ()
        try:
            assert fn is not None
            fn(*args)
        except BaseException as exc:
            self.exception = exc
        finally:
            self._on_exit(self)

    def join(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait for the thread to end; True when it has (``threading.Thread.join`` returns
        None, which callers of that API ignore)."""
        if self.ident is None:
            return True
        super().join(timeout)
        return not self.is_alive()
