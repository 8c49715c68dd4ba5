"""Which ready entries a wait of a LibOS epoll reports (see ``_interest.py``): Linux's
ready-list order when ``maxevents`` cuts a report, edge-triggered entries left over kept
pending for the next wait."""

from __future__ import annotations

from collections.abc import Collection

from ._epoll_events import Entry, epoll_events

# Functions of their own, called under the epoll's lock: on 3.12 and 3.13 an exception
# (a Ctrl-C) at some instructions of a comprehension inlined in a ``with`` block skips the
# block's exit, which would leave the lock held; one from a call does not.


def _armed(entries: Collection[Entry]) -> tuple[list[Entry], bool]:
    """The level-triggered entries armed, and whether an edge-triggered one is."""
    level = [e for e in entries if not e.disabled and not e.edge]
    return level, any(not e.disabled and e.edge for e in entries)


def _still_pending(pending: dict[int, Entry], entries: dict[int, Entry]) -> list[Entry]:
    """The pending edge-triggered entries still registered and armed."""
    return [e for e in pending.values() if entries.get(e.fd) is e and e.edge and not e.disabled]


def _choose(
    pending: dict[int, Entry],
    entries: dict[int, Entry],
    ready: list[tuple[Entry, int]],
    maxevents: int,
) -> list[tuple[int, int]]:
    """Report at most ``maxevents`` of the ``ready`` entries (entry, wait flags) of an
    epoll's ``entries`` (by number) and its ``pending`` edge-triggered ones, those
    with the earliest turns when there are more; edge-triggered ones left over stay
    pending, and a pending one polled is taken off (reported, or no longer ready)."""
    flags_of: dict[Entry, int] = {}
    for entry, got in ready:
        if entry.edge and pending.get(entry.fd) is entry:
            del pending[entry.fd]
        if entries.get(entry.fd) is not entry or entry.disabled:
            continue  # changed while we slept; the next round sees it anew
        if epoll_events(got, entry.mask):
            flags_of[entry] = flags_of.get(entry, 0) | got
    chosen = list(flags_of.items())
    if len(chosen) > maxevents:
        chosen.sort(key=_turn)
        for entry, _got in chosen[maxevents:]:
            if entry.edge:
                pending[entry.fd] = entry
        del chosen[maxevents:]
    return [(entry.fd, entry.report(got)) for entry, got in chosen]


def _turn(item: tuple[Entry, int]) -> int:
    return item[0].turn


def _edge_entries(entries: Collection[Entry]) -> dict[int, Entry]:
    """The edge-triggered entries by their handle's identity."""
    return {id(e.handle): e for e in entries if e.edge}
