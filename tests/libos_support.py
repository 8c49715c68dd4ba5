"""Helpers shared by the LibOS tests (``test_libos_*.py``), and those the other test
folders share with them (descriptors, tracing a call to interrupt it).

Tests may play the host: ``inject`` writes into the channel under a pollable event
directly, as an untrusted host could, and ``SpyWaits`` watches the waits the LibOS asks
the host for, so a test can act once a waiter is asleep instead of sleeping itself.
"""

from __future__ import annotations

import _thread
import errno
import functools
import inspect
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, TypeVar

import pytest

from pylibos.libos import EVENT_KINDS, LibOS, PollableEvent, _clone_samples, _profile
from pylibos.libos._clone_samples import RESERVOIR
from pylibos.libos._profile import Profile
from pylibos.pal import HOST_KINDS, WAIT_READ, Handle, Host, _interrupts, open_host
from pylibos.pal._identity import EventfdRegistry
from pylibos.pal._slots import ThreadSlots

CONFIGS = [(kind, events) for kind in HOST_KINDS for events in EVENT_KINDS]
"""Every (host kind, event kind) pair."""

CONFIG_IDS = [f"{kind}/{events}" for kind, events in CONFIGS]

INJECTABLE = [(kind, events) for kind, events in CONFIGS if (kind, events) != ("sgx", "pipe")]
"""Configurations whose event channel carries plain bytes a host can forge (sgx pipes are
TLS: there, forged bytes break the channel instead; see test_libos_event)."""

INJECTABLE_IDS = [f"{kind}/{events}" for kind, events in INJECTABLE]

BOUND = 10.0
"""Seconds any single wait in these tests may take before it counts as a failure."""

T = TypeVar("T")

TraceFunction = Callable[[FrameType, str, Any], Any]


def os_fork() -> int:
    """``os.fork``, without 3.12's warning that threads run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads run
        return os.fork()


def in_fork_child(
    body: Callable[[], str], timeout: float = BOUND, fork: Callable[[], int] = os_fork
) -> str:
    """Run ``body`` in a child made by ``fork`` (``os.fork``) from the calling thread, and
    return the report it returned, or what went wrong: what it raised, or that it hung
    (killed after ``timeout`` seconds).  The child never returns into the test runner."""
    read_fd, write_fd = os.pipe()
    pid = -1
    try:
        pid = fork()
        if pid == 0:  # pragma: no cover - the child
            report = "the child ended without a report"
            try:
                report = body()
            except BaseException as exc:
                report = f"the child raised {type(exc).__name__}: {exc}"
            finally:
                os.write(write_fd, report.encode()[:4000])  # one write: whole in the pipe
                os._exit(0)
        os.close(write_fd)
        write_fd = -1
        if not select.select([read_fd], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            return f"the child hung (killed after {timeout} s)"
        return os.read(read_fd, 4096).decode()
    finally:
        if pid > 0:
            os.waitpid(pid, 0)
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)


def open_fds() -> set[int]:
    """The process's open descriptors (not counting the one listing them)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue  # the directory listdir had open, closed by now
        fds.add(int(name))
    return fds


def is_open(fd: int) -> bool:
    """Whether descriptor ``fd`` is open in this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def eventfd_registry(handle: Handle) -> EventfdRegistry:
    """The eventfd registry that checks ``handle``; the test is skipped where eventfds
    are checked by inode (no kcmp here), as then there is none."""
    registry = handle._ident
    if not isinstance(registry, EventfdRegistry):
        pytest.skip("kcmp is not to be had here: eventfds are checked by inode")
    return registry


def lowest_free_is(
    number: int,
    open_one: Callable[[], T],
    close_one: Callable[[T], None],
    fd_of: Callable[[T], int],
) -> T:
    """Open objects with ``open_one`` until one gets descriptor ``number`` (lower free
    numbers are used up on the way, then let go): returns that one."""
    extra: list[T] = []
    try:
        for _ in range(64):
            made = open_one()
            if fd_of(made) == number:
                return made
            extra.append(made)
        raise AssertionError(f"descriptor {number} was never handed out again")
    finally:
        for made in extra:
            close_one(made)


@contextmanager
def eventfd_number_taken_over(host: Host) -> Iterator[tuple[Handle, Handle]]:
    """Play the host that takes an eventfd away keeping a copy (so the eventfd registry's
    entry for it lives on), with the PAL's next eventfd getting its number: yields the old
    handle and the new one.  The host's copy is closed when the block ends."""
    old = host.stream_open("eventfd:", nonblocking=True)
    number = old._fd
    copy = os.dup(number)
    try:
        os.close(number)
        yield (
            old,
            lowest_free_is(
                number,
                lambda: host.stream_open("eventfd:", nonblocking=True),
                host.close,
                lambda handle: handle._fd,
            ),
        )
    finally:
        os.close(copy)


def wait_until(predicate: Callable[[], bool], timeout: float = BOUND) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; True if it held.

    For conditions nothing signals (a host's thread list, a counter another thread
    bumps); the caller asserts the result, so a slow machine fails loudly, not silently.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.002)
    return True


def assert_released(host: Host, held: Sequence[Handle] = ()) -> None:
    """Nothing of the LibOS is left on ``host``: no handle but ``held``, no live thread."""
    leftover = set(host.open_handles()) - set(held)
    assert not leftover, f"handles left open: {leftover}"
    assert wait_until(lambda: not host.live_threads()), f"threads: {host.live_threads()}"


@contextmanager
def booted(
    kind: str,
    events: str | None = None,
    *,
    pool: bool = False,
    ipc_name: str | None = None,
    profile: bool = True,
    profile_every: int = 1,
    **host_options: Any,
) -> Iterator[LibOS]:
    """A LibOS on a fresh host; on a clean exit, checks that shutdown released all.  Its
    profile times every clone unless ``profile_every`` says otherwise (the tests count
    clones)."""
    host = open_host(kind, **host_options)
    try:
        with LibOS(
            host, events, pool, profile=profile, profile_every=profile_every, ipc_name=ipc_name
        ) as libos:
            yield libos
        assert_released(host)
    finally:
        host.shutdown()


def readable(host: Host, event: PollableEvent) -> bool:
    """What the host says about the event's channel right now."""
    return bool(host.streams_wait_events([event.read_handle], [WAIT_READ], 0)[0])


def inject(event: PollableEvent, count: int = 1) -> None:
    """Play the host: put ``count`` wakeups into the channel under ``event``."""
    write = event._write
    if write._sock is not None:
        write._sock.sendall(b"\x01" * count)
    else:
        os.eventfd_write(write._fd, count)


class SpyWaits:
    """Records every ``streams_wait_events`` call made on ``host``, then makes it.

    ``before`` (if given) runs just before a call goes to the host, on the calling
    thread, with the handles of that call: the place to inject a race.
    """

    def __init__(self, host: Host) -> None:
        self._host = host
        self._real = host.streams_wait_events
        self._cond = threading.Condition()
        self.calls: list[tuple[int, list[Handle]]] = []
        self.before: Callable[[list[Handle]], None] | None = None

    def __call__(
        self, handles: Sequence[Handle], events: Sequence[int], timeout_us: int | None
    ) -> list[int]:
        with self._cond:
            self.calls.append((threading.get_ident(), list(handles)))
            self._cond.notify_all()
        before = self.before
        if before is not None:
            before(list(handles))
        return self._real(handles, events, timeout_us)

    def install(self) -> SpyWaits:
        self._host.streams_wait_events = self  # type: ignore[method-assign]
        return self

    def remove(self) -> None:
        del self._host.streams_wait_events

    def wait_for(self, predicate: Callable[[list[tuple[int, list[Handle]]]], bool]) -> bool:
        """Wait (bounded) until ``predicate(calls)`` holds."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.calls), BOUND)


@contextmanager
def spying(host: Host) -> Iterator[SpyWaits]:
    spy = SpyWaits(host).install()
    try:
        yield spy
    finally:
        spy.remove()


class Pipe:
    """Both ends of an ``os.pipe()``; a test closes one with ``close`` (the fixture
    closes what is left)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def close(self, end: str) -> None:
        """Close ``"r"`` or ``"w"`` now: the other end sees the hang-up or the error."""
        os.close(getattr(self, end))
        setattr(self, end, -1)


MakePair = Callable[[], tuple[socket.socket, socket.socket]]
"""The ``socketpairs`` fixture: makes connected socket pairs, closed when the test ends."""


@contextmanager
def descriptors_exhausted(spare: int = 0) -> Iterator[None]:
    """Play a host that has run the process out of descriptors: RLIMIT_NOFILE lowered and
    the free numbers under it taken, so that exactly ``spare`` more can be opened and
    every one after fails with EMFILE, until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(open_fds()) + 1 + spare, hard))
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        for _ in range(spare):
            os.close(fillers.pop())
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Parked:
    """The body of threads that say they have started, then wait (on nothing the LibOS
    or the host can wake) until the test releases them, ``wait`` seconds at most."""

    def __init__(self, wait: float = BOUND) -> None:
        self._started = threading.Semaphore(0)
        self._go = threading.Event()
        self._wait = wait

    def __call__(self) -> None:
        self._started.release()
        self._go.wait(self._wait)

    def started(self, count: int = 1) -> bool:
        """True once ``count`` threads have started (each is counted once)."""
        return all(self._started.acquire(timeout=BOUND) for _ in range(count))

    def release(self) -> None:
        self._go.set()


def failing_start_report(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Callable[[], None]]:
    """Start, with ``_thread.start_new_thread``, a function that raises ``KeyError('lost')``:
    the ``sys.unraisablehook`` arguments its failure is reported with, and the function."""
    got: list[Any] = []
    reported = threading.Event()

    def hook(args: Any) -> None:
        got.append(args)
        reported.set()

    monkeypatch.setattr(sys, "unraisablehook", hook)

    def boom() -> None:
        raise KeyError("lost")

    _thread.start_new_thread(boom, ())
    assert reported.wait(BOUND)
    (args,) = got
    return args, boom


def assert_profile_whole(profile: Profile) -> None:
    """The profile's moments and reservoir agree: every row as long as the clones kept,
    and as many clones in the moments as recorded."""
    with profile._lock:
        clones = profile._sampled
        rows = {name: len(row) for name, row in profile._kept.items()}
        counts = {name: m[0] for name, m in profile._moments.items()}
    assert set(rows.values()) <= {min(clones, RESERVOIR)}, rows
    assert counts.get("clone", 0) == clones


def run_traced(work: Callable[[], object], tracer: TraceFunction) -> None:
    """Run ``work`` with ``tracer`` as this thread's trace function, unset after."""
    sys.settrace(tracer)
    try:
        work()
    finally:
        sys.settrace(None)


def interrupted(work: Callable[[], object], tracer: TraceFunction) -> bool:
    """Run ``work`` traced by ``tracer``, which interrupts it somewhere (as a Ctrl-C
    would); True if a KeyboardInterrupt came out of ``work``."""
    try:
        run_traced(work, tracer)
    except KeyboardInterrupt:
        return True
    return False


def tracing_only(code: CodeType, local: TraceFunction) -> TraceFunction:
    """A trace function that hands the frames of ``code`` to ``local``, and no other."""

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return tracer


def held_where(
    code: CodeType, when: Callable[[FrameType], bool]
) -> tuple[TraceFunction, threading.Event, threading.Event]:
    """A trace function (for ``run_traced``) that holds its thread at the first line of a
    frame of ``code`` where ``when(frame)`` is true, as the scheduler may stop a thread
    there, until ``go`` is set (within BOUND); ``held`` is set once it is held.  Returns
    (tracer, held, go)."""
    held, go = threading.Event(), threading.Event()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and not held.is_set() and when(frame):
            held.set()
            go.wait(BOUND)
        return local

    return tracing_only(code, local), held, go


def fork_while_held(
    start: Callable[[Callable[[], None]], Any],
    work: Callable[[], object],
    code: CodeType,
    when: Callable[[FrameType], bool],
    child: Callable[[], str],
) -> str:
    """Hold a thread of this process inside ``work`` (at the first line of a frame of
    ``code`` where ``when(frame)``, see ``held_where``), fork from the calling thread,
    and return what ``child`` reported in the child (``in_fork_child``, 5 s); then let
    the held thread go and join it.  ``start(fn)`` starts the thread that runs ``fn``
    (``LibOS.clone``, a ``threading.Thread``...) and returns something to ``join``."""
    tracer, held, go = held_where(code, when)
    thread = start(functools.partial(run_traced, work, tracer))
    try:
        assert held.wait(BOUND), "the thread never reached the line it is held at"
        return in_fork_child(child, timeout=5.0)
    finally:
        go.set()
        thread.join(BOUND)


def seconds_taken(work: Callable[[], object]) -> Callable[[], str]:
    """A fork child's body: run ``work``, report the seconds it took (``"1.23"``)."""

    def body() -> str:  # pragma: no cover - runs in the fork child
        t0 = time.monotonic()
        work()
        return f"{time.monotonic() - t0:.2f}"

    return body


def started_thread(fn: Callable[[], None]) -> threading.Thread:
    """``fn`` running on a new ``threading.Thread``."""
    thread = threading.Thread(target=fn)
    thread.start()
    return thread


_PROFILE_FILES = (_profile.__file__, _clone_samples.__file__)


def _noop() -> None:
    pass


def clone_with_sigint_at(libos: LibOS, n: int, fn: Callable[[], object] | None = None) -> bool:
    """Clone ``fn`` (a no-op by default) once on the calling (main) thread with a SIGINT,
    delivered by the PAL's real handler (so a critical section defers it, as a real one
    is), at the ``n``-th line the clone path or the profile's code runs; the thread, if
    one was made, is joined.  Returns whether the SIGINT fired."""
    count = 0
    fired = False
    clone_path = LibOS._clone.__code__

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count, fired
        code = frame.f_code
        if event == "line" and (code is clone_path or code.co_filename in _PROFILE_FILES):
            count += 1
            if count == n:
                fired = True
                _interrupts._on_sigint(signal.SIGINT, frame)
        return tracer

    made: list[Any] = []
    sys.settrace(tracer)
    try:
        try:
            made.append(libos.clone(fn if fn is not None else _noop))
        finally:
            sys.settrace(None)
    except KeyboardInterrupt:
        assert fired, "a KeyboardInterrupt no SIGINT of ours raised"
    for thread in made:
        assert thread.join(BOUND)
    return fired


def _with_lines(code: CodeType) -> set[int]:
    """Lines opening a ``with`` block: their exit is given the line again, at a step
    where the interpreter runs no signal handler (not a place a Ctrl-C can land)."""
    lines, first = inspect.getsourcelines(code)
    return {first + i for i, line in enumerate(lines) if line.lstrip().startswith("with ")}


def sigint_at_line(code: CodeType, n: int, fired: list[int]) -> TraceFunction:
    """A trace function (for ``sys.settrace``) that calls the PAL's own SIGINT handler, as
    the interpreter would run it on a real Ctrl-C (a critical section defers it), at the
    ``n``-th line the main thread runs in frames of ``code``, but for its ``with``
    lines; that line's number goes in ``fired``."""
    count = 0
    skip = _with_lines(code)
    main = threading.main_thread().ident

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line" and threading.get_ident() == main and frame.f_lineno not in skip:
            count += 1
            if count == n:
                fired.append(frame.f_lineno)
                _interrupts._on_sigint(signal.SIGINT, frame)
        return local

    return tracing_only(code, local)


def waits_for_a_thread_slot(ident: int | None) -> bool:
    """Whether the thread ``ident`` is in a host's wait for a thread slot."""
    frame = sys._current_frames().get(ident or 0)
    while frame is not None:
        if frame.f_code is ThreadSlots._await_slot.__code__:
            return True
        frame = frame.f_back
    return False


class InterruptAtLine:
    """A frame's trace function raising the KeyboardInterrupt a Ctrl-C would at the
    ``n``-th line event it is given, once; ``fired`` holds that line's number."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.fired: list[int] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> InterruptAtLine:
        if event == "line" and not self.fired:
            self.count += 1
            if self.count == self.n:
                self.fired.append(frame.f_lineno)
                raise KeyboardInterrupt
        return self


@contextmanager
def thread_under_the_hook() -> Iterator[threading.Thread]:
    """A ``threading.Thread`` not yet started, with a LibOS (sgx, pooled eventfd events)
    installed under ``threading``.  After the block the thread is out of
    ``threading._limbo`` whatever happened, everything is shut down, and no descriptor
    the block opened is left."""
    from pylibos.libos import Hook

    fds = open_fds()
    host = open_host("sgx")
    libos = LibOS(host, "eventfd", True)
    hook = Hook(libos).install()
    thread = threading.Thread(target=lambda: None)
    try:
        yield thread
    finally:
        threading._limbo.pop(thread, None)  # type: ignore[attr-defined]
        hook.uninstall()
        libos.shutdown()
        host.shutdown()
    assert wait_until(lambda: open_fds() <= fds)


def documented(text: str, doc: str = "docs/epoll.md") -> bool:
    """Whether ``doc`` (a path from the project's root) says ``text``, line breaks and
    runs of spaces aside: a documented difference's test holds that the docs name it."""
    words = (Path(__file__).resolve().parents[1] / doc).read_text()
    return text in " ".join(words.split())
