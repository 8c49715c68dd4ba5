"""Per-call timing of the thread-creation path, the seed's breakdown.

Phases nest: ``clone`` holds ``get_new_thread``, which holds ``create_pollable_event``,
which holds the ``handshake`` operations the sgx PAL performs for a TLS pipe (session
key, secure init, the helper thread, the accepting end's handshake).  A phase that runs
several times inside one outermost phase (two handshake operations per event) is summed,
so every phase yields one sample per clone and the seed's proportions are ratios of
per-clone figures.  Each sample also carries the host calls made while it ran.

Only a ``clone`` and the phases nested in it are samples.  The same phases also run on
their own: the LibOS makes its main thread and its workers' events at boot, adopts
threads it did not create, and the sgx PAL handshakes for every IPC connection.  None of
that is the cost of a clone, and counting it would skew the per-clone ratios.

The profile can sample: it times one clone in ``every`` (``every=1``, the default, times
them all; ``pylibos run`` samples one in ``SAMPLE_EVERY``, 8), a systematic sample: the
first clone, then every ``every``-th after it.  Whether a clone is sampled is one
``next()`` on ``sampling`` (an iterator of booleans: true for the clones 0, ``every``,
2 ``every``..., or only False while the profile is off), and a clone not sampled pays nothing else
of the profile: no boundary is taken, and a ``phase`` frame opened during it (the PAL's
handshake) is a null one, so it is neither a sample nor a part of the next one.  Means,
percentiles and the seed's proportions are over the sampled clones, an unbiased sample of
all of them; the snapshot says how many clones were started (``started``) and how many
sampled (``sampled``).

A sampled clone pays one ``perf_counter_ns`` and one read of the calling thread's host-call
count at each phase boundary, and its share of the fold.  ``LibOS.clone`` takes its
boundaries itself (``open_clone``, local variables, ``close_clone``), which costs a
fraction of three nested ``phase`` frames; ``phase`` is for the operations nested deeper
(the PAL's handshake), kept on a thread-local stack, summed into the open clone.  Host
calls are counted per thread (a handshake helper's go to the thread that started it), so
threads running beside a clone never add to its sample.

The moments and the reservoir the samples go to, and the figures read from them, are
``CloneSamples`` (``_clone_samples.py``), which a ``Profile`` is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import count, repeat
from operator import itemgetter, not_
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..pal import HostCallAccount, critical_enter, critical_leave
from ._clone_samples import BATCH, ROOT, CloneSamples
from ._figures import ProfileSnapshot

if TYPE_CHECKING:
    from ..pal import Host

PHASES = ("clone", "get_new_thread", "create_pollable_event", "handshake")
SAMPLE_EVERY = 8
"""The sampling interval ``pylibos run`` uses by default, and the one to use wherever the
profile stays on (a LibOS's ``profile_every``): one clone in 8 is timed."""


def check_every(every: object) -> int:
    """``every`` as a sampling interval: an int of at least 1 (``TypeError`` or
    ``ValueError`` naming the problem otherwise)."""
    if isinstance(every, bool) or not isinstance(every, int):
        raise TypeError(f"the profile's sampling interval must be an int, got {every!r}")
    if every < 1:
        raise ValueError(
            f"the profile's sampling interval must be at least 1 (1 times every clone), got {every}"
        )
    return every


class _Null:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()


_NO_ACCOUNT: HostCallAccount = {}


class _ThreadState:
    """One thread's state in a profile: its stack of open phase frames; whether a clone
    is open (``open_clone``: its phases count as nested in it); the sums of the phases
    nested in the clone or the outermost frame (None until one ends); and its host-call
    account (a live count, ``[0]``, see ``Host.thread_account``), taken on the thread's
    first clone (a host that only times phases need not keep accounts).

    A plain object behind one thread-local attribute: every attribute of a
    ``threading.local`` costs a lookup of the thread's dictionary (some 500 CPU
    instructions a read or a write), so a clone reads the thread-local once, not five
    times."""

    __slots__ = ("acc", "account", "clone", "stack")

    def __init__(self) -> None:
        self.stack: list[tuple[str, int, int]] = []
        self.clone = False
        self.acc: dict[str, list[int]] | None = None
        self.account = _NO_ACCOUNT


class _Local(threading.local):
    def __init__(self) -> None:
        self.state = _ThreadState()


class _Phase:
    """Times one phase.  One instance per phase name, shared by all threads: the open
    frames live in a thread-local stack of (name, start ns, host calls at start), and
    what nested phases measured is summed into the thread's ``acc`` until the outermost
    phase ends."""

    __slots__ = ("_local", "_name", "_profile")

    def __init__(self, profile: Profile, name: str) -> None:
        self._profile = profile
        self._local = profile._local
        self._name = name

    def __enter__(self) -> None:
        local = self._local.state
        stack = local.stack
        if not stack and not local.clone:
            local.acc = None
        stack.append((self._name, time.perf_counter_ns(), self._profile._host.thread_calls()))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = time.perf_counter_ns()
        profile = self._profile
        calls = profile._host.thread_calls()
        local = self._local.state
        stack: list[tuple[str, int, int]] = local.stack
        name, t0, calls0 = stack.pop()
        dt, dcalls = end - t0, calls - calls0
        acc: dict[str, list[int]] | None = local.acc
        if stack or local.clone:
            if acc is None:
                local.acc = {name: [dt, dcalls]}
                return
            slot = acc.get(name)
            if slot is None:
                acc[name] = [dt, dcalls]
            else:
                slot[0] += dt
                slot[1] += dcalls
            return
        if name != ROOT:
            return  # only whole clones are samples
        if exc_type is not None:
            next(profile._failed)  # a failed clone is no sample, and no clone started
            return
        profile._record(dt, dcalls, {} if acc is None else acc)


class Profile(CloneSamples):
    """Collects phase samples; ``phase(name)`` is the context manager that times one.
    It samples one clone in ``every``: 1 (every clone) unless told otherwise; a LibOS
    makes its own with ``every=profile_every``."""

    def __init__(self, host: Host, *, enabled: bool = True, every: int = 1) -> None:
        super().__init__()
        self._host = host
        self._enabled = bool(enabled)
        self.every = check_every(every)
        """One clone in ``every`` is sampled (while ``enabled``)."""
        self._made: count[int]
        self._failed: count[int]
        self._started_base: int
        self.sampling: Iterator[bool]
        """One item per clone started: whether to sample it (``next(sampling)``)."""
        self._new_sampling()
        self._local = _Local()
        self._timers: dict[str, _Phase] = {}

    @property
    def enabled(self) -> bool:
        """Whether clones are sampled at all.  Setting it starts the sampling afresh."""
        return self._enabled

    @enabled.setter
    def enabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        self._new_sampling()

    def _new_sampling(self) -> None:
        """A fresh ``sampling``: its first clone is sampled, then every ``every``-th.  Its
        ``next`` is C code throughout, one step under the GIL, and it counts the clones
        it was asked about in ``_made``."""
        made = count()
        self._failed = count()
        self._started_base = 0
        self._made = made
        if self.enabled:
            # not (n % every): True for the clones 0, every, 2 every...; no table, so
            # no memory in proportion to ``every``.
            self.sampling = map(not_, map(self.every.__rmod__, made))
        else:
            self.sampling = map(itemgetter(1), zip(made, repeat(False), strict=False))

    def phase(self, name: str) -> _Phase | _Null:
        """The timer of phase ``name``: a ``clone`` frame takes its turn in the sampling;
        any other phase is timed only inside a sampled clone (the only place it can be
        part of a sample), and is a null frame elsewhere."""
        if name == ROOT:
            if not next(self.sampling):
                return _NULL
        else:
            state: _ThreadState = self._local.state
            if not (state.clone or state.stack):
                return _NULL
        timer = self._timers.get(name)
        if timer is None:
            timer = self._timers[name] = _Phase(self, name)
        return timer

    # -- the clone path's boundaries ---------------------------------------------------
    #
    # ``clone`` and ``get_new_thread`` start together (the thread's tid and object are
    # the first things get_new_thread makes); then create_pollable_event starts and ends,
    # then get_new_thread ends, and the clone ends once the host thread exists.  The
    # clone path (``LibOS._clone``) opens the clone here, takes each boundary itself into
    # local variables (``perf_counter_ns()`` and the account's count: no call of ours per
    # boundary), and closes it with one row of all of them.

    def open_clone(self) -> _ThreadState:
        """Open one clone's sample (only for a clone ``next(sampling)`` chose); returns
        the calling thread's state, whose ``account`` to read at each boundary, and to
        give ``close_clone``.
        ``phase`` frames opened until then (the PAL's handshake) count inside this clone.
        A clone a KeyboardInterrupt cut short before its end is simply opened over."""
        state: _ThreadState = self._local.state
        state.clone = True
        state.acc = None
        if state.account is _NO_ACCOUNT:
            state.account = self._host.thread_account()
        return state

    def close_clone(self, state: _ThreadState, row: list[Any]) -> None:
        """Close the clone ``open_clone`` opened with ``state`` and keep it.  ``row`` is
        ``[None, t0, c0, t1, c1, t2, c2, t3, c3, end, calls]``: ns and host calls at the
        clone's start, create_pollable_event's start and end, get_new_thread's end and
        the clone's end.  The nested phases' sums go in its first item, and the row is
        appended to the clones not yet folded into the moments and the reservoir (one
        list append: a Ctrl-C lands before or after it).  The clone that makes ``BATCH``
        of them folds them all in (``_fold``), and so does every reader first."""
        row[0] = state.acc
        state.clone = False
        pending = self._pending
        pending.append(row)
        if len(pending) >= BATCH:
            self._fold()

    def drop_clone(self) -> None:
        """Close a clone that failed, sampled or not: it is no sample, and no clone
        started."""
        self._local.state.clone = False
        next(self._failed)

    def abandon_clone(self) -> None:
        """Close a clone a Ctrl-C cut short once its thread ran: it started, and is no
        sample."""
        self._local.state.clone = False

    def reset(self) -> None:
        """Forget every sample.  The sampling goes on in step: a reset does not restart
        it, so resets at a period (the benchmark's, one per batch) do not make the first
        clone after each one a sample every time (a batch's first start is its slowest).
        One critical section: a Ctrl-C never leaves the moments and the reservoir
        disagreeing."""
        entered = critical_enter()
        try:
            super().reset()
            self._started_base = self._started_total()
        finally:
            critical_leave(entered)

    @property
    def started(self) -> int:
        """Clones started since the start (or the last ``reset``), sampled or not, less
        those that failed.  A clone under way while another thread resets the profile
        or restarts its sampling (``enabled``) counts on either side of it, and the
        count never goes below 0."""
        return max(0, self._started_total() - self._started_base)

    def _started_total(self) -> int:
        # A count's repr, ``count(N)``, reads it without advancing it.
        return int(repr(self._made)[6:-1]) - int(repr(self._failed)[6:-1])

    def statistics(self) -> ProfileSnapshot:
        """Every phase seen so far, per sampled clone: a clone that skipped a phase (no
        handshake for a pooled event) counts 0 in it, so ``count`` is the sampled clones
        of every phase, ``mean_ns`` is per clone and the seed's proportions are ratios of
        the means.  The snapshot also says how many clones were started and the
        sampling interval."""
        started = self.started
        clones, phases = self._phase_figures()
        every = self.every if self.enabled else None
        return ProfileSnapshot(phases, started=max(started, clones), sampled=clones, every=every)
