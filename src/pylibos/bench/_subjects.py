"""The configurations a measuring process runs: native (CPython's own thread start) and
the LibOS under each PAL and event kind, each a ``Subject`` (``_batches`` times it).

Host calls per clone count the whole life of a thread: every host call made while the
batches ran, divided by the threads created (creation, the handshake helper's traffic,
and the release of the thread's event at exit), less the LibOS's workers' own polls.

Live threads (``--live``) are started the same way, before the batches: daemon threads
asleep on a ``threading.Event`` (under the LibOS each holds its tid, pollable event and
table entry; asleep on the event itself it would re-poll now and then, host calls that are
no measured thread's).  The measured threads are what the statement makes: non-daemon threads.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import threading
from collections.abc import Iterator
from typing import Any

from .._schema import Entry
from ..libos import PHASES, SAMPLE_EVERY, Hook, LibOS
from ..libos._profile import check_every
from ..pal import Host, HostCallStats, open_host
from ._batches import JOIN_S, Subject
from ._configs import Config

_LIVE_WAIT_S = 3600.0

PROFILE_EVERY = SAMPLE_EVERY
"""The benchmark's profile times one clone in this many at most (the LibOS's own default
for a sampled profile, 8): in the largest interval up
to it that suits the batch (``sampling_interval``; 7 for batches of 100).  The phases'
figures are over the sampled clones, ``start`` over every start: one in 7 pays the
profile, so the start figures carry its cost amortised rather than paid at every start."""


def sampling_interval(batch: int, most: int = PROFILE_EVERY) -> int:
    """The sampling interval of the phase profile for batches of ``batch`` threads: the
    largest at most ``most`` and at most ``batch`` that shares no factor with ``batch``.

    The profile samples systematically (the clones 0, n, 2n... of the LibOS's life, and a
    reset does not restart the count), so any ``n`` consecutive clones hold exactly one
    sampled clone: with ``n <= batch`` every batch holds one at least.  With ``n`` a
    divisor of ``batch`` (or sharing a factor with it) the sampled clones would sit at the
    same few places in every batch, and a batch's first start is its slowest; coprime,
    they move through every place of the batch, one batch after another (batches of 100:
    7, so a batch holds 14 or 15 sampled clones)."""
    if batch < 1:
        raise ValueError(f"a batch is at least 1 thread, got {batch}")
    n = min(check_every(most), batch)
    while math.gcd(n, batch) != 1:
        n -= 1
    return n


class NativeSubject(Subject):
    def setup(self) -> None:
        self._release = threading.Event()
        self._live: list[threading.Thread] = []

        def start_live() -> None:
            for _ in range(self.live):
                t = threading.Thread(target=self._release.wait, args=(_LIVE_WAIT_S,), daemon=True)
                t.start()
                self._live.append(t)

        try:
            self._measure_live(start_live)
            self.run_batch()  # warm-up, not recorded
        except BaseException:
            self.teardown()
            raise
        self._start_ns.clear()
        gc.collect()

    def _batch_figures(self) -> dict[str, tuple[float, float] | None]:
        starts = self._take_starts()
        return {"start": (float(statistics.median(starts)), statistics.fmean(starts))}

    def teardown(self) -> None:
        self._release.set()
        for t in self._live:
            t.join(JOIN_S)

    def result(self) -> Entry:
        return self._entry(None, 0.0, {})


class LibOSSubject(Subject):
    """A LibOS configuration.  Its profile times one clone in ``profile_every`` (an int of
    at least 1; by default ``sampling_interval(batch)``, so every batch holds sampled clones)."""

    host: Host
    libos: LibOS

    def setup(self) -> None:
        c = self.config
        assert c.pal is not None and c.events is not None
        options: dict[str, Any] = {}
        if c.pal == "sgx":
            # Room for the live threads, a batch, the LibOS's workers and handshake
            # helpers, as a manifest raises sgx.max_threads for a program that needs it.
            options["max_threads"] = max(256, self.live + 2 * self.batch + 16)
            options["tls"] = self.tls
        self.host = open_host(c.pal, **options)
        try:
            self.libos = LibOS(self.host, c.events, c.pool, profile_every=self.profile_every)
        except BaseException:
            self.host.shutdown()
            raise
        self._live: list[threading.Thread] = []
        self._release = threading.Event()
        self._hook = Hook(self.libos)

        def start_live() -> None:
            with self._installed():
                for _ in range(self.live):
                    t = threading.Thread(target=self._sleep, daemon=True)
                    t.start()
                    self._live.append(t)

        try:
            self._measure_live(start_live)
            self._fill_pool()
            self.run_batch()  # warm-up, not recorded
        except BaseException:
            self.teardown()
            raise
        self.libos.profile.reset()
        self._start_ns.clear()
        gc.collect()
        self._calls0 = self.host.statistics()
        self._workers0 = self.libos.worker_host_calls()

    def _batch_figures(self) -> dict[str, tuple[float, float] | None] | None:
        # The profile gives the statistics of the batch's sampled clones (a phase a
        # sampled clone skipped counts 0 in it); its samples move out batch by batch, so
        # it never holds more than a batch.  A batch without a sampled clone has no
        # figure of any phase: it is kept, its starts and all, for the next batch.
        profile = self.libos.profile
        stats = profile.statistics()
        if not stats.sampled:
            return None
        figures: dict[str, tuple[float, float] | None] = {}
        for p in PHASES:
            s = stats.get(p)
            if s is not None:
                figures[p] = (s.median_ns, s.mean_ns)
                self._ns[p] += profile.per_clone_samples(p)
        profile.reset()
        starts = self._take_starts()
        figures["start"] = (float(statistics.median(starts)), statistics.fmean(starts))
        return figures

    def _sleep(self) -> None:
        # A LibOS thread (tid, event, table entry), asleep on a threading.Event: asleep on
        # its pollable event it would re-poll every RECHECK_S seconds, host calls that
        # are no measured thread's.
        self._release.wait(_LIVE_WAIT_S)

    def _fill_pool(self) -> None:
        """With a pool, leave one event per thread of a batch in it: a batch's threads
        all alive at once then never make a new one, however the threads interleave."""
        if not self.config.pool:
            return
        go = threading.Event()
        held = []
        try:  # (a loop: a comprehension here could skip the ``finally`` on 3.12 and 3.13)
            for _ in range(self.batch):
                held.append(self.libos.clone(go.wait, JOIN_S))
        finally:
            go.set()
        for t in held:
            t.join(JOIN_S)

    @contextlib.contextmanager
    def _installed(self) -> Iterator[None]:
        """The LibOS under ``threading`` while this configuration's threads start."""
        self._hook.install()
        try:
            yield
        finally:
            self._hook.uninstall()

    def run_batch(self) -> None:
        with self._installed():
            self._start_batch()

    def teardown(self) -> None:
        self._hook.uninstall()
        self._release.set()
        for t in self._live:
            t.join(JOIN_S)
        self.libos.shutdown()
        self.host.shutdown()

    def result(self) -> Entry:
        made: HostCallStats = self.host.statistics() - self._calls0
        threads = max(self.started, 1)
        # The idle workers' calls are their periodic polls.
        workers = self.libos.worker_host_calls() - self._workers0
        kinds = dict(made.by_kind)
        kinds["poll"] = kinds.get("poll", 0) - workers
        by_kind = {k: v / threads for k, v in sorted(kinds.items()) if v}
        return self._entry(self.host.tls, (made.total - workers) / threads, by_kind)


def make_subject(
    config: Config,
    live: int,
    batch: int,
    tls: str | None = None,
    profile_every: int | None = None,
) -> Subject:
    """``config`` at ``live`` live threads in batches of ``batch``; a LibOS configuration's
    profile times one clone in ``profile_every`` (``sampling_interval(batch)`` if None)."""
    if config.native:
        return NativeSubject(config, live, batch)
    every = check_every(sampling_interval(batch) if profile_every is None else profile_every)
    subject = LibOSSubject(config, live, batch, tls)
    subject.profile_every = every
    return subject
