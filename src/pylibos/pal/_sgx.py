"""The Linux-SGX host: pipes speak TLS-PSK, keys derive from the master key, and the
number of threads is bounded, as Gramine's ``pal/src/host/linux-sgx`` does it.

Pipe ends and their roles follow Gramine's ``pal_pipes.c``: the end ``wait_for_client``
returns is the TLS *client* and handshakes before the call returns; the connecting end is
the TLS *server* and handshakes on a helper thread, so ``stream_open("pipe:...")`` returns
at once and the first read or write on it waits for the handshake.

The TLS library is the host's ``tls`` option (``"mbedtls"`` or ``"openssl"``, see
``_tls``); the host code above the session interface is the same for both.
"""

from __future__ import annotations

import contextlib
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import PalError, PalErrorCode
from ._handle import Handle
from ._host import _RECV_CHUNK, Host, _from_oserror
from ._thread import PalThread
from ._tls import TlsFailure, default_tls_backend, session_class


class SgxHost(Host):
    kind = "sgx"

    def __init__(
        self,
        master_key: bytes | None = None,
        *,
        instance: str | None = None,
        max_threads: int = 256,
        tls: str | None = None,
    ) -> None:
        if tls is not None and not isinstance(tls, str):
            raise ValueError(f"tls must be a backend name, got {tls!r}")
        self._session = session_class(default_tls_backend() if tls is None else tls)
        self.tls = self._session.backend
        """The TLS library of this host's pipes: ``"mbedtls"`` or ``"openssl"``."""
        super().__init__(master_key, instance=instance)
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive integer, got {max_threads!r}")
        self.max_threads = max_threads
        self._slots = threading.Lock()
        self._doorbell = threading.Lock()
        self._doorbell.acquire()
        # Guarded by _slots: the threads holding a slot.  The main thread holds one more,
        # as its TCS does in an enclave.  A set, so taking a slot and recording who holds
        # it are one step, and giving it back twice is harmless.
        self._holders: set[PalThread] = set()

    def session_key(self, name: str) -> bytes:
        """HKDF-SHA256(master key, no salt, info = NAME as UTF-8 + NUL), 32 bytes."""
        if not isinstance(name, str) or not name:
            raise PalError(PalErrorCode.INVAL, f"session key needs a pipe name, got {name!r}")
        info = name.encode() + b"\0"
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            self._master_key
        )

    def _secure_connecting(self, handle: Handle, name: str) -> None:
        assert handle._sock is not None
        with self.phase("handshake"):
            handle._tls = self._session(self.session_key(name), server=True)
            handle._ready = threading.Event()
            handle._sock.settimeout(self.handshake_timeout)
            deadline = time.monotonic() + self.handshake_timeout
            handle._helper = self._spawn(
                self._handshake_in_helper, (handle, deadline), helper=True, name="pal-handshake"
            )

    def _handshake_in_helper(self, handle: Handle, deadline: float) -> None:
        assert handle._ready is not None and handle._sock is not None
        try:
            self._handshake(handle, deadline)
        except PalError as exc:
            handle._failure = exc
        finally:
            # OSError: closed under us, and close() is waiting for this thread.
            with contextlib.suppress(OSError):
                handle._sock.setblocking(not handle.nonblocking)
            handle._ready.set()

    def _secure_accepted(self, handle: Handle, name: str) -> None:
        assert handle._sock is not None
        with self.phase("handshake"):
            handle._tls = self._session(self.session_key(name), server=False)
            handle._ready = threading.Event()
            handle._sock.settimeout(self.handshake_timeout)
            try:
                self._handshake(handle, time.monotonic() + self.handshake_timeout)
            finally:
                handle._ready.set()

    def _handshake(self, handle: Handle, deadline: float) -> None:
        """Run the handshake by ``deadline`` (monotonic): one deadline for the whole
        handshake, not one per system call, since a peer (or a host) that dribbles a byte
        now and then would otherwise hold it for ever."""
        sock, session = handle._sock, handle._tls
        assert sock is not None
        if session is None:  # closed before the handshake began
            raise PalError(PalErrorCode.BADHANDLE, f"handle is closed: {handle.uri}")

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            return left

        def send(data: bytes) -> None:
            view = memoryview(data)
            while view:
                sock.settimeout(remaining())
                self._count("send")
                view = view[sock.send(view) :]

        def recv() -> bytes:
            sock.settimeout(remaining())
            self._count("recv")
            return sock.recv(_RECV_CHUNK)

        try:
            session.handshake(send, recv)
        except TlsFailure as exc:
            raise PalError(PalErrorCode.AUTH_FAILED, f"{handle.uri}: {exc}") from None
        except TimeoutError:
            raise PalError(
                PalErrorCode.TIMEDOUT,
                f"{handle.uri}: no handshake within {self.handshake_timeout:g} s",
            ) from None
        except PalError as exc:
            raise PalError(exc.code, f"{handle.uri}: handshake: {exc.message}") from None
        except OSError as exc:
            raise _from_oserror(exc, f"{handle.uri}: handshake") from None

    def _slot_free(self) -> bool:
        return len(self._holders) + 1 < self.max_threads  # + the main thread's

    def _await_slot(self, deadline: float, helper: bool) -> None:
        # Waits on the doorbell, a bare lock: its acquire either takes it or, when a
        # Ctrl-C interrupts it, does not (a Condition's Python-level enter and exit could
        # be interrupted holding its lock, and every exiting thread would then block).
        while not self._slot_free():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._doorbell.acquire(timeout=remaining):
                what = "the pipe handshake helper" if helper else "a new thread"
                raise PalError(
                    PalErrorCode.NOMEM,
                    f"sgx.max_threads ({self.max_threads}) reached: no slot for {what} "
                    f"came free within {self.slot_timeout:g} s",
                )

    def _take_slot(self, thread: PalThread) -> bool:
        with self._slots:
            if not self._slot_free():
                return False
            self._holders.add(thread)
            more = self._slot_free()
        if more:
            self._ring()  # another waiter may have been rung for the same free slots
        return True

    def _release_thread(self, thread: PalThread) -> None:
        with self._slots:
            if thread not in self._holders:
                return
            self._holders.discard(thread)
        self._ring()

    def _ring(self) -> None:
        # Released means "a slot came free since you last looked"; ringing twice is once,
        # and a doorbell already rung is left alone (the common case: nobody waits).
        if self._doorbell.locked():
            with contextlib.suppress(RuntimeError):  # rung meanwhile by another thread
                self._doorbell.release()

    @property
    def threads_in_use(self) -> int:
        """Thread slots taken, the main thread's included."""
        with self._slots:
            return len(self._holders) + 1


__all__ = ["SgxHost"]
