"""The thread-start hook: the program's threads and epoll through the LibOS, transparently.

Every transparency case runs natively and under the hook, with the same assertions: what
a program sees must not depend on whether the LibOS is underneath.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import dis
import select
import selectors
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest

from libos_support import BOUND, assert_profile_whole, failing_start_report, wait_until
from pylibos import pal
from pylibos.libos import Epoll, Hook, LibOS, install, installed
from pylibos.libos import _clone_samples as samples_module
from pylibos.libos import _event as event_module
from pylibos.libos import _hook as hook_module
from pylibos.libos import _libos as libos_module
from pylibos.libos import _profile as profile_module
from pylibos.libos import _thread as thread_module
from pylibos.pal import _interrupts


def _hooked_names() -> dict[str, object]:
    """Every attribute the hook replaces, as the interpreter has it now."""
    names: dict[str, object] = {
        "_thread.start_new_thread": _thread.start_new_thread,
        "_thread.start_new": _thread.start_new,
        "select.epoll": select.epoll,
        "EpollSelector._selector_cls": vars(selectors.EpollSelector)["_selector_cls"],
    }
    for mod, attr in (
        (threading, "_start_new_thread"),
        (threading, "_start_joinable_thread"),
        (_thread, "start_joinable_thread"),
    ):
        if attr in vars(mod):
            names[f"{mod.__name__}.{attr}"] = vars(mod)[attr]
    return names


ORIGINAL = _hooked_names()


@dataclass
class Under:
    """What a transparency test runs under: nothing (native) or a LibOS with its hook."""

    libos: LibOS | None
    hook: Hook | None

    def started(self) -> int:
        return self.hook.threads_created if self.hook else 0


@contextmanager
def under(config: str) -> Iterator[Under]:
    if config == "native":
        yield Under(None, None)
        return
    kind, events = config.split("/")
    host = pal.open_host(kind)
    libos = LibOS(host, events)
    try:
        with install(libos) as hook:
            yield Under(libos, hook)
    finally:
        libos.shutdown()
        host.shutdown()
    assert _hooked_names() == ORIGINAL


CONFIGS = ["native", "direct/pipe", "sgx/raw", "sgx/eventfd"]


@pytest.fixture(params=CONFIGS)
def env(request: pytest.FixtureRequest) -> Iterator[Under]:
    with under(request.param) as u:
        yield u


def _run(target: Callable[[], object], **kw: Any) -> threading.Thread:
    t = threading.Thread(target=target, **kw)
    t.start()
    t.join(BOUND)
    assert not t.is_alive()
    return t


# -- transparency ----------------------------------------------------------------------


class TestTransparency:
    def test_current_thread_name_and_ident(self, env: Under) -> None:
        seen: list[Any] = []

        def body() -> None:
            me = threading.current_thread()
            seen.append((me, me.name, me.ident, threading.get_ident(), me.native_id))

        t = _run(body, name="worker-x")
        me, name, ident, get_ident, native_id = seen[0]
        assert me is t and name == "worker-x"
        assert ident == get_ident == t.ident and native_id == t.native_id is not None
        assert threading.current_thread() is threading.main_thread()
        assert env.started() == (1 if env.hook else 0)
        if env.libos is not None:
            assert env.libos.profile.statistics().phases["clone"].count == 1

    def test_enumerate_while_running_and_after(self, env: Under) -> None:
        release = threading.Event()
        t = threading.Thread(target=release.wait, args=(BOUND,))
        t.start()
        try:
            assert t in threading.enumerate() and t.is_alive()
            if env.libos is not None:
                # The LibOS knows it too, by the name threading gave it.
                assert t.name in {x.name for x in env.libos.threads()}
        finally:
            release.set()
        t.join(BOUND)
        assert t not in threading.enumerate() and not t.is_alive()

    def test_excepthook_gets_an_uncaught_exception(
        self, env: Under, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        got: list[threading.ExceptHookArgs] = []
        monkeypatch.setattr(threading, "excepthook", got.append)

        def boom() -> None:
            raise ValueError("in the thread")

        t = _run(boom, name="boomer")
        assert len(got) == 1
        assert got[0].exc_type is ValueError and str(got[0].exc_value) == "in the thread"
        assert got[0].thread is t

    def test_thread_locals(self, env: Under) -> None:
        local = threading.local()
        local.value = "main"
        seen: list[object] = []

        def body() -> None:
            seen.append(getattr(local, "value", None))
            local.value = "thread"
            seen.append(local.value)

        _run(body)
        assert seen == [None, "thread"] and local.value == "main"

    def test_join_with_timeout_and_daemon_flag(self, env: Under) -> None:
        release = threading.Event()
        t = threading.Thread(target=release.wait, args=(BOUND,), daemon=True)
        t.start()
        t.join(0.01)
        assert t.is_alive() and t.daemon
        release.set()
        t.join(BOUND)
        assert not t.is_alive()

    def test_concurrent_futures(self, env: Under) -> None:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            assert list(ex.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
        if env.hook:
            assert 1 <= env.started() <= 4

    def test_asyncio_to_thread_and_its_selector(self, env: Under) -> None:
        async def main() -> tuple[int, object]:
            loop = asyncio.get_running_loop()
            got = await asyncio.to_thread(lambda: 6 * 7)
            return got, loop._selector._selector  # type: ignore[attr-defined]

        got, selector = asyncio.run(main())
        assert got == 42
        assert isinstance(selector, Epoll) == (env.hook is not None)
        if env.hook:
            assert env.started() >= 1

    def test_direct_start_new_thread_with_kwargs(self, env: Under) -> None:
        done = threading.Event()
        seen: list[object] = []

        def body(a: int, *, b: int) -> None:
            seen.append((a, b, _thread.get_ident()))
            done.set()

        ident = _thread.start_new_thread(body, (1,), {"b": 2})
        assert done.wait(BOUND)
        assert seen == [(1, 2, ident)]
        with pytest.raises(TypeError, match="2nd arg must be a tuple"):
            _thread.start_new_thread(body, [1])  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="first arg must be callable"):
            _thread.start_new_thread(1, ())  # type: ignore[call-overload]

    def test_direct_start_new_thread_reports_an_exception(
        self, env: Under, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        args, boom = failing_start_report(monkeypatch)
        exc_type, text, msg, obj = args.exc_type, str(args.exc_value), args.err_msg, args.object
        assert exc_type is KeyError and text == "'lost'"
        # As the interpreter reports it: the function itself, or (3.13) its repr.
        if sys.version_info >= (3, 13):
            assert msg == f"Exception ignored in thread started by {boom!r}" and obj is None
        else:
            assert msg == "Exception ignored in thread started by" and obj is boom
        if env.libos is not None:
            assert wait_until(lambda: len(env.libos.threads()) == 1)  # type: ignore[union-attr]

    def test_select_epoll_and_default_selector(self, env: Under) -> None:
        ep = select.epoll()
        sel = selectors.DefaultSelector()
        try:
            assert isinstance(ep, Epoll) == (env.hook is not None)
            assert isinstance(sel, selectors.EpollSelector)
            assert isinstance(sel._selector, Epoll) == (env.hook is not None)  # type: ignore[attr-defined]
            import socket

            a, b = socket.socketpair()
            with a, b:
                sel.register(a, selectors.EVENT_READ, "a")
                assert sel.select(0) == []
                b.send(b"x")
                ((key, mask),) = sel.select(BOUND)
                assert key.data == "a" and mask == selectors.EVENT_READ
                sel.unregister(a)
        finally:
            sel.close()
            ep.close()


# -- install / uninstall -------------------------------------------------------------------


@pytest.fixture
def libos() -> Iterator[LibOS]:
    host = pal.open_host("sgx")
    lib = LibOS(host, "raw")
    try:
        yield lib
    finally:
        lib.shutdown()
        host.shutdown()
        assert _hooked_names() == ORIGINAL
        assert installed() is None


class TestInstall:
    def test_install_replaces_and_uninstall_restores(self, libos: LibOS) -> None:
        hook = install(libos)
        assert installed() is hook and hook.installed
        now = _hooked_names()
        assert all(now[k] is not ORIGINAL[k] for k in ORIGINAL)
        hook.uninstall()
        assert _hooked_names() == ORIGINAL and installed() is None
        hook.uninstall()  # twice is harmless

    def test_a_second_install_is_refused_and_changes_nothing(self, libos: LibOS) -> None:
        host2 = pal.open_host("direct")
        other = LibOS(host2, "pipe")
        try:
            with install(libos) as hook:
                now = _hooked_names()
                with pytest.raises(RuntimeError, match="already installed"):
                    hook.install()
                with pytest.raises(RuntimeError, match="already installed"):
                    install(other)
                with pytest.raises(RuntimeError, match="already installed"):
                    install(libos)
                assert _hooked_names() == now and installed() is hook
        finally:
            other.shutdown()
            host2.shutdown()

    def test_a_shut_down_libos_cannot_be_installed(self) -> None:
        host = pal.open_host("direct")
        lib = LibOS(host, "pipe")
        lib.shutdown()
        host.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            install(lib)
        assert _hooked_names() == ORIGINAL

    def test_uninstall_while_threads_run(self, libos: LibOS) -> None:
        release = threading.Event()
        hook = install(libos)
        t = threading.Thread(target=release.wait, args=(BOUND,))
        t.start()
        hook.uninstall()
        calls = libos.host.calls["clone_thread"]
        native = threading.Thread(target=lambda: None)
        native.start()
        native.join(BOUND)
        assert libos.host.calls["clone_thread"] == calls  # not through the LibOS
        release.set()
        t.join(BOUND)
        assert not t.is_alive()
        assert wait_until(lambda: len(libos.threads()) == 1)
        assert hook.threads_created == 1

    def test_shutdown_uninstalls_and_later_starts_are_native(self, libos: LibOS) -> None:
        hook = install(libos)
        held = _thread.start_new_thread  # a program's copy, taken while installed
        libos.shutdown()
        assert not hook.installed and _hooked_names() == ORIGINAL
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join(BOUND)
        done = threading.Event()
        held(done.set, ())
        assert done.wait(BOUND)
        assert hook.threads_created == 0

    def test_a_later_hook_over_ours_is_left_in_place(self, libos: LibOS) -> None:
        hook = install(libos)
        ours = _thread.start_new_thread
        calls: list[object] = []

        def theirs(fn: Callable[..., object], args: tuple[Any, ...]) -> int:
            calls.append(fn)
            return ours(fn, args)

        _thread.start_new_thread = theirs  # type: ignore[assignment]
        try:
            hook.uninstall()
            assert _thread.start_new_thread is theirs
            done = threading.Event()
            theirs(done.set, ())  # ours, called through theirs, is native now
            assert done.wait(BOUND) and hook.threads_created == 0
        finally:
            _thread.start_new_thread = ORIGINAL["_thread.start_new_thread"]  # type: ignore[assignment]

    def test_a_refused_start_is_a_runtime_error_and_leaves_nothing(self) -> None:
        host = pal.open_host("sgx", max_threads=4)  # main + the two workers + one
        lib = LibOS(host, "raw")
        release = threading.Event()
        try:
            with install(lib):
                first = threading.Thread(target=release.wait, args=(BOUND,))
                first.start()
                before = (set(threading.enumerate()), len(lib.threads()), host.open_handles())
                second = threading.Thread(target=lambda: None)
                with pytest.raises(RuntimeError, match="can't start new thread"):
                    second.start()
                after = (set(threading.enumerate()), len(lib.threads()), host.open_handles())
                assert sorted(map(id, before[2])) == sorted(map(id, after[2]))
                assert before[:2] == after[:2]
                assert second not in threading._limbo  # type: ignore[attr-defined]
                release.set()
                first.join(BOUND)
        finally:
            release.set()
            lib.shutdown()
            host.shutdown()

    def test_a_start_the_host_refuses_is_not_counted(
        self, libos: LibOS, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The OS refuses the thread after the PAL took its slot and recorded it."""
        from pylibos.pal import _thread as pal_thread

        def no_thread(*args: object, **kwargs: object) -> object:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(pal_thread, "_start_new_thread", no_thread)
        monkeypatch.setattr(pal_thread, "_start_joinable_thread", no_thread)
        with install(libos) as hook:
            t = threading.Thread(target=lambda: None)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                t.start()
            assert hook.threads_created == 0
            assert t not in threading._limbo  # type: ignore[attr-defined]
            assert len(libos.threads()) == 1 and len(libos.host.live_threads()) == 2  # workers

    def test_a_thread_started_before_install_or_by_a_copy_is_adopted(self, libos: LibOS) -> None:
        early = _thread.start_new_thread  # as C code or an early import holds it
        with install(libos) as hook:
            done = threading.Event()
            seen: list[int] = []

            def body() -> None:
                ep = select.epoll()  # the LibOS's: the thread is adopted on first use
                ep.poll(0)
                seen.append(libos.current_thread().tid)
                ep.close()
                done.set()

            early(body, ())
            assert done.wait(BOUND)
            assert hook.threads_created == 0 and seen and seen[0] != libos.main_thread.tid
            # Its tid and event go when the thread does.
            assert wait_until(lambda: len(libos.threads()) == 1)


# -- a KeyboardInterrupt between any two bytecodes ----------------------------------------------


# The modules a thread start runs through in the LibOS (the PAL's own are tested in
# tests/pal).
_START_PATH = {
    module.__file__
    for module in (
        hook_module,
        libos_module,
        event_module,
        profile_module,
        samples_module,
        thread_module,
    )
}


class _InterruptAt:
    """A tracer that delivers a SIGINT, as the PAL's handler takes it (deferred to the
    end of a critical section), at the ``n``-th point in the frames of the LibOS's start
    path (``_hook.py`` and the LibOS modules it calls into) where CPython runs a signal
    handler: on entry to a function (except the replacement's own entry: a signal there
    is one just before ``Thread.start`` calls the primitive, the same natively), after a
    call to a builtin returns (not after a Python function returns: no check there), at
    a backward jump.  So every place a real Ctrl-C can land in the hook and the clone
    path it takes is tried, one run each."""

    ENTRIES = ("_start_new_thread", "_start_joinable_thread")

    def __init__(self, n: int, *, skip_entries: bool = False) -> None:
        self.n = n
        self.fired = False
        self.skip_entries = skip_entries
        self._after_call: dict[int, bool] = {}

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "call":
            if frame.f_back is not None:
                # A Python function was called: no signal check when it returns.
                self._after_call.pop(id(frame.f_back), None)
            if frame.f_code.co_filename not in _START_PATH:
                return None
            frame.f_trace_opcodes = True
            frame.f_trace = self
            if not (self.skip_entries and frame.f_code.co_name in self.ENTRIES):
                self._point(frame)
            return self
        if event == "opcode":
            op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
            if self._after_call.pop(id(frame), False) or op == "JUMP_BACKWARD":
                self._point(frame)
            if op == "CALL":
                self._after_call[id(frame)] = True
        return self

    def _point(self, frame: FrameType) -> None:
        if self.fired:
            return
        self.n -= 1
        if self.n < 0:
            self.fired = True
            # With the frame, as the handler gets it: inside a marked section it is owed.
            _interrupts._on_sigint(signal.SIGINT, frame)


def _interrupted(n: int, action: Callable[[], object], *, skip_entries: bool = False) -> bool:
    """Run ``action`` with a KeyboardInterrupt at the hook's ``n``-th interruption
    point; True if it fired (False: the action ran to the end first)."""
    tracer = _InterruptAt(n, skip_entries=skip_entries)
    sys.settrace(tracer)
    try:
        action()
    except KeyboardInterrupt:
        assert tracer.fired
    finally:
        sys.settrace(None)
    return tracer.fired


def test_interrupted_install_and_uninstall_are_all_or_nothing(libos: LibOS) -> None:
    n = 0
    while True:
        hook = Hook(libos)
        fired = _interrupted(n, hook.install)
        if hook.installed:
            assert installed() is hook and libos._hook is hook
            assert all(v is not ORIGINAL[k] for k, v in _hooked_names().items())
            hook.uninstall()
        assert _hooked_names() == ORIGINAL and installed() is None and libos._hook is None
        if not fired:
            break
        n += 1
    assert n > 5

    n = 0
    while True:
        hook = install(libos)
        fired = _interrupted(n, hook.uninstall)
        hook.uninstall()  # finishes what the interrupted call began
        assert _hooked_names() == ORIGINAL and installed() is None and libos._hook is None
        if not fired:
            break
        n += 1
    assert n > 5


@pytest.mark.parametrize(
    ("events", "pool"),
    [("raw", False), ("raw", True), ("eventfd", False)],
    ids=["sgx/raw", "sgx/raw+pool", "sgx/eventfd"],
)
def test_interrupted_thread_start_leaks_nothing(events: str, pool: bool) -> None:
    """A KeyboardInterrupt anywhere in the hook's start path: either no thread was made
    (nothing of it is left) or it was, and it runs and ends as any thread does; the
    profile keeps whole clones only."""
    host = pal.open_host("sgx")
    libos = LibOS(host, events, pool, profile_every=1)  # every clone: the profile's lines too
    try:
        if pool:  # fill the pool, so what it holds afterwards is what it held before
            assert libos.clone(lambda: None).join(BOUND)
            libos.profile.reset()
        handles = {id(h) for h in host.open_handles()}
        ran = []
        with install(libos) as hook:
            n = 0
            while True:
                t = threading.Thread(target=lambda: ran.append(1), daemon=True)
                fired = _interrupted(n, t.start, skip_entries=True)
                if not fired:
                    t.join(BOUND)
                    break
                n += 1
                assert wait_until(lambda: len(libos.threads()) == 1)
                assert wait_until(lambda: len(host.live_threads()) == 2)  # the two workers
            assert n > 15, n  # lines outside the critical sections of the path
            created = hook.threads_created
        if pool:
            # An event whose clone was cut short is closed, and the pool makes new ones:
            # every handle open now was open before or is a pooled event's.
            free = {id(h) for ev in libos._factory._free for h in (ev.read_handle, ev._write)}
            assert wait_until(lambda: {id(h) for h in host.open_handles()} <= handles | free)
        else:
            assert wait_until(lambda: {id(h) for h in host.open_handles()} == handles)
        assert created <= len(ran) <= n + 1
        assert wait_until(lambda: not threading._limbo)  # type: ignore[attr-defined]
        assert libos.profile.clones <= created
        assert_profile_whole(libos.profile)
    finally:
        libos.shutdown()
        host.shutdown()
    assert _hooked_names() == ORIGINAL and installed() is None
