"""The program's epolls at interpreter shutdown.  ``pylibos run`` shuts the LibOS down in
an ``atexit`` handler, which closes every epoll the LibOS made; but the program's objects
live on after ``atexit`` (module globals are cleared later, finalizers run then), and a
finalizer that uses its epoll must find it as natively: open until collected."""

from __future__ import annotations

from pathlib import Path

from run_support import native_and_under


def test_an_event_loop_never_closed_finalizes_quietly(tmp_path: Path) -> None:
    # A script that makes an asyncio loop and never closes it
    #     import asyncio; loop = asyncio.new_event_loop(); print("made")
    # prints "made", nothing on stderr, status 0 under python (the loop's __del__
    # closes it; its ResourceWarning is ignored by default).  Under pylibos run stderr
    # gets
    #     Exception ignored in: <function BaseEventLoop.__del__ at 0x...>
    #     Traceback (most recent call last):
    #       ... selectors.py", line ..., in unregister
    #       File ".../pylibos/libos/_epoll.py", line ..., in unregister
    #       ...
    #     ValueError: I/O operation on closed epoll object
    # at_exit (_cli/_run_stats.py) runs libos.shutdown(), whose EpollTable.close_all
    # (libos/_interest.py) closes the epoll under the loop's selector; Epoll.closed is
    # then True and its unregister raises ValueError, which EpollSelector.unregister
    # does not catch (it expects OSError).
    (tmp_path / "loop.py").write_text(
        "import asyncio\nloop = asyncio.new_event_loop()\nprint('made')\n"
    )
    native, under = native_and_under(tmp_path, ["loop.py"])
    assert native == (0, "made\n", "")
    assert under == native
