"""What a LibOS worker does when the host breaks something under it.

A worker (async, IPC) never dies of a host-caused error: it counts it, logs it, backs off
(so a host that breaks a channel over and over, or keeps the LibOS out of descriptors,
cannot make it spin) and goes on.  It stops only on its in-LibOS stop flag.
"""

from __future__ import annotations

import logging

log = logging.getLogger("pylibos.libos")

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
        log.warning(
            "%s worker: host error, going on after %.3f s: %s", self.worker, self._pause, exc
        )
        return self._pause

    def recovered(self) -> None:
        self._pause = 0.0
