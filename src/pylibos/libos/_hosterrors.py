"""What a LibOS worker does when the host breaks something under it.

A worker (async, IPC) never dies of a host-caused error: it counts it, logs it, backs off
(so a host that breaks a channel over and over, or keeps the LibOS out of descriptors,
cannot make it spin) and goes on.  It stops only on its in-LibOS stop flag.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("pylibos.libos")


def _warn(message: str, *args: object) -> None:
    """``log.warning`` from a PAL thread, which ``threading`` does not know: a log record
    asks ``threading.current_thread()`` for its name, which registers a dummy Thread for
    the caller that nothing would ever remove.  It is removed here."""
    ident = threading.get_ident()
    active = threading._active  # type: ignore[attr-defined]
    known = ident in active
    try:
        log.warning(message, *args)
    finally:
        if not known:
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                active.pop(ident, None)


BACKOFF_MIN = 0.005
BACKOFF_MAX = 0.5


class HostErrors:
    """Host-caused errors a worker met: how many, the last one, and the next pause."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.count = 0
        self.last: BaseException | None = None
        self._pause = 0.0

    def record(self, exc: BaseException) -> float:
        """Note ``exc``; returns how long to pause before trying again (doubling, capped)."""
        self.count += 1
        self.last = exc
        self._pause = min(max(self._pause * 2, BACKOFF_MIN), BACKOFF_MAX)
        _warn("%s worker: host error, going on after %.3f s: %s", self.worker, self._pause, exc)
        return self._pause

    def recovered(self) -> None:
        self._pause = 0.0
