"""A hostile host, in another process, and the test-side handle on it.

Run as a script, this file is the host: it takes one command per line on stdin and
answers one line on stdout.  It reaches into the test process as an untrusted host can
reach into an enclave's host process: it copies the test's descriptors with
``pidfd_getfd`` (so closing the test's copy leaves the object alive in the host), binds
abstract socket names first, fills and floods channels, dribbles bytes, and records what
it receives.  ``HostileHost`` starts it and speaks to it.

Commands (every answer starts with ``ok`` or ``err``):

    grab PID FD            copy descriptor FD of process PID; answers the host's number
    fill N                 send on N without blocking until the kernel refuses more (or the
                           reader closes its end)
    eventfd_max N          add the most an eventfd counter holds (the next add blocks)
    send N HEX             send these bytes on N
    flood N BYTES          send BYTES bytes on N from a background thread, blocking
    flood_done             answers how many bytes the flood has sent, and whether done
    shutdown N             shut socket N down both ways
    close N                close N
    bind HEXNAME           bind and listen on this abstract name; answers the number
    record N               accept on listener N and keep what every client sends
    recorded               answers every byte recorded so far, as hex
    connect HEXNAME        connect to this abstract name; answers the number
    dribble N SECONDS      send one byte on N every SECONDS, from a background thread
    quit
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import sys
import threading
from typing import IO

_SYS_PIDFD_GETFD = 438


class _Host:
    def __init__(self) -> None:
        self.socks: dict[int, socket.socket] = {}
        self.recorded = bytearray()
        self.flood_sent = 0
        self.flood_done = False
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def sock(self, n: str) -> socket.socket:
        return self.socks[int(n)]

    def keep(self, sock: socket.socket) -> str:
        self.socks[sock.fileno()] = sock
        return str(sock.fileno())

    def grab(self, pid: str, fd: str) -> str:
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(int(pid))
        try:
            new = libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if new < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        finally:
            os.close(pidfd)
        try:
            return self.keep(socket.socket(fileno=new))
        except OSError:
            return str(new)  # not a socket (an eventfd): kept as a number

    def fill(self, n: str) -> str:
        sock, sent = self.sock(n), 0
        while True:
            try:
                sent += sock.send(b"\x01" * 65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return str(sent)
            except (BrokenPipeError, ConnectionResetError):
                # The reader took the garbage for a broken channel and closed its end
                # (a TLS pipe's reader does, and builds a new channel): filled as far
                # as it goes.
                return str(sent)

    def eventfd_max(self, n: str) -> str:
        os.eventfd_write(int(n), 0xFFFF_FFFF_FFFF_FFFE)
        return "done"

    def send(self, n: str, data: str) -> str:
        self.sock(n).sendall(bytes.fromhex(data))
        return "sent"

    def flood(self, n: str, size: str) -> str:
        sock, total = self.sock(n), int(size)

        def run() -> None:
            chunk = b"\x01" * 65536
            while self.flood_sent < total and not self.stop.is_set():
                ready = select.select([], [sock], [], 0.05)[1]
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        self.flood_sent += sock.send(chunk, socket.MSG_DONTWAIT)
            self.flood_done = True

        self._start(run)
        return "started"

    def flood_state(self) -> str:
        return f"{self.flood_sent} {int(self.flood_done)}"

    def shutdown(self, n: str) -> str:
        self.sock(n).shutdown(socket.SHUT_RDWR)
        return "done"

    def close(self, n: str) -> str:
        sock = self.socks.pop(int(n), None)
        if sock is not None:
            sock.close()
        else:
            os.close(int(n))
        return "closed"

    def bind(self, name: str) -> str:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(bytes.fromhex(name))
        sock.listen(16)
        return self.keep(sock)

    def record(self, n: str) -> str:
        listener = self.sock(n)

        def run() -> None:
            conns: list[socket.socket] = []
            try:
                while not self.stop.is_set():
                    ready = select.select([listener, *conns], [], [], 0.05)[0]
                    for s in ready:
                        if s is listener:
                            conns.append(listener.accept()[0])
                            continue
                        data = s.recv(65536)
                        if not data:
                            conns.remove(s)
                            s.close()
                        with self.lock:
                            self.recorded += data
            finally:
                for s in conns:
                    s.close()

        self._start(run)
        return "recording"

    def recorded_hex(self) -> str:
        with self.lock:
            return self.recorded.hex() or "-"

    def connect(self, name: str) -> str:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(bytes.fromhex(name))
        return self.keep(sock)

    def dribble(self, n: str, seconds: str) -> str:
        sock, every = self.sock(n), float(seconds)

        def run() -> None:
            # A record header announcing a long record, then its body a byte at a time.
            data = b"\x16\x03\x03\x40\x00" + b"\x00" * 16384
            for byte in data:
                if self.stop.wait(every):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

        self._start(run)
        return "dribbling"

    def _start(self, fn: object) -> None:
        t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
        t.start()
        self.threads.append(t)

    def serve(self, inp: IO[str], out: IO[str]) -> None:
        table = {
            "grab": self.grab,
            "fill": self.fill,
            "eventfd_max": self.eventfd_max,
            "send": self.send,
            "flood": self.flood,
            "flood_done": self.flood_state,
            "shutdown": self.shutdown,
            "close": self.close,
            "bind": self.bind,
            "record": self.record,
            "recorded": self.recorded_hex,
            "connect": self.connect,
            "dribble": self.dribble,
        }
        for line in inp:
            words = line.split()
            if not words or words[0] == "quit":
                break
            try:
                answer = "ok " + str(table[words[0]](*words[1:]))  # type: ignore[operator]
            except Exception as exc:
                answer = f"err {type(exc).__name__}: {exc}".replace("\n", " ")
            out.write(answer + "\n")
            out.flush()
        self.stop.set()
        for t in self.threads:
            t.join(5)


class HostError(Exception):
    """The hostile host could not do what it was told."""


class HostileHost:
    """The test's handle on a hostile host process.  Use it as a context manager."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def do(self, *words: object, timeout: float = 10.0) -> str:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        proc.stdin.flush()
        ready = select.select([proc.stdout], [], [], timeout)[0]
        if not ready:
            raise HostError(f"no answer to {words[0]} within {timeout} s")
        answer = proc.stdout.readline().strip()
        status, _, rest = answer.partition(" ")
        if status != "ok":
            raise HostError(f"{words[0]}: {rest or 'the host process ended'}")
        return rest

    def grab(self, fd: int) -> int:
        """Copy the test process's descriptor ``fd`` into the host."""
        return int(self.do("grab", os.getpid(), fd))

    def bind(self, name: bytes) -> int:
        return int(self.do("bind", name.hex()))

    def connect(self, name: bytes) -> int:
        return int(self.do("connect", name.hex()))

    def recorded(self) -> bytes:
        data = self.do("recorded")
        return b"" if data == "-" else bytes.fromhex(data)

    def close(self) -> None:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if proc.poll() is None:
                proc.stdin.write("quit\n")
                proc.stdin.close()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        finally:
            if not proc.stdin.closed:
                proc.stdin.close()
            proc.stdout.close()

    def __enter__(self) -> HostileHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pidfd_getfd_works() -> bool:
    """Whether this kernel and these privileges let one process copy another's descriptors."""
    if not hasattr(os, "pidfd_open"):
        return False
    a, b = socket.socketpair()
    try:
        with HostileHost() as host:
            try:
                host.grab(a.fileno())
            except HostError:
                return False
        return True
    finally:
        a.close()
        b.close()


def abstract_name(instance: str, name: str, *, raw: bool) -> bytes:
    """Where a pipe named ``name`` of host ``instance`` listens (spelled out here, as a
    host that reads the naming scheme in the README would)."""
    return f"\0pylibos/{instance}/{'r' if raw else 'p'}/{name}".encode()


if __name__ == "__main__":
    _Host().serve(sys.stdin, sys.stdout)
