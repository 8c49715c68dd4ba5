"""LibOS threads: clone, join, failure propagation, the thread table, and clone failures
that leave nothing half-made."""

from __future__ import annotations

import errno
import threading

import pytest

from libos_support import BOUND, Parked, booted, descriptors_exhausted, open_fds, wait_until
from pylibos.libos import EVENT_KINDS, LibOS, LibOSThread, ThreadFailed


def _tids(libos: LibOS) -> set[int]:
    return {t.tid for t in libos.threads()}


def test_clone_runs_the_function_on_a_libos_thread(libos: LibOS) -> None:
    seen: list[object] = []

    def fn(a: int, b: str) -> None:
        me = libos.current_thread()
        seen.extend([a, b, me, libos.thread_by_tid(me.tid), threading.get_ident()])

    t = libos.clone(fn, 1, "two", name="worker")
    assert isinstance(t, LibOSThread) and isinstance(t.tid, int)
    assert t.name == "worker"
    assert t.join(BOUND) is True
    assert seen[:4] == [1, "two", t, t]
    assert seen[4] != threading.get_ident()
    assert not t.is_alive()
    assert "done" in repr(t)


def test_a_cloned_thread_is_known_by_ident_only_while_it_runs() -> None:
    """A cloned thread finds itself without thread-local state; once it has ended, a
    thread the OS gives the same ident (idents are reused) is not taken for it: the
    LibOS adopts it as a thread of its own."""
    with booted("sgx", "raw") as libos:
        idents: list[int] = []
        t = libos.clone(lambda: idents.append(threading.get_ident()))
        assert t.join(BOUND)
        assert libos._running == {}
        found: list[tuple[int, LibOSThread]] = []

        def native() -> None:
            found.append((threading.get_ident(), libos.current_thread()))

        for _ in range(20):  # until the OS hands out the ended thread's ident again
            n = threading.Thread(target=native)
            n.start()
            n.join(BOUND)
            if found[-1][0] == idents[0]:
                break
        _ident, me = found[-1]
        assert me is not t and me.tid != t.tid
        assert wait_until(lambda: len(libos.threads()) == 1)  # the adopted one went too


def test_tids_are_unique(libos: LibOS) -> None:
    threads = [libos.clone(lambda: None) for _ in range(50)]
    for t in threads:
        assert t.join(BOUND)
    tids = [t.tid for t in threads]
    assert len(set(tids)) == len(tids)
    assert libos.main_thread.tid not in tids
    assert all(t.name == f"thread-{t.tid}" for t in threads)


def test_thread_table_and_event_lifetime(libos: LibOS) -> None:
    parked = Parked()
    t = libos.clone(parked)
    assert parked.started()
    assert t.is_alive() and "running" in repr(t)
    assert libos.thread_by_tid(t.tid) is t
    assert t.tid in _tids(libos)
    handles = {t.event.read_handle, t.event._write}
    assert handles <= set(libos.host.open_handles())
    assert t.join(0.01) is False  # still running
    parked.release()
    assert t.join(BOUND)
    assert libos.thread_by_tid(t.tid) is None
    assert _tids(libos) == {libos.main_thread.tid}
    assert t.event.closed
    assert not handles & set(libos.host.open_handles())


@pytest.mark.parametrize("events", EVENT_KINDS)
def test_exited_thread_event_goes_to_the_pool(events: str) -> None:
    with booted("sgx", events, pool=True) as libos:
        factory = libos._factory
        assert factory.pooled == 0
        t = libos.clone(lambda: None)
        assert t.join(BOUND)
        assert factory.pooled == 1 and not t.event.closed
        u = libos.clone(lambda: None)
        assert u.event is t.event
        assert u.join(BOUND)
        assert factory.pooled == 1


def test_child_exception_is_raised_by_join(libos: LibOS) -> None:
    boom = ValueError("boom")

    def fn() -> None:
        raise boom

    t = libos.clone(fn, name="bad")
    with pytest.raises(ThreadFailed, match=rf"thread {t.tid} \(bad\) failed") as info:
        t.join(BOUND)
    assert info.value.__cause__ is boom
    assert t.exception is boom
    assert libos.thread_by_tid(t.tid) is None and t.event.closed
    with pytest.raises(ThreadFailed):  # every join says so
        t.join(BOUND)


def test_base_exception_in_child_is_kept_too(libos: LibOS) -> None:
    def fn() -> None:
        raise SystemExit(3)

    t = libos.clone(fn)
    with pytest.raises(ThreadFailed) as info:
        t.join(BOUND)
    assert isinstance(info.value.__cause__, SystemExit)


# -- clone failures --------------------------------------------------------------------


@pytest.mark.parametrize("events", EVENT_KINDS)
def test_clone_past_max_threads(events: str) -> None:
    """sgx.max_threads = 4: the main thread and the two workers hold three slots, one
    clone takes the last, and the next fails with ENOMEM (as Gramine's exhausted TCS
    does) leaving the thread table, the host's handles and the fds as they were."""
    with booted("sgx", events, max_threads=4) as libos:
        host = libos.host
        go = threading.Event()
        first = libos.clone(go.wait, BOUND)
        tids, handles, fds = _tids(libos), set(host.open_handles()), open_fds()
        profile = libos.profile.statistics()
        host.slot_timeout = 0.05  # ENOMEM after this wait for a slot (0.25 s by default)
        with pytest.raises(OSError) as info:
            libos.clone(lambda: None)
        assert info.value.errno == errno.ENOMEM
        assert "max_threads" in str(info.value)
        assert _tids(libos) == tids
        assert set(host.open_handles()) == handles
        assert open_fds() == fds
        assert libos.profile.statistics() == profile  # a failed clone is no sample
        go.set()
        assert first.join(BOUND)
        # The slot is free again.
        assert wait_until(lambda: len(host.live_threads()) == 2)
        again = libos.clone(lambda: None)
        assert again.join(BOUND)


@pytest.mark.parametrize("spare", [0, 1, 2], ids=lambda n: f"spare{n}")
def test_clone_without_descriptors(libos: LibOS, spare: int) -> None:
    """With ``spare`` descriptors left, making the thread's event fails at its first,
    second or third host object (listener, connecting end, accepted end; an eventfd needs
    one): clone raises EMFILE and nothing it made is left."""
    host = libos.host
    need = 1 if libos.events == "eventfd" else 3
    tids, handles, fds = _tids(libos), set(host.open_handles()), open_fds()
    with descriptors_exhausted(spare):
        if spare < need:
            with pytest.raises(OSError) as info:
                libos.clone(lambda: None)
        else:
            t = libos.clone(lambda: None)
    if spare < need:
        assert info.value.errno == errno.EMFILE
        assert _tids(libos) == tids
    else:
        assert t.join(BOUND)
    assert set(host.open_handles()) == handles
    assert open_fds() == fds
    # With the limit back, the LibOS goes on.
    ok = libos.clone(lambda: None)
    assert ok.join(BOUND)
    assert _tids(libos) == tids


def test_create_pollable_event_without_descriptors(libos: LibOS) -> None:
    handles = set(libos.host.open_handles())
    with descriptors_exhausted(0), pytest.raises(OSError) as info:
        libos.create_pollable_event()
    assert info.value.errno == errno.EMFILE
    assert set(libos.host.open_handles()) == handles
    ev = libos.create_pollable_event()
    ev.destroy()


def test_host_thread_failure_undoes_the_clone(
    libos: LibOS, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pylibos.pal import PalError, PalErrorCode

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PalError(PalErrorCode.NOMEM, "no thread for you")

    tids, handles = _tids(libos), set(libos.host.open_handles())
    monkeypatch.setattr(libos.host, "thread_start_now", refuse)
    with pytest.raises(OSError) as info:
        libos.clone(lambda: None)
    assert info.value.errno == errno.ENOMEM
    assert _tids(libos) == tids
    assert set(libos.host.open_handles()) == handles


# -- many threads ----------------------------------------------------------------------


@pytest.mark.parametrize("events", EVENT_KINDS)
@pytest.mark.parametrize("pool", [False, True], ids=["", "pool"])
def test_thousands_of_threads_leave_nothing(events: str, pool: bool) -> None:
    """2000 threads in batches of 100 (600 on sgx/pipe, a TLS handshake each), and nothing
    is left but what the pool holds."""
    batches = 6 if events == "pipe" else 20
    with booted("sgx", events, pool=pool) as libos:
        host = libos.host
        fds, handles = open_fds(), set(host.open_handles())
        threads = set(threading.enumerate())
        ran = 0
        lock = threading.Lock()

        def fn() -> None:
            nonlocal ran
            with lock:
                ran += 1

        for _ in range(batches):
            batch = [libos.clone(fn) for _ in range(100)]
            for t in batch:
                assert t.join(BOUND)
        assert ran == batches * 100
        assert _tids(libos) == {libos.main_thread.tid}
        assert wait_until(lambda: len(host.live_threads()) == 2)  # the two workers
        assert wait_until(lambda: set(threading.enumerate()) <= threads)
        pooled = {h for ev in libos._factory._free for h in (ev.read_handle, ev._write)}
        assert set(host.open_handles()) - pooled == handles
        assert len(pooled) <= (200 if pool else 0)
        assert open_fds() - fds <= {h._fd for h in pooled}
