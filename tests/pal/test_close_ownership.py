"""``close`` checks what it was given before it takes a handle from the host (``set.remove``),
and tells a handle open on another host from one closed already."""

from __future__ import annotations

import pytest

from pylibos import pal


def test_closing_another_hosts_open_handle_fails_with_badhandle() -> None:
    """A handle of host A passed to host B's close: B's ``set.remove`` finds nothing, but
    the handle is open (on A): a clear ``BADHANDLE`` naming the mistake, not the silence
    of a handle closed already; the handle stays A's, and A closes it."""
    with pal.open_host("direct") as a, pal.open_host("direct") as b:
        handle = a.stream_open("eventfd:")
        try:
            b.close(handle)
            outcome = "returned" if not handle.closed else "closed it"
        except pal.PalError as exc:
            outcome = f"PalError: {exc}"
        still_open = not handle.closed
        a.close(handle)
        assert outcome.startswith("PalError") and "BADHANDLE" in outcome, (
            f"closing host A's open handle on host B {outcome} (handle still open: {still_open})"
        )


def test_an_object_equal_to_a_handle_cannot_take_it_from_the_host() -> None:
    """``set.remove`` would compare a non-handle with the handles of the same hash by its
    ``__eq__`` (Python code): an object that says it equals a handle would take that
    handle out of the host, which would then never close it.  ``close`` checks the type
    first: ``BADHANDLE``, and the handle stays the host's."""
    with pal.open_host("direct") as host:
        handle = host.stream_open("eventfd:")
        number = handle._fd

        class LooksLikeIt:
            def __hash__(self) -> int:
                return hash(handle)

            def __eq__(self, other: object) -> bool:
                return True

        try:
            host.close(LooksLikeIt())  # type: ignore[arg-type]
            outcome = "returned"
        except pal.PalError as exc:
            outcome = f"PalError: {exc}"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        taken = handle not in host.open_handles() and not handle.closed
        if taken:
            host._handles.add(handle)  # give it back, so the host closes it
        assert not taken, (
            f"close(an object equal to a handle) took handle {number} from the host, "
            f"left it open and unclosable by shutdown ({outcome})"
        )
        assert outcome.startswith("PalError") and "not a PAL handle" in outcome, outcome


@pytest.mark.parametrize("bad", [3, None, [1], "eventfd:"])
def test_close_of_a_non_handle_names_it(bad: object) -> None:
    with pal.open_host("direct") as host, pytest.raises(pal.PalError, match="not a PAL handle"):
        host.close(bad)  # type: ignore[arg-type]


def test_a_close_racing_shutdowns_take_returns_quietly() -> None:
    """``shutdown`` takes a handle (``set.pop``) a few steps before it marks it closed; a
    close in between finds it gone but not yet closed.  The handle is this host's: that
    is a close racing shutdown, which does nothing, not a handle of another host."""
    with pal.open_host("direct") as host:
        handle = host.stream_open("eventfd:")
        host._handles.remove(handle)  # shutdown's take, before its ``closed = True``
        try:
            host.close(handle)  # returns: the handle is the taker's
            assert not handle.closed
        finally:
            host._handles.add(handle)  # shutdown's own release, below, then closes it
