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


class Handle:
    """An open PAL stream.

    The LibOS passes handles back to the host that made them and never looks inside:
    the socket or descriptor is the host's business.
    """

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
        self._sock = sock
        self._fd = sock.fileno() if sock is not None else fd
        self._owns_fd = owns_fd
        self._tls: TlsSession | None = None
        # Guards _tls: TLS sessions (either library) are not safe for concurrent use.
        self._tls_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # Guards _out and _out_plain.
        self._write_lock = threading.Lock()
        # A sealed record the socket has not all taken (nonblocking writes only), and its
        # plaintext, which no write has counted as written yet.
        self._out = bytearray()
        self._out_plain = b""
        # Set once the handshake that guards this handle has ended, well or badly.
        self._ready: threading.Event | None = None
        self._failure: PalError | None = None
        self._goodbye = False  # close_notify sent
        self._deleted = False  # shut down by delete()
        self._helper: PalThread | None = None
        # An edge watch (kind EDGES): the host epoll, and the handles it watches by fd.
        self._epoll: select.epoll | None = None
        self._watched: dict[int, Handle] = {}
        self._masks: dict[int, int] = {}  # the epoll mask each watched number has
        # What the descriptor was when it was opened (see pal._host._identity); None for
        # descriptors the program owns (kind FD).  Checked before every action.
        self._ident: object = None
        # The host closed or replaced the descriptor: its number is no longer ours.
        self._stale = False
        self.closed = False

    @property
    def encrypted(self) -> bool:
        """True when this handle's bytes travel as TLS records."""
        return self._ready is not None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Handle {self.uri} {state}{' tls' if self.encrypted else ''}>"
