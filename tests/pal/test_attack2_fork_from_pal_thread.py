"""A child forked by a PAL thread (under the LibOS, any thread the program started):
that thread is the child's one thread, its main thread (the interpreter runs the
child's signal handlers there, and the PAL's deferral follows it).  It must count as
such in the child's host: it holds the main thread's slot, not a host thread's besides
(an enclave child starts with one thread on one TCS), and the child's shutdown, which
waits for the host's threads, must not wait for the thread that runs it, a wait that
can only end at its timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

from libos_support import BOUND, in_fork_child
from pylibos import pal


def _fork_from_a_pal_thread(host: pal.Host, child: Callable[[], str]) -> str:
    answers: list[str] = []
    thread = host.thread_create(lambda: answers.append(in_fork_child(child)))
    assert thread.join(BOUND + 5)
    assert answers, "the forking PAL thread reported nothing"
    return answers[0]


def test_a_child_forked_by_a_pal_thread_has_the_slots_of_a_one_thread_process() -> None:
    # Two slots: the main thread's and one more.  The parent's PAL thread holds the
    # second and forks; the child has one thread, so one slot is free there.
    host = pal.open_host("sgx", max_threads=2)
    assert isinstance(host, pal.SgxHost)

    def child() -> str:  # pragma: no cover - runs in the fork child
        ran: list[int] = []
        try:
            started = host.thread_create(ran.append, 1).join(BOUND)
        except pal.PalError as exc:
            return f"the child could start no thread: {exc}"
        return f"{started} {ran} {host.threads_in_use}"

    try:
        answer = _fork_from_a_pal_thread(host, child)
        assert answer == "True [1] 1", answer
    finally:
        host.shutdown()


def test_a_child_forked_by_a_pal_thread_shuts_its_host_down_without_waiting_for_itself() -> None:
    host = pal.open_host("sgx", max_threads=4)

    def child() -> str:  # pragma: no cover - runs in the fork child
        t0 = time.monotonic()
        host.shutdown(timeout=2.0)
        return f"{time.monotonic() - t0:.2f}"

    try:
        took = float(_fork_from_a_pal_thread(host, child))
        assert took < 1.0, (
            f"the child's host.shutdown took {took} s of its 2 s timeout: it joined the "
            f"thread running it (the forking PAL thread, the child's one thread)"
        )
    finally:
        host.shutdown()
