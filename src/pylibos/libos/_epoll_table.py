"""The epoll instances of one LibOS, which its shutdown closes (see ``_interest.py`` for
the instances themselves)."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class EpollInstance(Protocol):
    """What the tables ask of an epoll instance (``_interest.EpollInstance``)."""

    number: int
    closed: bool
    shut_down: bool
    ctl_lock: Any
    lock: Any
    waiters: Any

    def close(self) -> None: ...


class EpollTable:
    """The epoll instances of one LibOS, so shutdown closes them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[EpollInstance] = set()

    def add(self, instance: EpollInstance) -> None:
        with self._lock:
            self._open.add(instance)

    def discard(self, instance: EpollInstance) -> None:
        with self._lock:
            self._open.discard(instance)

    def own_in_child(self) -> None:
        """In a fork child: every lock made anew (a thread of the parent's may have held
        one at the fork), and each epoll forgets its sleepers, the parent's threads: the
        child's shutdown, closing the epolls, would otherwise set their events through
        channels it shares with the parent."""
        self._lock = threading.Lock()
        for instance in list(self._open):
            instance.ctl_lock = threading.Lock()
            instance.lock = threading.Lock()
            instance.waiters = set()

    def close_all(self) -> None:
        with self._lock:
            instances = list(self._open)
        for instance in instances:
            instance.shut_down = True
            instance.close()
