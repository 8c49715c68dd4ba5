"""The profile of the clone path: per-clone samples of nested phases, host calls,
frozen snapshots."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import statistics
import threading
from types import SimpleNamespace
from typing import cast

import pytest

from libos_support import BOUND, booted
from pylibos.libos import PHASES, LibOS, PhaseStats, Profile, ProfileSnapshot
from pylibos.libos import _clone_samples as samples_module
from pylibos.libos import _profile as profile_module
from pylibos.pal import Host, PalError, PalErrorCode

# -- the Profile itself, on a scripted clock ----------------------------------------------


class FakeHost:
    calls_total = 0

    def thread_calls(self) -> int:
        return self.calls_total


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def perf_counter_ns(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        profile_module, "time", SimpleNamespace(perf_counter_ns=fake.perf_counter_ns)
    )
    return fake


def _profile() -> tuple[Profile, FakeHost]:
    host = FakeHost()
    return Profile(cast(Host, host)), host


def _one_clone(profile: Profile, host: FakeHost, clock: Clock, scale: int = 1) -> None:
    """clone 0..100, get_new_thread 10..60, create_pollable_event 20..50, and two
    handshake operations (25..30, 35..45) inside it; one host call at each step (9 in the
    clone, 7 in get_new_thread, 5 in create_pollable_event, 2 in the handshakes)."""

    def step(to: int) -> None:
        clock.now = base + to * scale
        host.calls_total += 1

    base = clock.now
    with profile.phase("clone"):
        step(10)
        with profile.phase("get_new_thread"):
            step(20)
            with profile.phase("create_pollable_event"):
                step(25)
                with profile.phase("handshake"):
                    step(30)
                step(35)
                with profile.phase("handshake"):
                    step(45)
                step(50)
            step(60)
        step(100)


def test_nested_phases_one_sample_per_clone(clock: Clock) -> None:
    profile, host = _profile()
    _one_clone(profile, host, clock)
    stats = profile.statistics()
    assert set(stats.phases) == set(PHASES)
    expected = {
        "clone": (100, 9),
        "get_new_thread": (50, 7),
        "create_pollable_event": (30, 5),
        "handshake": (15, 2),  # two operations, summed into one sample
    }
    for name, (ns, calls) in expected.items():
        phase = stats.phases[name]
        assert phase.count == 1
        assert (phase.sum_ns, phase.host_calls) == (ns, calls), name
        assert phase.mean_ns == phase.median_ns == phase.p95_ns == ns
        assert phase.host_calls_per_call == calls
    assert stats.proportion("create_pollable_event", "get_new_thread") == 30 / 50
    assert stats.proportion("create_pollable_event", "clone") == 30 / 100
    assert stats.proportion("handshake", "clone") == 15 / 100
    assert stats.proportion("handshake", "nothing") is None


def test_statistics_over_many_clones(clock: Clock) -> None:
    profile, host = _profile()
    for scale in range(1, 21):  # clone samples 100, 200, ..., 2000 ns
        _one_clone(profile, host, clock, scale)
    clone = profile.statistics().phases["clone"]
    assert clone.count == 20
    assert clone.sum_ns == 100 * 210
    assert clone.mean_ns == 1050.0
    assert clone.median_ns == 1050.0
    assert clone.p95_ns == pytest.approx(100 + 0.95 * 1900)  # inclusive interpolation
    assert clone.host_calls == 180
    assert profile.samples("clone") == [100 * s for s in range(1, 21)]
    assert profile.samples("handshake") == [15 * s for s in range(1, 21)]


def test_only_clones_are_samples(clock: Clock) -> None:
    """The same phases outside a clone (boot, adoption, IPC handshakes) are not samples."""
    profile, host = _profile()
    with profile.phase("create_pollable_event"):
        clock.now += 5
        with profile.phase("handshake"):
            clock.now += 5
    with profile.phase("get_new_thread"):
        clock.now += 5
    with profile.phase("handshake"):
        clock.now += 5
    assert profile.statistics().phases == {}
    _one_clone(profile, host, clock)
    assert {p.count for p in profile.statistics().phases.values()} == {1}


def test_failed_clone_records_nothing(clock: Clock) -> None:
    profile, host = _profile()
    with pytest.raises(OSError), profile.phase("clone"):
        with profile.phase("get_new_thread"):
            clock.now += 10
        raise OSError(errno.EMFILE, "no")
    assert profile.statistics().phases == {}
    _one_clone(profile, host, clock)  # the stack is clean afterwards
    assert profile.statistics().phases["clone"].sum_ns == 100


def test_snapshot_is_frozen_and_independent(clock: Clock) -> None:
    profile, host = _profile()
    _one_clone(profile, host, clock)
    snap = profile.statistics()
    assert isinstance(snap, ProfileSnapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.phases = {}  # type: ignore[misc]
    phase = snap.phases["clone"]
    assert isinstance(phase, PhaseStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        phase.count = 0  # type: ignore[misc]
    _one_clone(profile, host, clock)
    assert snap.phases["clone"].count == 1
    assert profile.statistics().phases["clone"].count == 2
    assert snap.get("clone") is phase and snap.get("nothing") is None


def test_reset(clock: Clock) -> None:
    profile, host = _profile()
    _one_clone(profile, host, clock)
    profile.reset()
    assert profile.statistics().phases == {}
    assert profile.samples("clone") == []


def test_disabled_profile(clock: Clock) -> None:
    host = FakeHost()
    profile = Profile(cast(Host, host), enabled=False)
    _one_clone(profile, host, clock)
    assert profile.statistics().phases == {}


def test_phases_on_other_threads_do_not_mix(clock: Clock) -> None:
    profile, host = _profile()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with profile.phase("get_new_thread"):
            entered.set()
            leave.wait(BOUND)

    t = threading.Thread(target=other)
    t.start()
    assert entered.wait(BOUND)
    _one_clone(profile, host, clock)  # its own stack: the other thread's frame is not outer
    leave.set()
    t.join(BOUND)
    assert not t.is_alive()
    assert profile.statistics().phases["get_new_thread"].count == 1


# -- the LibOS's clone path ------------------------------------------------------------


def _clone_blocked(libos: LibOS, n: int) -> None:
    """Clone ``n`` threads that make no host call until all are cloned, then join them."""
    go = threading.Event()
    threads = [libos.clone(go.wait, BOUND) for _ in range(n)]
    go.set()
    for t in threads:
        assert t.join(BOUND)


def test_boot_is_no_sample(libos: LibOS) -> None:
    assert libos.profile.statistics().phases == {}


def test_phases_per_clone(libos: LibOS) -> None:
    n = 20
    _clone_blocked(libos, n)
    stats = libos.profile.statistics()
    expected = {"clone", "get_new_thread", "create_pollable_event"}
    if (libos.host.kind, libos.events) == ("sgx", "pipe"):
        expected.add("handshake")
    assert set(stats.phases) == expected
    assert {p.count for p in stats.phases.values()} == {n}
    # Nested: each clone's sample holds the samples of the phases inside it.
    names = [name for name in PHASES if name in expected]
    for outer, inner in itertools.pairwise(names):
        for o, i in zip(libos.profile.samples(outer), libos.profile.samples(inner), strict=True):
            assert o >= i > 0, (outer, inner)
    for name in names:
        p = stats.phases[name]
        assert p.sum_ns == sum(libos.profile.samples(name))
        assert min(libos.profile.samples(name)) <= p.median_ns <= p.p95_ns
        assert p.mean_ns == p.sum_ns / n
    for part, whole in [
        ("create_pollable_event", "get_new_thread"),
        ("create_pollable_event", "clone"),
    ]:
        ratio = stats.proportion(part, whole)
        assert ratio is not None and 0 < ratio <= 1


@pytest.mark.parametrize(
    ("kind", "events", "per_event"),
    [
        # listen, connect, accept, and the close of the listener
        ("direct", "pipe", 4),
        ("direct", "raw", 4),
        ("sgx", "raw", 4),
        ("direct", "eventfd", 1),
        ("sgx", "eventfd", 1),
    ],
)
def test_host_calls_per_clone(kind: str, events: str, per_event: int) -> None:
    with booted(kind, events) as libos:
        n = 10
        _clone_blocked(libos, n)
        stats = libos.profile.statistics()
        assert stats.phases["create_pollable_event"].host_calls == n * per_event
        assert stats.phases["get_new_thread"].host_calls == n * per_event
        assert stats.phases["clone"].host_calls == n * (per_event + 1)  # + clone_thread


def test_handshake_host_calls_on_sgx_pipes() -> None:
    with booted("sgx", "pipe") as libos:
        _clone_blocked(libos, 10)
        stats = libos.profile.statistics()
        hs = stats.phases["handshake"]
        cpe = stats.phases["create_pollable_event"]
        assert 0 < hs.host_calls <= cpe.host_calls <= stats.phases["clone"].host_calls
        assert hs.sum_ns <= cpe.sum_ns
        ratio = stats.proportion("handshake", "clone")
        assert ratio is not None and 0 < ratio < 1


def test_ipc_handshakes_are_not_samples() -> None:
    with booted("sgx", "raw") as libos:
        with libos.ipc_connect(libos.ipc_name) as client:
            client.request(1, b"x")
        assert libos.profile.statistics().phases == {}


def test_failed_clone_is_no_sample(libos: LibOS, monkeypatch: pytest.MonkeyPatch) -> None:
    _clone_blocked(libos, 2)
    before = libos.profile.statistics()

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PalError(PalErrorCode.NOMEM, "no thread")

    monkeypatch.setattr(libos.host, "thread_start_now", refuse)
    with pytest.raises(OSError):
        libos.clone(lambda: None)
    assert libos.profile.statistics() == before


def test_reset_on_a_libos(libos: LibOS) -> None:
    _clone_blocked(libos, 3)
    libos.profile.reset()
    assert libos.profile.statistics().phases == {}
    _clone_blocked(libos, 2)
    assert {p.count for p in libos.profile.statistics().phases.values()} == {2}


def test_profile_off() -> None:
    with booted("sgx", "pipe", profile=False) as libos:
        _clone_blocked(libos, 3)
        assert libos.profile.statistics().phases == {}


# -- bounded memory ---------------------------------------------------------------------


def test_memory_stays_flat_past_the_reservoir(clock: Clock) -> None:
    """The profile is on by default and a program may clone for ever: past ``RESERVOIR``
    clones it holds no more, while counts, sums and host calls stay exact."""
    import tracemalloc

    profile, host = _profile()
    n = 2 * samples_module.RESERVOIR
    for i in range(n):
        _one_clone(profile, host, clock, scale=1 + i % 200)
        if i == samples_module.RESERVOIR:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes for {n - samples_module.RESERVOIR} clones"
    stats = profile.statistics()
    clone = stats.phases["clone"]
    assert clone.count == n == profile.clones
    scales = [1 + i % 200 for i in range(n)]
    assert clone.sum_ns == 100 * sum(scales)
    assert clone.host_calls == 9 * n
    assert clone.stdev_ns == pytest.approx(statistics.stdev(100 * s for s in scales))
    assert len(profile.samples("clone")) == samples_module.RESERVOIR
    # Percentiles from a uniform sample: within a few percent of the true ones.
    assert clone.median_ns == pytest.approx(100 * statistics.median(scales), rel=0.06)
    assert clone.p95_ns == pytest.approx(100 * 190.05, rel=0.03)
    # Rows of one clone stay together: the handshake is 15% of each kept clone.
    for c, h in zip(profile.samples("clone"), profile.samples("handshake"), strict=True):
        assert h * 100 == c * 15
