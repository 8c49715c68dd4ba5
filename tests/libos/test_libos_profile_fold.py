"""The profile's clone boundaries are kept as rows and folded into the moments and the
reservoir in batches: the figures equal a direct computation on the same samples, a
Ctrl-C at any line of a fold loses and doubles nothing, and readers racing with clones
from many threads see every clone once."""

from __future__ import annotations

import math
import random
import signal
import statistics
import sys
import threading
from types import FrameType, SimpleNamespace
from typing import Any, cast

import pytest

from libos_support import BOUND, assert_profile_whole, booted
from pylibos.libos import LibOS, Profile, proportions
from pylibos.libos import _clone_samples as samples_module
from pylibos.libos import _profile as profile_module
from pylibos.libos._figures import p95
from pylibos.pal import Host, _interrupts


def _noop() -> None:
    return None


class _Host:
    """The host's per-thread account of host calls, as ``Profile`` reads it."""

    def __init__(self) -> None:
        self.account = {0: 0}

    def thread_account(self) -> dict[int, int]:
        return self.account

    def thread_calls(self) -> int:
        return self.account[0]


class _Clock:
    now = 0

    def perf_counter_ns(self) -> int:
        return self.now


def _clone(profile: Profile, host: _Host, clock: _Clock, spans: tuple[int, ...]) -> None:
    """One clone through the clone path's boundaries, as ``LibOS._clone`` takes them:
    get_new_thread starts with the clone, create_pollable_event spans ``cpe`` (with a
    handshake of ``hs`` inside if not 0), get_new_thread ends ``tail`` later, the clone
    ``rest`` after that; each step makes ``calls`` host calls."""
    before, cpe, hs, tail, rest, calls = spans
    opened = profile.open_clone()
    account = opened.account
    t0, c0 = clock.now, account[0]
    clock.now += before
    host.account[0] += calls
    t1, c1 = clock.now, account[0]
    if hs:
        with profile.phase("handshake"):
            clock.now += hs
            host.account[0] += calls
    clock.now += cpe - hs
    t2, c2 = clock.now, account[0]
    clock.now += tail
    host.account[0] += calls
    t3, c3 = clock.now, account[0]
    clock.now += rest
    host.account[0] += calls
    profile.close_clone(opened, [None, t0, c0, t1, c1, t2, c2, t3, c3, clock.now, account[0]])
    clock.now += 7  # between clones


def _expected(values: list[int]) -> tuple[int, float, float, float, float]:
    return (
        sum(values),
        statistics.fmean(values),
        float(statistics.median(values)),
        p95(sorted(values)),
        statistics.stdev(values),
    )


@pytest.mark.parametrize("n", [1, 5, samples_module.BATCH, 3 * samples_module.BATCH + 5])
def test_folded_figures_equal_a_direct_computation(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    clock = _Clock()
    fake_time = SimpleNamespace(perf_counter_ns=clock.perf_counter_ns)
    monkeypatch.setattr(profile_module, "time", fake_time)
    host = _Host()
    profile = Profile(cast(Host, host))
    rng = random.Random(n)
    spans = [
        (rng.randrange(1, 900), rng.randrange(50, 5000), rng.choice([0, 0, rng.randrange(1, 49)]),
         rng.randrange(1, 700), rng.randrange(1, 3000), rng.randrange(0, 4))
        for _ in range(n)
    ]  # fmt: skip
    for s in spans:
        _clone(profile, host, clock, s)
    assert len(profile._pending) < samples_module.BATCH
    per_phase = {
        "clone": [b + c + t + r for b, c, _h, t, r, _k in spans],
        "get_new_thread": [b + c + t for b, c, _h, t, _r, _k in spans],
        "create_pollable_event": [c for _b, c, _h, _t, _r, _k in spans],
        "handshake": [h for _b, _c, h, _t, _r, _k in spans],
    }
    calls = {
        "clone": sum(3 * k + (k if h else 0) for _b, _c, h, _t, _r, k in spans),
        "get_new_thread": sum(2 * k + (k if h else 0) for _b, _c, h, _t, _r, k in spans),
        "create_pollable_event": sum(k if h else 0 for _b, _c, h, _t, _r, k in spans),
        "handshake": sum(k for _b, _c, h, _t, _r, k in spans if h),
    }
    if not any(per_phase["handshake"]):
        del per_phase["handshake"], calls["handshake"]
    snapshot = profile.statistics()
    assert profile.clones == n
    assert set(snapshot.phases) == set(per_phase)
    for name, values in per_phase.items():
        got = snapshot.phases[name]
        total, mean, median, p95, stdev = _expected(values) if n > 1 else (
            values[0], float(values[0]), float(values[0]), float(values[0]), 0.0)  # fmt: skip
        assert (got.count, got.sum_ns, got.host_calls) == (n, total, calls[name]), name
        assert got.mean_ns == mean and got.median_ns == median and got.p95_ns == p95, name
        assert math.isclose(got.stdev_ns, stdev, rel_tol=1e-12, abs_tol=1e-9), name
        assert profile.per_clone_samples(name) == values, name  # in the order taken
        assert profile.samples(name) == [v for v in values if v], name
    means = {name: statistics.fmean(values) for name, values in per_phase.items()}
    assert snapshot.proportions() == proportions(means)


def test_folded_reservoir_draws_as_one_record_per_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``RESERVOIR`` clones, folding a batch keeps the clones recording each on its
    own keeps, with the same random draws: the same uniform sample."""
    monkeypatch.setattr(samples_module, "RESERVOIR", 50)
    clock = _Clock()
    fake_time = SimpleNamespace(perf_counter_ns=clock.perf_counter_ns)
    monkeypatch.setattr(profile_module, "time", fake_time)
    host = _Host()
    folded, direct = Profile(cast(Host, host)), Profile(cast(Host, host))
    folded._random = random.Random(3).random
    direct._random = random.Random(3).random
    rng = random.Random(4)
    for _ in range(5 * samples_module.BATCH + 3):
        spans = (rng.randrange(1, 99), rng.randrange(9, 99), rng.choice([0, 5]),
                 rng.randrange(1, 99), rng.randrange(1, 99), 1)  # fmt: skip
        start = clock.now
        _clone(folded, host, clock, spans)
        b, c, h, t, _r, _k = spans
        inner = {"get_new_thread": [b + c + t, 0], "create_pollable_event": [c, 0]}
        if h:
            inner = {"handshake": [h, 0], **inner}
        with direct._lock:
            direct._record_clone(clock.now - 7 - start, 0, inner)
    for name in ("clone", "get_new_thread", "create_pollable_event", "handshake"):
        assert folded.per_clone_samples(name) == direct.per_clone_samples(name), name
        assert len(folded.per_clone_samples(name)) == 50
        assert folded.statistics().phases[name].sum_ns == direct.statistics().phases[name].sum_ns


def _read_interrupted(libos: LibOS, n: int) -> bool:
    """Read the statistics with a SIGINT, as the real handler delivers it (deferred in a
    critical section), at the ``n``-th line of the fold; True if it fired."""
    count = 0
    fired = False

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count, fired
        if frame.f_code.co_name not in ("_fold", "_fold_pending"):
            return None
        if event == "line":
            count += 1
            if count == n:
                fired = True
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    sys.settrace(tracer)
    try:
        try:
            libos.profile.statistics()
        finally:
            sys.settrace(None)
    except KeyboardInterrupt:
        assert fired
    return fired


def test_interrupt_anywhere_in_a_fold_loses_and_doubles_nothing() -> None:
    with booted("sgx", "raw") as libos:
        ended = 0
        n = 1
        while True:
            for _ in range(2):  # pending: fewer than a batch
                assert libos.clone(_noop).join(BOUND)
                ended += 1
            assert libos.profile._pending
            if not _read_interrupted(libos, n):
                break
            assert_profile_whole(libos.profile)
            assert libos.profile.clones == ended, n
            assert not libos.profile._pending
            n += 1
        assert n > 20
        assert libos.profile.statistics().phases["clone"].count == ended


def test_readers_racing_with_clones_from_many_threads() -> None:
    """Threads clone while another reads: every clone counted once, the profile whole,
    and rows waiting to be folded stay fewer than a batch per cloning thread."""
    per_thread, threads_n = 3 * samples_module.BATCH // 2, 6
    with booted("sgx", "raw", pool=True) as libos:
        profile = libos.profile
        done = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not done.is_set():
                    snapshot = profile.statistics()
                    clone = snapshot.phases.get("clone")
                    seen.append(0 if clone is None else clone.count)
                    assert_profile_whole(profile)
            except BaseException as exc:  # reported below
                errors.append(exc)

        def clones() -> None:
            try:
                for _ in range(per_thread):
                    assert libos.clone(_noop).join(BOUND)
                    assert len(profile._pending) < samples_module.BATCH + threads_n
            except BaseException as exc:  # reported below
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        workers = [threading.Thread(target=clones) for _ in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(BOUND * 3)
        done.set()
        reader.join(BOUND)
        assert not errors, errors
        assert seen == sorted(seen) and seen
        total = per_thread * threads_n
        assert profile.clones == total
        stats = profile.statistics()
        assert stats.phases["clone"].count == total
        assert len(profile.per_clone_samples("clone")) == total
        assert_profile_whole(profile)
