"""Pollable events: wake-up objects a thread can wait on beside other PAL handles.

The state of an event (set or clear) lives here, in the LibOS, guarded by a lock.  The
host channel under it, a PAL pipe, a raw PAL pipe or an eventfd, only wakes sleepers:

* ``set`` on a clear event writes one token to the channel; on a set event it does
  nothing, so a burst of sets costs one host call (``uv_async`` coalesces the same way).
* ``clear`` on a set event reads the token back; on a clear event it does nothing.

So while the event is clear the channel holds no token of ours, and while it is set it
holds exactly one.  Anything else in the channel was put there by the host.  The host can
always wake a sleeper, or keep it asleep; it cannot make a clear event look set, because
every waiter re-checks the state here after it wakes.  A waiter that finds the channel
readable while the event is clear drains the channel (under the lock, so it never takes
our own token) and goes back to sleep.

Both ends are nonblocking.  A ``set`` never waits for room: a channel the host has
filled already wakes every sleeper, so "full" means "already set" (as asyncio's
``_write_to_self`` and trio's wakeup socketpair treat it), and ``set`` never blocks while
it holds the event's lock, so ``clear``, ``destroy`` and shutdown never queue behind a
host.  A TLS channel is handed out only once the handshake of its write end is over, so
no wakeup is ever refused for a handshake still running.  A drain reads in large chunks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ..pal import (
    EVENT_TOKEN,
    WAIT_ERROR,
    WAIT_READ,
    WAIT_WRITE,
    Handle,
    HandleKind,
    Host,
    PalError,
    PalErrorCode,
    critical_deliver,
    critical_owed,
    marks_critical_sections,
)
from ._errno import oserror

EVENT_KINDS = ("pipe", "raw", "eventfd")
_DRAIN_CHUNK = 65536
_DRAIN_READS = 1024  # at most this many reads per drain; the waiter comes back for more
_NAMES_PER_DRAW = 64
RECHECK_S = 2.0
"""Longest a sleeper stays on one channel without looking again.  A host that closes a
descriptor while keeping a copy of it can leave a sleeper where no one of ours can reach
it; after this long the sleeper re-reads ``read_handle`` and the PAL's identity check
finds the descriptor gone.  An idle sleeper pays one host call per this many seconds."""
_RECHECK_US = int(RECHECK_S * 1_000_000)
_new_lock = threading.Lock
_new_event = object.__new__
_Remake = Callable[[], tuple[Handle, Handle]]
POOL_LIMIT = 1024
"""Most cleared events a pool keeps; events released beyond it are destroyed."""


class PollableEvent:
    """A binary semaphore whose ``read_handle`` can be waited on with the PAL."""

    # Class defaults: what a new event never changes costs no store when one is made.
    _set = False  # Guarded by _lock.
    closed = False
    rebuilt = 0  # channels the host broke and this event replaced

    # (``EventFactory.create`` builds its events in place: it stores what this does.)
    def __init__(
        self, host: Host, kind: str, read: Handle, write: Handle, remake: _Remake | None = None
    ) -> None:
        self._host = host
        self.kind = kind
        self._read = read
        self._write = write
        self._remake = remake
        self._lock = _new_lock()

    @property
    def read_handle(self) -> Handle:
        """The handle to pass to ``streams_wait_events`` with ``WAIT_READ``.  It can change
        (see ``_rebuild``): waiters read it anew each time they go to sleep."""
        return self._read

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            if self._set or self.closed:
                return
            self._set = True
            # A full channel already wakes every sleeper: the event is set all the same.
            self._signal(self._host.write, self._write, EVENT_TOKEN)

    def clear(self) -> None:
        with self._lock:
            if not self._set:
                return
            self._set = False
            self._signal(self._host.read, self._read, _DRAIN_CHUNK)

    def _signal(self, op: Callable[[Handle, Any], object], handle: Handle, arg: Any) -> None:
        """Put the token in, or take it out: ``op(handle, arg)``.  Under _lock.  "Try
        again" (a full channel, an empty one) leaves the channel as the state wants it;
        any other failure is a broken channel, replaced (a set event's token is carried
        over to the new one)."""
        try:
            op(handle, arg)
        except PalError as exc:
            if exc.code is not PalErrorCode.TRYAGAIN:
                self._rebuild(exc)

    def drain_spurious(self) -> None:
        """Empty the channel of bytes that are not ours (only while the event is clear)."""
        with self._lock:
            if self._set or self.closed:
                return
            for _ in range(_DRAIN_READS):
                try:
                    if not self._host.read(self._read, _DRAIN_CHUNK):
                        # The far end is gone: the channel would read as ready for ever.
                        self._rebuild(None)
                        return
                except PalError as exc:
                    if exc.code is not PalErrorCode.TRYAGAIN:
                        self._rebuild(exc)
                    return

    @marks_critical_sections
    def _rebuild(self, cause: PalError | None) -> None:
        """Replace a channel the host broke; the state, which lives here, stays.  Under _lock.

        A host can break a channel: forge bytes into a TLS pipe (the record fails to
        authenticate and the session is dead for good), cut either end, or close a
        descriptor under the PAL.  The event then gets a fresh channel of the same kind,
        and a set event puts its token there.  A host that keeps breaking channels only
        makes the LibOS keep paying for new ones.  When no new channel can be had (the
        host is out of descriptors), the old one stays and the caller gets ``OSError``.

        Sleepers on the old channel are woken before it goes: a pipe's read end is shut
        down (every poller of it wakes, whoever holds its far end), an eventfd still ours
        gets a token.  Each re-reads ``read_handle`` and sleeps on the new channel.
        """
        if self._host.closed or self.closed:
            # Nothing to rebuild on, or nothing to rebuild for: a destroyed event (a
            # thread may clear it after shutdown destroyed it under it) gets no new
            # channel, which nothing would ever close.  The state still changes; a wait
            # fails with EBADF.
            return
        what = "the host cut the channel" if cause is None else str(cause)
        if self._remake is None:
            raise OSError(errno.EIO, f"{os.strerror(errno.EIO)}: event channel broken: {what}")
        # The new channel made and stored, the old one closed: one marked critical
        # section (on sgx pipes a Ctrl-C waits for the new channel's handshake, within
        # handshake_timeout), so neither channel is ever left open and held by nobody.
        _pal_critical = True
        try:
            try:
                read, write = self._remake()
            except PalError as exc:
                raise oserror(exc, f"rebuild event channel ({what})") from exc
            old_read, old_write = self._read, self._write
            self._read, self._write = read, write
            self.rebuilt += 1
            with contextlib.suppress(PalError):
                if old_read.kind is HandleKind.PIPE:
                    self._host.delete(old_read)
                else:
                    self._host.write(old_read, EVENT_TOKEN)
            self._host.close(old_read)
            if old_write is not old_read:
                self._host.close(old_write)
        finally:
            _pal_critical = False
            if critical_owed[0]:
                critical_deliver()
        if self._set:
            with contextlib.suppress(PalError):
                self._host.write(self._write, EVENT_TOKEN)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the event is set or ``timeout`` seconds pass; True if it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            if deadline is None:
                timeout_us = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                timeout_us = int(remaining * 1_000_000)
            if timeout_us is None or timeout_us > _RECHECK_US:
                timeout_us = _RECHECK_US
            handle = self._read
            try:
                ready = self._host.streams_wait_events([handle], [WAIT_READ], timeout_us)
            except PalError as exc:
                if handle is not self._read:
                    continue  # the channel was replaced (and closed) under us
                raise oserror(exc, "wait on event") from exc
            if ready[0] and not self._set:
                self.drain_spurious()
        return True

    @marks_critical_sections
    def destroy(self) -> None:
        """Close the channel.  Safe against a racing ``set``: it holds the same lock.
        The mark and the closes are one marked critical section: a Ctrl-C never leaves
        the event marked closed with a handle open (no later ``destroy`` would close
        it)."""
        with self._lock:
            if self.closed:
                return
            _pal_critical = True
            try:
                self.closed = True
                self._host.close(self._read)
                if self._write is not self._read:
                    self._host.close(self._write)
            finally:
                _pal_critical = False
                if critical_owed[0]:
                    critical_deliver()

    def __repr__(self) -> str:
        return f"<PollableEvent {self.kind} {'set' if self._set else 'clear'}>"


class EventFactory:
    """Makes pollable events of one kind, and keeps a pool of cleared ones if asked."""

    def __init__(self, host: Host, kind: str, *, pool: bool) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; choose one of {', '.join(EVENT_KINDS)}")
        self._host = host
        self.kind = kind
        self._eventfd = kind == "eventfd"
        self.pool = pool
        # Guarded by _lock: the swap of _free and the setting of _closed in ``close``,
        # and _random.  Events are appended to and popped from _free without it: one C
        # call each, whole under the GIL (see ``create`` and ``release``).
        self._lock = threading.Lock()
        self._free: list[PollableEvent] = []
        self._closing: list[PollableEvent] = []  # taken from the pool by ``close``
        self._closed = False
        self._random = bytearray()  # unused random bytes for pipe names

    def create(self) -> PollableEvent:
        """``create_pollable_event``: a fresh (or pooled) clear event.  (The clone path
        times it as a phase of its own.)"""
        if self.pool:
            # No lock to take one: ``list.pop`` is one C call, whole under the GIL, against
            # ``release``'s append and ``close``'s swap.  A pop racing ``close`` may take
            # an event ``close`` then destroys: only a LibOS shutting down closes its
            # factory, and every caller of ``create`` then finds it shut down.
            try:
                event = self._free.pop()
            except IndexError:
                pass
            else:
                # Set since by someone holding it from its last thread? (clear() looks
                # again under the lock.)
                if not event._set:
                    return event
                try:
                    event.clear()
                except OSError:
                    # Broken by the host, no new channel to be had: destroyed, a fresh one.
                    event.destroy()
                else:
                    return event
        try:
            if self._eventfd:  # ``_channel``'s first case, in place: no frame for it
                read = write = self._host.stream_open("eventfd:", nonblocking=True)
            else:
                read, write = self._channel()
        except PalError as exc:
            raise oserror(exc, "create pollable event") from exc
        # ``PollableEvent(...)`` in place: a Python ``__init__`` costs a frame not inlined.
        event = _new_event(PollableEvent)
        event._host = self._host
        event.kind = self.kind
        event._read = read
        event._write = write
        event._remake = self._channel
        event._lock = _new_lock()
        return event

    def _channel(self) -> tuple[Handle, Handle]:
        """A new host channel: (read end, write end); the same handle for an eventfd.

        Pipe names are random, so a host cannot bind the next one first; a name that is
        taken all the same (by chance, or by a host that binds many) is drawn again.
        """
        host = self._host
        if self._eventfd:
            handle = host.stream_open("eventfd:", nonblocking=True)
            return handle, handle
        read, write = host.create_pipe(
            raw=self.kind == "raw", nonblocking=True, names=self._event_name, label="event"
        )
        if write.encrypted:
            # The write end handshakes on a helper; wait for it (bounded) so that a
            # ``set`` never meets "try again" for a handshake rather than a full channel.
            try:
                self._await_established(write)
            except BaseException:
                host.close(write)
                host.close(read)
                raise
        return read, write

    def _random_name(self) -> str:
        """64 random bits, in hex; drawn from the OS in bulk, off the clone path's cost."""
        with self._lock:
            if not self._random:
                self._random = bytearray(secrets.token_bytes(8 * _NAMES_PER_DRAW))
            chunk = self._random[-8:]
            del self._random[-8:]
        return chunk.hex()

    def _event_name(self) -> str:
        return f"ev.{self._random_name()}"

    def _await_established(self, write: Handle) -> None:
        timeout_us = int(self._host.handshake_timeout * 1_000_000)
        ready = self._host.streams_wait_events([write], [WAIT_WRITE], timeout_us)
        if ready[0] & WAIT_ERROR:
            raise PalError(PalErrorCode.AUTH_FAILED, f"{write.uri}: handshake failed")
        if not ready[0] & WAIT_WRITE:
            raise PalError(PalErrorCode.TIMEDOUT, f"{write.uri}: handshake did not finish")

    def release(self, event: PollableEvent) -> None:
        """An exited thread's event: cleared into the pool, or destroyed.

        Clearing costs a host call only if the event is set, so reusing an event usually
        costs none.  Bytes the host may have put in the channel stay: to the next thread
        they are a spurious wakeup, drained by its first wait.  An event whose channel
        cannot be cleared (the host broke it) is not reused.
        """
        if self.pool and not event.closed:
            if event._set:  # clear() looks again under the event's lock
                try:
                    event.clear()
                except OSError:
                    event.destroy()
                    return
            # No lock (see ``create``).  ``close`` marks the factory closed before it
            # takes the list to destroy what it holds: an event appended while it did
            # (or after) is seen by the test after the append, taken out again and
            # destroyed here (``_take_back``), whether or not ``close`` destroys it too
            # (twice is harmless).  So no test before the append: a factory closed by
            # then is seen after it all the same.
            free = self._free
            if len(free) < POOL_LIMIT:
                free.append(event)
                if not self._closed:
                    return
                self._take_back(event)
                return
        event.destroy()

    def _take_back(self, event: PollableEvent) -> None:
        """An event pooled, then the factory found closed: out of the pool, destroyed."""
        with contextlib.suppress(ValueError):
            self._free.remove(event)
        event.destroy()

    def close(self) -> None:
        """Destroy the pooled events, and those released from now on.  A close a Ctrl-C
        cuts short is finished by the next (the pool taken waits in ``_closing``)."""
        with self._lock:
            self._closed = True
            closing = self._closing
            if self._free:
                closing.extend(self._free)  # (an event in both lists is destroyed twice)
                self._free = []
        while closing:
            try:
                event = closing[-1]
            except IndexError:
                break  # a racing close took the last
            event.destroy()
            with contextlib.suppress(ValueError):
                closing.remove(event)

    @property
    def pooled(self) -> int:
        with self._lock:
            return len(self._free)
