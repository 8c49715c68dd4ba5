"""PAL error codes and the one exception type the PAL raises.

Codes are keyed by meaning, like Gramine's ``PAL_ERROR_*``; the LibOS maps them to
errno values in one table (``pylibos.libos._errno``).
"""

from __future__ import annotations

import enum


class PalErrorCode(enum.IntEnum):
    NOTIMPLEMENTED = 1
    NOTSUPPORT = 2
    INVAL = 3
    TOOLONG = 4
    DENIED = 5
    BADHANDLE = 6
    STREAMEXIST = 7
    STREAMNOTEXIST = 8
    INTERRUPTED = 9
    NOMEM = 10
    TOOMANY = 11
    TRYAGAIN = 12
    NOTSERVER = 13
    NOTCONNECTION = 14
    CONNFAILED = 15
    CONNFAILED_PIPE = 16
    AUTH_FAILED = 17
    TIMEDOUT = 18


class PalError(Exception):
    """A failed PAL operation: ``code`` says what kind of failure, the message says where."""

    def __init__(self, code: PalErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class ShutDownError(PalError, RuntimeError):
    """Used after shutdown: the host, the LibOS over it, or one of its workers.

    The one exception every layer's public API raises for it (``pylibos.pal`` and
    ``pylibos.libos`` both export it).  It is a ``PalError`` with code ``BADHANDLE``, so
    ``except PalError`` and the LibOS's one errno mapping keep working; and it is a
    ``RuntimeError``, as Python raises for an object used after its shutdown (a thread
    started at interpreter exit, an executor after ``shutdown()``), so ``except
    RuntimeError`` around LibOS calls keeps working too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(PalErrorCode.BADHANDLE, message)
