"""``close`` takes a handle with ``set.remove`` before it checks what it was given."""

from __future__ import annotations

import pytest

from pylibos import pal


def test_attack_closing_another_hosts_handle_is_silently_ignored() -> None:
    """A handle of host A passed to host B's close: B's ``set.remove`` finds nothing and
    close returns as for a handle closed already, though the handle is open and its
    descriptor stays.  A clear ``BADHANDLE`` naming the mistake is wanted."""
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


def test_attack_an_object_equal_to_a_handle_takes_it_from_the_host() -> None:
    """``set.remove`` compares a non-handle with the handles of the same hash by its
    ``__eq__`` (Python code, run before ``close`` checks the type): an object that says it
    equals a handle takes that handle out of the host, which then never closes it, and
    close fails with an ``AttributeError`` instead of ``BADHANDLE``."""
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
