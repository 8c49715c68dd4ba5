"""A child forked while another thread of the parent is inside the hook's install lock
(uninstalling the hook: a ``with install(libos):`` ending, a shutdown on another
thread).  The fork hooks make the LibOS's own locks anew (events, factory, adoptions,
profile, epolls, workers) and the PAL's, but not ``_hook._install_lock``, a module-level
lock every ``LibOS.shutdown`` of a LibOS with a hook takes (``Hook.uninstall``).  No
thread of the child will ever release it, so the child's ``LibOS.shutdown`` waits for
ever, against the documented promise that it "never waits for a lock a parent's thread
held".

The parent's thread is held inside the lock by a line tracer on its own frames (a real
thread, stopped at one line as the scheduler may stop it)."""

from __future__ import annotations

from libos_support import fork_while_held, seconds_taken, started_thread
from pylibos import pal
from pylibos.libos import LibOS, _hook, install
from pylibos.libos._hook import Hook


def test_a_child_forked_while_a_thread_uninstalls_the_hook_shuts_its_libos_down() -> None:
    host = pal.open_host("direct")
    libos = LibOS(host, "eventfd")
    hook = install(libos)
    try:
        answer = fork_while_held(
            started_thread,
            hook.uninstall,
            Hook.uninstall.__code__,
            lambda frame: _hook._install_lock.locked(),
            seconds_taken(lambda: libos.shutdown(timeout=2.0)),
        )
        assert not answer.startswith("the child hung") and float(answer) < 2.5, (
            f"a child forked while a parent's thread held the hook's install lock: its "
            f"LibOS.shutdown(timeout=2): {answer}"
        )
    finally:
        hook.uninstall()
        libos.shutdown()
        host.shutdown()
