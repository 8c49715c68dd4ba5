"""Which ready entries a wait of a LibOS epoll reports (see ``_interest.py``): when
``maxevents`` cuts a report, the entries take turns (those reported least recently
first), and edge-triggered entries left over are kept pending for the next wait."""

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
    polled: list[tuple[Entry, int]],
    taken: list[tuple[Entry, int]],
    maxevents: int,
) -> list[tuple[int, int]]:
    """Report at most ``maxevents`` of the ``ready`` entries (entry, wait flags) of an
    epoll's ``entries`` (by number) and its ``pending`` edge-triggered ones, those
    with the earliest turns when there are more; edge-triggered ones left over stay
    pending, and a pending one polled is taken off (reported, or no longer ready)."""
    flags_of: dict[Entry, int] = {}
    for entry, got in polled:
        # An edge-triggered entry among those polled was pending when the wait began:
        # another waiter may have reported it since (it is no longer pending), and an
        # edge is reported once.
        if entry.edge:
            if pending.get(entry.fd) is not entry:
                continue
            del pending[entry.fd]
        # Still registered and armed (else changed while the waiter slept: the next
        # round sees it anew), and an event of its mask.
        if entries.get(entry.fd) is entry and not entry.disabled and epoll_events(got, entry.mask):
            flags_of[entry] = flags_of.get(entry, 0) | got
    for entry, got in taken:  # edges just taken from the watch: this waiter's own
        if entry.edge and pending.get(entry.fd) is entry:
            del pending[entry.fd]
        if entries.get(entry.fd) is entry and not entry.disabled and epoll_events(got, entry.mask):
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
