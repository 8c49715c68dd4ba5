"""Every system call the PAL makes goes through its one gate.

A fixed program drives both host kinds through every mechanism (pipes, TLS pipes,
eventfds, waits, edge watches, threads, shutdown) under ``strace -f``.  Between two
markers it makes, the system calls the kernel saw must be exactly those the ledger saw:
the host calls (``calls``), each the system calls Gramine's OCALL stands for, plus
those ``_aside`` recorded (the parts of a counted call, and the PAL's bookkeeping).  A
system call made beside the gate shows up as a difference.  Left out of the trace, as
``pylibos.pal._ledger`` says: the identity check (``getsockopt``, ``fstat``, ``kcmp``)
and the blocking mode of sockets (``fcntl``, ``ioctl``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pylibos.pal import EVENT_TOKEN, open_host

PROGRAM = r"""
import json, os, socket, sys
from collections import Counter
from pylibos.libos import LibOS
from pylibos.pal import WAIT_READ, open_host

def work(host):
    for raw in (True, False):
        a, b = host.create_pipe(raw=raw)
        host.write(b, b"\x01")
        assert host.streams_wait_events([a], [WAIT_READ], 5_000_000) == [WAIT_READ]
        assert host.read(a, 1) == b"\x01"
        host.delete(b)
        host.close(a)
        host.close(b)
    e = host.stream_open("eventfd:")
    host.write(e, b"\x01")
    assert host.read(e, 8) == b"\x01"
    host.close(e)
    x, y = socket.socketpair()
    watch = host.edge_watch_open()
    fd = host.stream_from_fd(x.fileno())
    host.edge_watch_add(watch, fd, WAIT_READ)
    y.send(b"z")
    own["sendto"] += 1
    assert host.edge_watch_take(watch, 4)
    host.edge_watch_remove(watch, fd)
    host.close(fd)
    host.close(watch)
    t = host.thread_create(lambda: None)
    assert t.join(5)
    return x, y

own = Counter()  # the system calls this program makes itself

def run(hosts, keep):
    for kind in ("direct", "sgx"):
        host = open_host(kind)
        host.aside = Counter()  # the audit: record the system calls that are no host calls
        hosts.append(host)
        keep.append(work(host))
        for events in ("raw", "pipe", "eventfd"):
            with LibOS(host, events, pool=events == "raw") as libos:
                for t in [libos.clone(lambda: None) for _ in range(3)]:
                    assert t.join(5)
        host.shutdown()

run([], keep := [])  # once first, so every lazy import is done before the trace counts
hosts = []
own.clear()
os.access("/pylibos-gate-begin", os.F_OK)
run(hosts, keep)
os.access("/pylibos-gate-end", os.F_OK)
calls, aside = Counter(), Counter()
for host in hosts:
    calls.update(host.calls)
    aside.update(host.aside or {})
for x, y in keep:
    x.close()
    y.close()
print(json.dumps({"calls": calls, "aside": aside, "own": own}))
"""

# System call -> the host calls that make it (a socket is the first system call of both
# ``listen`` and ``connect``); and whatever ``aside`` records under the same name.
MADE_BY = {
    "socket": ("listen", "connect"),
    "bind": (),
    "listen": (),
    "connect": (),
    "accept4": ("accept",),
    "sendto": ("send",),
    "recvfrom": ("recv",),
    "poll": ("poll",),
    "eventfd2": ("eventfd",),
    "read": ("read",),
    "write": ("write",),
    "shutdown": ("shutdown",),
    "close": ("close",),
    "epoll_create1": ("epoll_create",),
    "epoll_ctl": ("epoll_ctl",),
    "epoll_wait": ("epoll_wait",),
    "clone3": ("clone_thread",),
}
_LINE = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)(\(| resumed>)")


def _seen(trace: str) -> Counter[str]:
    lines = trace.splitlines()
    begin = next(i for i, line in enumerate(lines) if "/pylibos-gate-begin" in line)
    end = next(i for i, line in enumerate(lines) if "/pylibos-gate-end" in line)
    seen: Counter[str] = Counter()
    for line in lines[begin + 1 : end]:
        match = _LINE.match(line)
        if match is None or match.group(2) == " resumed>":
            continue  # a call's second half: counted at its first
        seen[match.group(1)] += 1
    return seen


@pytest.mark.skipif(
    shutil.which("strace") is None,
    reason="strace is not installed (apt-get install strace; .ci/run installs it)",
)
def test_every_system_call_goes_through_the_gate(tmp_path: Path) -> None:
    out = tmp_path / "gate.trace"
    trace = ",".join([*MADE_BY, "clone", "access", "faccessat", "faccessat2"])
    command = ["strace", "-f", "-qq", "-e", f"trace={trace}", "-o", str(out)]
    run = subprocess.run(
        [*command, sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=50
    )
    assert run.returncode == 0, run.stderr[-2000:]
    ledger = json.loads(run.stdout)
    calls, aside = Counter(ledger["calls"]), Counter(ledger["aside"])
    aside.update(ledger["own"])
    assert set(calls) >= {kind for kinds in MADE_BY.values() for kind in kinds}, calls
    seen = _seen(out.read_text())
    seen["clone3"] += seen.pop("clone", 0)  # whichever the C library uses
    for name in ("access", "faccessat", "faccessat2"):
        seen.pop(name, None)
    expected = Counter(
        {
            syscall: sum(calls[kind] for kind in kinds) + aside[syscall]
            for syscall, kinds in MADE_BY.items()
        }
    )
    assert +seen == +expected, (
        f"beside the gate: {dict(seen - expected)}; counted but not made: {dict(expected - seen)}"
    )


def test_statistics_is_a_frozen_copy_of_the_live_counter() -> None:
    """``host.statistics()`` agrees with ``calls``/``calls_total`` when taken, and stays
    as it was while the live counter moves on; the difference of two is what was between."""
    with open_host("direct") as host:
        before = host.statistics()
        assert before.total == host.calls_total
        assert dict(before.by_kind) == dict(host.calls)
        handle = host.stream_open("eventfd:")
        host.write(handle, EVENT_TOKEN)
        host.close(handle)
        after = host.statistics()
        assert before.total == sum(before.by_kind.values())  # unchanged by what followed
        assert after.total == host.calls_total == sum(host.calls.values())
        between = after - before
        assert between.total == 3
        assert dict(between.by_kind) == {"eventfd": 1, "write": 1, "close": 1}
        with pytest.raises(TypeError):
            after.by_kind["write"] = 0  # type: ignore[index]
