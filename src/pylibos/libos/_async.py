"""The async worker: timers delivered on a LibOS thread (Gramine's ``libos_async.c``).

The worker sleeps on its own pollable event with a timeout equal to the nearest
deadline.  Installing a timer sets the event, so a worker asleep on a later (or no)
deadline wakes and recomputes.  The worker clears its event before it reads the timer
list, so an install that lands in between is never missed.

An error the host causes on the worker's channel (one it broke and that cannot be
replaced yet, a descriptor it took away) neither ends the worker nor loses a timer: the
worker records it, pauses (bounded by the nearest deadline, woken by ``install`` and
``stop``) and goes on.  Only ``stop`` ends it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..pal import PalError, ShutDownError
from ._errno import oserror
from ._worker import Worker

if TYPE_CHECKING:
    from ._event import PollableEvent


@dataclass(order=True)
class _Timer:
    deadline: float
    seq: int
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class AsyncWorker(Worker):
    def __init__(self, event: PollableEvent) -> None:
        super().__init__(event, "async")
        # Guarded by _lock.
        self._timers: list[_Timer] = []
        self._by_id: dict[int, _Timer] = {}
        self._pausing = False  # install kicks a pausing worker, whose deadline may move
        self._seq = itertools.count(1)
        self.errors: list[BaseException] = []

    def install(self, delay: float, callback: Callable[[], object]) -> int:
        """Run ``callback`` on the worker after ``delay`` seconds; returns a timer id."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
        with self._lock:
            if self._stopping:
                raise ShutDownError("the async worker has stopped")
            timer = _Timer(time.monotonic() + delay, next(self._seq), callback)
            heapq.heappush(self._timers, timer)
            self._by_id[timer.seq] = timer
            if self._pausing:
                self._kick.notify_all()
        try:
            self._event.set()
        except OSError as exc:
            # The channel is broken and cannot be replaced now; the worker finds out on
            # its own (a broken channel reads as ready) and keeps every deadline.
            self.host_errors.record(exc)
        return timer.seq

    def cancel(self, timer_id: int) -> bool:
        """Cancel a timer that has not fired; True if it was pending."""
        with self._lock:
            timer = self._by_id.pop(timer_id, None)
            if timer is None:
                return False
            timer.cancelled = True
            return True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._by_id)

    def run(self) -> None:
        try:
            self._run()
        finally:
            # However the worker ends, it takes no more timers: install says so.
            with self._lock:
                self._stopping = True

    def _run(self) -> None:
        while True:
            due: list[_Timer] = []
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                while self._timers and self._timers[0].deadline <= now:
                    timer = heapq.heappop(self._timers)
                    if not timer.cancelled:
                        self._by_id.pop(timer.seq, None)
                        due.append(timer)
                while self._timers and self._timers[0].cancelled:
                    heapq.heappop(self._timers)
                timeout = self._timers[0].deadline - now if self._timers else None
            for timer in due:
                try:
                    timer.callback()
                except BaseException as exc:
                    # SystemExit and the like too: they end a callback, never the worker
                    # (which would leave every later timer silently undelivered).
                    self.errors.append(exc)
            if due:
                continue
            try:
                self._event.wait(timeout)
                self._event.clear()
            except (OSError, PalError) as exc:
                if self._event._host.closed or self._stopping:
                    return  # the host is gone, or the LibOS is stopping us: no error
                pause = self.host_errors.record(exc if isinstance(exc, OSError) else oserror(exc))
                self._pause(pause)
            else:
                self.host_errors.recovered()

    def _pause(self, pause: float) -> None:
        """Sleep ``pause`` seconds at most, less if a timer falls due, an earlier one is
        installed, or the worker is stopped: the host cannot stretch it."""
        with self._lock:
            if self._timers:
                pause = min(pause, max(0.0, self._timers[0].deadline - time.monotonic()))
            self._pausing = True
            try:
                if not self._stopping:
                    self._kick.wait(pause)
            finally:
                self._pausing = False
