"""Pipes: abstract UNIX sockets named by URI, as Gramine's ``pal_pipes.c``.

Pipes are abstract UNIX sockets named ``pylibos/<instance>/<p|r>/<NAME>``.  The instance
is drawn at random per host unless given, so two hosts never meet by accident; two
processes that should talk (IPC) open their hosts with the same instance and master key.
TLS pipes (``p``) and raw pipes (``r``) live in separate branches, so a raw end can never
be paired with an encrypted one.

The bytes of a pipe end move here as plain ``recv``/``send``; a host whose pipes are
secured (``SgxHost``, through ``_tls_pipes``) overrides the hooks below the line
"hooks": securing an end as it opens or is accepted, reading, writing, and the goodbye
of an end being deleted or closed.
"""

from __future__ import annotations

import secrets
import select
import socket
from collections.abc import Callable

from . import _interrupts
from ._core import HostCore
from ._errors import PalError, PalErrorCode
from ._handle import Handle, HandleKind

_ABSTRACT_MAX = 107  # sizeof(sun_path) minus the leading NUL of an abstract name
_NAME_TRIES = 8


class Pipes(HostCore):
    """Pipe ends: open, accept, and move bytes."""

    def _abstract_name(self, name: str, raw: bool) -> bytes:
        if not name:
            raise PalError(PalErrorCode.INVAL, "pipe name is empty")
        if "\0" in name:
            raise PalError(PalErrorCode.INVAL, "pipe name contains a NUL byte")
        full = f"pylibos/{self.instance}/{'r' if raw else 'p'}/{name}".encode()
        if len(full) > _ABSTRACT_MAX:
            room = _ABSTRACT_MAX - (len(full) - len(name.encode()))
            raise PalError(
                PalErrorCode.TOOLONG,
                f"pipe name is {len(name.encode())} bytes; at most {room} fit in sockaddr_un",
            )
        return b"\0" + full

    def _socket_handle(
        self, kind: HandleKind, uri: str, raw: bool, nonblocking: bool, call: str
    ) -> Handle:
        """A handle over a new stream socket, recorded as it is made; ``call`` names the
        one host call it is part of."""
        entered = _interrupts.enter()
        try:
            sock = self._call(
                call, uri, socket.socket, socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC
            )
            handle = Handle(kind, uri, raw=raw, nonblocking=nonblocking, sock=sock)
            self._track(handle)
        finally:
            _interrupts.leave(entered)
        return handle

    def _discard(self, handle: Handle, *, count: bool) -> None:
        """Undo a handle that never opened: untrack it and close its socket (a Ctrl-C waits
        until both are done)."""
        entered = _interrupts.enter()
        try:
            with self._lock:
                handle.closed = True
                self._handles.discard(handle)
            assert handle._sock is not None
            if count:
                self._call("close", handle.uri, handle._sock.close)
            else:
                self._aside("close", handle.uri, handle._sock.close)
        finally:
            _interrupts.leave(entered)

    def _open_listener(self, uri: str, name: str, raw: bool, nonblocking: bool) -> Handle:
        handle = self._open_socket(
            HandleKind.PIPE_SRV, uri, name, raw, nonblocking,
            (("bind", None), ("listen", 128)),
            (PalErrorCode.STREAMEXIST, "this pipe name already has a listener"),
        )  # fmt: skip
        assert handle._sock is not None
        handle._sock.setblocking(not nonblocking)
        return handle

    def _open_connecting(self, uri: str, name: str, raw: bool, nonblocking: bool) -> Handle:
        handle = self._open_socket(
            HandleKind.PIPE, uri, name, raw, nonblocking,
            (("connect", None),),
            (PalErrorCode.STREAMNOTEXIST, "no listener for this pipe name"),
        )  # fmt: skip
        sock = handle._sock
        assert sock is not None
        if raw:
            sock.setblocking(not nonblocking)
            return handle
        try:
            self._secure_connecting(handle, name)
        except BaseException:
            try:
                # A helper already started (the handshake's, on sgx) is woken and
                # joined before its socket goes, as a close of the end does.
                self._pipe_closing(handle, self.handshake_timeout)
            finally:
                self._discard(handle, count=True)
            raise
        return handle

    def _open_socket(
        self,
        kind: HandleKind,
        uri: str,
        name: str,
        raw: bool,
        nonblocking: bool,
        steps: tuple[tuple[str, object], ...],
        refused: tuple[PalErrorCode, str],
    ) -> Handle:
        """A handle over a new socket at pipe ``name``: ``steps`` are the socket's methods
        to call, each on the pipe's address unless given an argument.  Their failure with
        ``refused``'s code is reported with its message; any failure closes the socket."""
        address = self._abstract_name(name, raw)
        call = "listen" if kind is HandleKind.PIPE_SRV else "connect"
        handle = self._socket_handle(kind, uri, raw, nonblocking, call)
        sock = handle._sock
        assert sock is not None
        try:
            for syscall, arg in steps:
                self._aside(syscall, uri, getattr(sock, syscall), address if arg is None else arg)
        except BaseException as exc:
            self._discard(handle, count=False)
            code, message = refused
            if isinstance(exc, PalError) and exc.code is code:
                raise PalError(code, f"{uri}: {message}") from None
            raise
        return handle

    def wait_for_client(self, server: Handle) -> Handle:
        """Accept one connection on a listening pipe (``PalStreamWaitForClient``)."""
        self._check(server, HandleKind.PIPE_SRV)
        listener = server._sock
        assert listener is not None
        if not server.nonblocking:
            # Wait here, where a Ctrl-C is not deferred; the accept below then finds the
            # client at once (part of the same host call).
            poller = select.poll()
            poller.register(listener.fileno(), select.POLLIN)
            try:  # noqa: SIM105 (on the clone path; suppress() costs a context manager)
                self._aside("poll", server.uri, poller.poll)
            except PalError:
                pass  # the accept below says what is wrong
        uri = server.uri.replace(".srv:", ":", 1)
        entered = _interrupts.enter()
        try:
            sock, _ = self._call("accept", server.uri, listener.accept)
            handle = Handle(
                HandleKind.PIPE, uri, raw=server.raw, nonblocking=server.nonblocking, sock=sock
            )
            self._track(handle)
        finally:
            _interrupts.leave(entered)
        if not server.raw:
            try:
                self._secure_accepted(handle, server.uri.partition(":")[2])
            except BaseException:
                self._discard(handle, count=True)
                raise
        sock.setblocking(not server.nonblocking)
        return handle

    def create_pipe(
        self,
        *,
        raw: bool = False,
        nonblocking: bool = False,
        names: Callable[[], str] | None = None,
        label: str = "random",
    ) -> tuple[Handle, Handle]:
        """An anonymous pipe: a fresh random name, both ends connected, the listener closed.

        Returns ``(accepted_end, connecting_end)``, as Gramine's ``create_pipe`` followed by
        ``PalStreamOpen`` and ``PalStreamWaitForClient`` gives them.  ``names`` draws the
        name (64 random bits in hex by default); a name that is taken, by chance or by a
        host that binds names first, is drawn again, up to 8 times (then ``STREAMEXIST``,
        naming the pipe by ``label``).
        """
        prefix = "pipe.raw" if raw else "pipe"
        for _ in range(_NAME_TRIES):
            name = secrets.token_hex(8) if names is None else names()
            try:
                server = self.stream_open(f"{prefix}.srv:{name}", nonblocking=nonblocking)
            except PalError as exc:
                if exc.code is PalErrorCode.STREAMEXIST:
                    continue
                raise
            break
        else:
            raise PalError(
                PalErrorCode.STREAMEXIST, f"no free {label} pipe name after {_NAME_TRIES} tries"
            )
        try:
            connecting = self.stream_open(f"{prefix}:{name}", nonblocking=nonblocking)
            try:
                # Nonblocking: the accept finds the client connected already, and the
                # accepted end is as nonblocking as its listener.
                accepted = self.wait_for_client(server)
            except BaseException:
                self.close(connecting)
                raise
            return accepted, connecting
        finally:
            self.close(server)

    def _recv(self, handle: Handle, size: int) -> bytes:
        assert handle._sock is not None
        return self._call("recv", handle.uri, handle._sock.recv, size)

    def _send(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        assert handle._sock is not None
        return self._call("send", handle.uri, handle._sock.send, data)

    # -- hooks: where a host with secured pipes differs --------------------------------

    def _secure_connecting(self, handle: Handle, name: str) -> None:
        """Called on a freshly connected ``pipe:`` end; leaves it in its blocking mode."""
        assert handle._sock is not None
        handle._sock.setblocking(not handle.nonblocking)

    def _secure_accepted(self, handle: Handle, name: str) -> None:
        """Called on the ``pipe:`` end ``wait_for_client`` is about to return."""

    def _pipe_read(self, handle: Handle, size: int) -> bytes:
        """Up to ``size`` bytes from a connected pipe end (its read lock held)."""
        return self._recv(handle, size)

    def _pipe_write(self, handle: Handle, data: bytes | bytearray | memoryview) -> int:
        """Write to a connected pipe end (its write lock held); bytes taken."""
        return self._send(handle, bytes(data))

    def _pipe_deleting(self, handle: Handle) -> None:
        """Called before a pipe end is shut down both ways."""

    def _pipe_closing(self, handle: Handle, helper_wait: float) -> None:
        """Called when a pipe end has just been marked closed, before its descriptor
        goes (``helper_wait``: how long a helper thread of the end may be waited for)."""
