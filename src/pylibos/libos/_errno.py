"""The one mapping from PAL error codes to errno, as Gramine's ``pal_to_unix_errno``."""

from __future__ import annotations

import errno
import os

from ..pal import PalError, PalErrorCode

_TO_ERRNO: dict[PalErrorCode, int] = {
    PalErrorCode.NOTIMPLEMENTED: errno.ENOSYS,
    PalErrorCode.NOTSUPPORT: errno.EOPNOTSUPP,
    PalErrorCode.INVAL: errno.EINVAL,
    PalErrorCode.TOOLONG: errno.ENAMETOOLONG,
    PalErrorCode.DENIED: errno.EACCES,
    PalErrorCode.BADHANDLE: errno.EBADF,
    PalErrorCode.STREAMEXIST: errno.EEXIST,
    PalErrorCode.STREAMNOTEXIST: errno.ENOENT,
    PalErrorCode.INTERRUPTED: errno.EINTR,
    PalErrorCode.NOMEM: errno.ENOMEM,
    PalErrorCode.TOOMANY: errno.EMFILE,
    PalErrorCode.TRYAGAIN: errno.EAGAIN,
    PalErrorCode.NOTSERVER: errno.EINVAL,
    PalErrorCode.NOTCONNECTION: errno.ENOTCONN,
    PalErrorCode.CONNFAILED: errno.ECONNRESET,
    PalErrorCode.CONNFAILED_PIPE: errno.EPIPE,
    PalErrorCode.AUTH_FAILED: errno.EACCES,
    PalErrorCode.TIMEDOUT: errno.ETIMEDOUT,
}


def to_errno(code: PalErrorCode) -> int:
    return _TO_ERRNO[code]


def oserror(exc: PalError, what: str = "") -> OSError:
    """The ``OSError`` (of the matching subclass) a LibOS call raises for a PAL failure."""
    num = _TO_ERRNO[exc.code]
    text = f"{os.strerror(num)} ({what + ': ' if what else ''}{exc})"
    err = OSError(num, text)
    err.__cause__ = exc
    return err


def ebadf(what: str) -> OSError:
    """``EBADF`` for ``what``: a descriptor or an object closed meanwhile."""
    return OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: {what}")
