"""Threads the PAL creates (``PalThreadCreate``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PalThread:
    """A host thread running ``fn(*args)``.

    An exception escaping ``fn`` is kept in ``exception`` for whoever joins the thread.
    """

    def __init__(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        on_exit: Callable[[PalThread], None],
        name: str,
    ) -> None:
        self._fn = fn
        self._args = args
        self._on_exit = on_exit
        self.exception: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._fn(*self._args)
        except BaseException as exc:
            self.exception = exc
        finally:
            self._on_exit(self)

    def start(self) -> None:
        self._thread.start()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    @property
    def name(self) -> str:
        return self._thread.name

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
