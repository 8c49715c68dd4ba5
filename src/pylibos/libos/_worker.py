"""What the LibOS's workers (async, IPC) share: a loop on a LibOS thread that ends only on
its in-LibOS stop flag, never on a wakeup (which a host can forge) nor on an error the
host causes (``HostErrors``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ._hosterrors import HostErrors

if TYPE_CHECKING:
    from ..pal import PalThread
    from ._event import PollableEvent


class Worker:
    def __init__(self, event: PollableEvent, name: str) -> None:
        self._event = event
        self._lock = threading.Lock()
        self._stopping = False  # Guarded by _lock.
        # Signalled (under _lock) by stop, and by whatever else must end a pause early,
        # while the worker pauses after a host error, when its channel may not wake it.
        self._kick = threading.Condition(self._lock)
        self.host_errors = HostErrors(name)
        self.thread: PalThread | None = None

    def _own_in_child(self) -> None:
        """In a fork child: the lock (and the Condition over it) made anew, as a thread
        of the parent's may have held it at the fork."""
        self._lock = threading.Lock()
        self._kick = threading.Condition(self._lock)
        self._event._lock = threading.Lock()

    def stop(self) -> None:
        """Set the stop flag and wake the worker, which ends at its next look at the flag."""
        with self._lock:
            self._stopping = True
            self._kick.notify_all()
        try:
            self._event.set()
        except OSError as exc:
            # The flag is what stops the worker: a broken channel reads as ready, and the
            # worker looks at the flag again after every wait and pause.
            self.host_errors.record(exc)
