"""The sampling profile: one clone in ``every`` is timed, systematically; a clone not
sampled pays nothing else of the profile and leaves no trace in it; the figures over the
sample match those over every clone; the interval is checked; a Ctrl-C anywhere on the
clone path and a fork child leave the sampling whole."""

from __future__ import annotations

import random
import threading
from types import SimpleNamespace
from typing import Any, cast

import pytest

from libos_support import BOUND, assert_profile_whole, booted, clone_with_sigint_at, in_fork_child
from pylibos.libos import SAMPLE_EVERY, LibOS, Profile
from pylibos.libos import _profile as profile_module
from pylibos.pal import Host, open_host


def _noop() -> None:
    return None


class _Host:
    calls_total = 0

    def thread_calls(self) -> int:
        return self.calls_total


class _Clock:
    now = 0

    def perf_counter_ns(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    fake_time = SimpleNamespace(perf_counter_ns=fake.perf_counter_ns)
    monkeypatch.setattr(profile_module, "time", fake_time)
    return fake


def _clone(profile: Profile, host: _Host, clock: _Clock, scale: int, hs: int = 15) -> None:
    """One clone timed with phase frames: clone 100, get_new_thread 50,
    create_pollable_event 30 with a handshake of ``hs`` inside, times ``scale`` ns; one
    host call in the handshake and one in the clone around it."""
    with profile.phase("clone"):
        clock.now += 10 * scale
        with profile.phase("get_new_thread"):
            clock.now += 10 * scale
            with profile.phase("create_pollable_event"):
                with profile.phase("handshake"):
                    clock.now += hs * scale
                    host.calls_total += 1
                clock.now += (30 - hs) * scale
            clock.now += 10 * scale
        clock.now += 40 * scale
        host.calls_total += 1


@pytest.mark.parametrize("every", [1, 3, SAMPLE_EVERY])
def test_one_clone_in_every_is_sampled_systematically(clock: _Clock, every: int) -> None:
    host = _Host()
    profile = Profile(cast(Host, host), every=every)
    k = 5 * every
    for i in range(k):
        _clone(profile, host, clock, scale=i + 1)
    assert profile.clones == k // every
    assert profile.started == k
    # The first clone, then every ``every``-th after it.
    assert profile.samples("clone") == [100 * (i + 1) for i in range(0, k, every)]
    assert profile.samples("handshake") == [15 * (i + 1) for i in range(0, k, every)]
    stats = profile.statistics()
    assert (stats.started, stats.sampled, stats.every) == (k, k // every, every)
    assert {p.count for p in stats.phases.values()} == {k // every}
    assert stats.phases["clone"].host_calls == 2 * (k // every)
    assert stats.phases["handshake"].host_calls == k // every


def test_the_libos_samples_one_clone_in_profile_every() -> None:
    with booted("sgx", "raw", profile_every=4) as libos:
        for _ in range(12):
            assert libos.clone(_noop).join(BOUND)
        stats = libos.profile.statistics()
        assert (stats.started, stats.sampled, stats.every) == (12, 3, 4)
        assert {p.count for p in stats.phases.values()} == {3}
        # Per sampled clone: listen, connect, accept, the listener's close, clone_thread.
        assert stats.phases["clone"].host_calls == 3 * 5
        assert_profile_whole(libos.profile)


def test_a_libos_times_every_clone_unless_told() -> None:
    host = open_host("direct")
    try:
        with (
            LibOS(host, "eventfd") as libos,
            LibOS(host, "eventfd", profile_every=SAMPLE_EVERY) as sampling,
        ):
            assert (libos.profile.every, sampling.profile.every) == (1, SAMPLE_EVERY) == (1, 8)
            for _ in range(2 * SAMPLE_EVERY):
                assert libos.clone(_noop).join(BOUND)
                assert sampling.clone(_noop).join(BOUND)
            assert (libos.profile.started, libos.profile.clones) == (16, 16)
            assert (sampling.profile.started, sampling.profile.clones) == (16, 2)
    finally:
        host.shutdown()


def test_an_unsampled_clone_with_handshakes_leaves_no_trace(clock: _Clock) -> None:
    """Phase frames opened in a clone not sampled are null frames: no sample, nothing
    carried into the next sampled clone."""
    host = _Host()
    profile = Profile(cast(Host, host), every=2)
    _clone(profile, host, clock, scale=1)  # sampled
    state = profile._local.state
    kept = (state.acc, dict(state.acc or {}))
    with profile.phase("clone") as nothing:  # not sampled
        assert nothing is None
        for name in ("get_new_thread", "create_pollable_event", "handshake", "handshake"):
            frame = profile.phase(name)
            assert frame is profile_module._NULL, name
            with frame:
                clock.now += 1000
                host.calls_total += 1
    assert (state.acc, dict(state.acc or {})) == kept and not state.stack and not state.clone
    _clone(profile, host, clock, scale=3)  # sampled
    _clone(profile, host, clock, scale=4)  # not sampled
    assert profile.samples("clone") == [100, 300]
    assert profile.samples("handshake") == [15, 45]
    assert profile.statistics().phases["handshake"].host_calls == 2
    assert profile.statistics().phases["clone"].host_calls == 4
    assert (profile.started, profile.clones) == (4, 2)


def test_unsampled_clones_on_sgx_pipes_time_no_handshake() -> None:
    """On sgx pipes each clone's event handshakes inside ``host.phase``: a clone not
    sampled gets null frames only, and the sampled ones' handshakes are theirs alone."""
    with booted("sgx", "pipe", profile_every=3) as libos:
        profile = libos.profile
        given: list[tuple[int, bool]] = []
        clone_no = [0]
        phase = libos.host.phase

        def spy(name: str) -> Any:
            timer = phase(name)
            given.append((clone_no[0], timer is not profile_module._NULL))
            return timer

        libos.host.phase = spy
        try:
            for i in range(6):
                clone_no[0] = i
                assert libos.clone(_noop).join(BOUND)
        finally:
            libos.host.phase = phase
        assert {n for n, _ in given} == set(range(6))  # every clone handshook
        assert {n for n, timed in given if timed} == {0, 3}
        stats = profile.statistics()
        assert (stats.started, stats.sampled) == (6, 2)
        assert stats.phases["handshake"].count == 2
        for c, h in zip(profile.samples("clone"), profile.samples("handshake"), strict=True):
            assert 0 < h < c
        assert not profile._local.state.clone and not profile._local.state.stack


def test_sampled_figures_match_those_of_every_clone(clock: _Clock) -> None:
    """The same clones (spread out, skewed) through an every-clone profile and a sampled
    one: the sample's mean, median, p95 and proportions are within a few percent."""
    host = _Host()
    every_clone = Profile(cast(Host, host), every=1)
    sampled = Profile(cast(Host, host), every=SAMPLE_EVERY)
    rng = random.Random(12)
    for _ in range(8000):
        scale = 1 + int(rng.lognormvariate(3, 0.4))
        hs = rng.randrange(5, 25)
        _clone(every_clone, host, clock, scale, hs)
        _clone(sampled, host, clock, scale, hs)
    full, part = every_clone.statistics(), sampled.statistics()
    assert (part.started, part.sampled) == (8000, 1000)
    assert full.sampled == full.started == 8000
    for name in ("clone", "get_new_thread", "create_pollable_event", "handshake"):
        f, p = full.phases[name], part.phases[name]
        assert p.mean_ns == pytest.approx(f.mean_ns, rel=0.05), name
        assert p.median_ns == pytest.approx(f.median_ns, rel=0.06), name
        assert p.p95_ns == pytest.approx(f.p95_ns, rel=0.08), name
        assert p.host_calls_per_call == f.host_calls_per_call, name
    for key, value in full.proportions().items():
        assert value is not None
        assert part.proportions()[key] == pytest.approx(value, rel=0.05), key


@pytest.mark.parametrize(
    ("every", "error", "says"),
    [
        (0, ValueError, "at least 1"),
        (-8, ValueError, "at least 1"),
        ("8", TypeError, "must be an int"),
        (8.0, TypeError, "must be an int"),
        (True, TypeError, "must be an int"),
        (None, TypeError, "must be an int"),
    ],
)
def test_the_interval_is_checked(every: object, error: type[Exception], says: str) -> None:
    host = open_host("direct")
    try:
        before = host.open_handles()
        with pytest.raises(error, match=says):
            LibOS(host, profile_every=every)  # type: ignore[arg-type]
        assert host.open_handles() == before  # refused before anything was made
        with pytest.raises(error, match=says):
            Profile(host, every=every)  # type: ignore[arg-type]
    finally:
        host.shutdown()


def test_an_off_profile_counts_starts_and_samples_none() -> None:
    with booted("sgx", "raw", profile=False, profile_every=1) as libos:
        for _ in range(3):
            assert libos.clone(_noop).join(BOUND)
        stats = libos.profile.statistics()
        assert (stats.started, stats.sampled, stats.every, stats.phases) == (3, 0, None, {})


def test_reset_keeps_the_sampling_in_step() -> None:
    """A reset forgets the samples, not the sampling's place: resets at a period (one
    per batch of 3 here) sample every position of a batch in turn, not its first clone
    every time."""
    with booted("direct", "eventfd", profile_every=4) as libos:
        profile = libos.profile
        sampled_at: list[int] = []
        for _batch in range(4):
            in_batch = 0
            for position in range(3):
                before = profile.clones
                assert libos.clone(_noop).join(BOUND)
                if profile.clones > before:
                    sampled_at.append(position)
                    in_batch += 1
            stats = profile.statistics()
            assert (stats.started, stats.sampled) == (3, in_batch)
            profile.reset()
        # Clones 0, 4 and 8 of the 12: positions 0, 1 and 2 of their batches.
        assert sampled_at == [0, 1, 2]
        assert (profile.started, profile.clones) == (0, 0)


def test_a_failed_clone_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    with booted("direct", "eventfd", profile_every=2) as libos:
        assert libos.clone(_noop).join(BOUND)

        def refuse(*_args: object, **_kwargs: object) -> None:
            from pylibos.pal import PalError, PalErrorCode

            raise PalError(PalErrorCode.NOMEM, "no thread")

        before = libos.profile.statistics()
        monkeypatch.setattr(libos.host, "thread_start_now", refuse)
        for _ in range(3):  # sampled or not, each is no sample and no start
            with pytest.raises(OSError):
                libos.clone(_noop)
        monkeypatch.undo()
        assert libos.profile.statistics() == before
        assert not libos.profile._local.state.clone


@pytest.mark.parametrize("turn", [0, 1])  # the interrupted clone sampled, or not
def test_interrupt_anywhere_keeps_the_sampling_whole(turn: int) -> None:
    """A Ctrl-C at any line of a sampled or an unsampled clone: the profile stays whole,
    no frame is left open, and any ``every`` clones after it hold exactly one sample."""
    every = 3
    with booted("sgx", "raw", profile_every=every) as libos:
        profile = libos.profile
        for _ in range(turn):
            assert libos.clone(_noop).join(BOUND)
        n = 1
        while clone_with_sigint_at(libos, n):
            assert_profile_whole(profile)
            before = profile.clones
            for _ in range(every):
                assert libos.clone(_noop).join(BOUND)
            assert profile.clones == before + 1, n
            assert not profile._local.state.clone and not profile._local.state.stack
            assert profile.started <= profile.clones * every + every
            profile.reset()
            for _ in range(turn):
                assert libos.clone(_noop).join(BOUND)
            n += 1
        assert n > 10 if turn else n > 20
        assert_profile_whole(profile)


def test_a_fork_child_keeps_sampling() -> None:
    """A child forked while clones run samples on from where the parent was."""
    every = 4
    with booted("direct", "eventfd", profile_every=every) as libos:
        profile = libos.profile
        for _ in range(every + 1):  # clones 0 and 4 sampled
            assert libos.clone(_noop).join(BOUND)
        go = threading.Event()
        busy = [libos.clone(go.wait, BOUND) for _ in range(2)]  # 5 and 6: not sampled

        def child() -> str:  # pragma: no cover - runs in the fork child
            before = (profile.started, profile.clones)
            for _ in range(2 * every):
                libos.clone(_noop).join(BOUND)
            assert_profile_whole(profile)
            return f"{before} {(profile.started, profile.clones)}"

        try:
            answer = in_fork_child(child)
        finally:
            go.set()
            for t in busy:
                assert t.join(BOUND)
        # The child's clones 7 to 14: 8 and 12 sampled.
        assert answer == f"{(every + 3, 2)} {(3 * every + 3, 4)}", answer
        assert (profile.started, profile.clones) == (every + 3, 2)


def test_turning_the_profile_off_and_on() -> None:
    with booted("direct", "eventfd", profile_every=2) as libos:
        libos.profile.enabled = False
        for _ in range(2):
            assert libos.clone(_noop).join(BOUND)
        assert libos.profile.statistics().phases == {}
        libos.profile.enabled = True
        for _ in range(3):  # the first after it, then every second
            assert libos.clone(_noop).join(BOUND)
        assert (libos.profile.started, libos.profile.clones) == (3, 2)
