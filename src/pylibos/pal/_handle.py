"""PAL handles: what the LibOS holds instead of sockets and file descriptors."""

from __future__ import annotations

import enum
import select
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._errors import PalError
    from ._thread import PalThread
    from ._tls import TlsSession


class HandleKind(enum.Enum):
    PIPE_SRV = "pipe.srv"
    PIPE = "pipe"
    EVENTFD = "eventfd"
    FD = "fd"
    EDGES = "edges"


KIND_EVENTFD = HandleKind.EVENTFD
"""For the hot paths of an eventfd (on every thread start of sgx/eventfd): a global is
read faster than an enum member off its class."""


class Handle:
    """An open PAL stream.

    The LibOS passes handles back to the host that made them and never looks inside:
    the socket or descriptor is the host's business.  An eventfd's handle is built in
    place by ``Eventfds._open_eventfd`` (it stores what this ``__init__`` stores for one).
    """

    # What most handles never change is a class default, and a handle stores only what
    # differs (an eventfd is made on every thread start of ``sgx/eventfd``).
    _sock: socket.socket | None = None
    _owns_fd = True
    _tls: TlsSession | None = None
    # Set once the handshake that guards this handle has ended, well or badly.
    _ready: threading.Event | None = None
    _failure: PalError | None = None
    _goodbye = False  # close_notify sent
    _deleted = False  # shut down by delete()
    _helper: PalThread | None = None
    # An edge watch (kind EDGES): the host epoll.
    _epoll: select.epoll | None = None
    # What the descriptor was when it was opened (see pal._host._identity); None for
    # descriptors the program owns (kind FD).  Checked before every action.
    _ident: object = None
    # The host closed or replaced the descriptor: its number is no longer ours.
    _stale = False
    closed = False
    # The host that recorded the handle (see ``Host.close``).
    _owner: object = None
    # Set by a close that left the release to the reads and writes under way: the one
    # that takes its item releases the handle.
    _io_token: list[None] | None = None
    # A pipe's own (kind PIPE): guards _tls (TLS sessions, either library, are not
    # safe for concurrent use); one reader and one writer at a time; a sealed record
    # the socket has not all taken (nonblocking writes only, guarded by _write_lock),
    # and its plaintext, which no write has counted as written yet.
    _tls_lock: threading.Lock
    _read_lock: threading.Lock
    _write_lock: threading.Lock
    _out: bytearray
    _out_plain = b""
    # An edge watch's own (kind EDGES): the handles it watches by fd, and the epoll
    # mask each watched number has.
    _watched: dict[int, Handle]
    _masks: dict[int, int]

    def __init__(
        self,
        kind: HandleKind,
        uri: str,
        *,
        raw: bool,
        nonblocking: bool,
        sock: socket.socket | None = None,
        fd: int = -1,
        owns_fd: bool = True,
    ) -> None:
        self.kind = kind
        self.uri = uri
        self.raw = raw
        self.nonblocking = nonblocking
        if sock is None:  # an eventfd, an edge watch, or the program's descriptor
            self._fd = fd
            if not owns_fd:
                self._owns_fd = False
            elif kind is HandleKind.EDGES:
                self._watched = {}
                self._masks = {}
        else:  # a pipe end or listener
            self._sock = sock
            self._fd = sock.fileno()
            if kind is HandleKind.PIPE:
                self._make_locks()
                self._out = bytearray()

    def _make_locks(self) -> None:
        """A pipe end's locks; made anew in a fork child (``_core``), where a thread of
        the parent's that held one at the fork does not exist."""
        self._tls_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @property
    def encrypted(self) -> bool:
        """True when this handle's bytes travel as TLS records."""
        return self._ready is not None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Handle {self.uri} {state}{' tls' if self.encrypted else ''}>"
