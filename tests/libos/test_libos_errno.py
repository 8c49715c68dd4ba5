"""The one mapping from PAL error codes to errno (``pylibos.libos._errno``)."""

from __future__ import annotations

import errno

import pytest

from pylibos.libos import oserror, to_errno
from pylibos.pal import PalError, PalErrorCode


@pytest.mark.parametrize("code", list(PalErrorCode), ids=lambda c: c.name)
def test_every_pal_error_code_has_an_errno(code: PalErrorCode) -> None:
    num = to_errno(code)
    assert num in errno.errorcode, f"{code.name} maps to {num}, not an errno"


@pytest.mark.parametrize("code", list(PalErrorCode), ids=lambda c: c.name)
def test_oserror_carries_the_errno_the_code_and_the_place(code: PalErrorCode) -> None:
    pal = PalError(code, "pipe:x: something")
    err = oserror(pal, "open event")
    assert isinstance(err, OSError)
    assert err.errno == to_errno(code)
    # The subclass Python itself picks for that errno (FileNotFoundError for ENOENT...).
    assert type(err) is type(OSError(err.errno, "x"))
    assert err.__cause__ is pal
    assert "open event" in str(err) and code.name in str(err)


@pytest.mark.parametrize(
    ("code", "expected", "num"),
    [
        (PalErrorCode.STREAMNOTEXIST, FileNotFoundError, errno.ENOENT),
        (PalErrorCode.STREAMEXIST, FileExistsError, errno.EEXIST),
        (PalErrorCode.TRYAGAIN, BlockingIOError, errno.EAGAIN),
        (PalErrorCode.DENIED, PermissionError, errno.EACCES),
        (PalErrorCode.AUTH_FAILED, PermissionError, errno.EACCES),
        (PalErrorCode.TIMEDOUT, TimeoutError, errno.ETIMEDOUT),
        (PalErrorCode.CONNFAILED, ConnectionResetError, errno.ECONNRESET),
        (PalErrorCode.CONNFAILED_PIPE, BrokenPipeError, errno.EPIPE),
        (PalErrorCode.INTERRUPTED, InterruptedError, errno.EINTR),
        (PalErrorCode.TOOMANY, OSError, errno.EMFILE),
        (PalErrorCode.NOMEM, OSError, errno.ENOMEM),
        (PalErrorCode.BADHANDLE, OSError, errno.EBADF),
        (PalErrorCode.INVAL, OSError, errno.EINVAL),
        (PalErrorCode.NOTSUPPORT, OSError, errno.EOPNOTSUPP),
    ],
)
def test_oserror_subclass(code: PalErrorCode, expected: type[OSError], num: int) -> None:
    err = oserror(PalError(code, "m"))
    assert type(err) is expected
    assert err.errno == num


def test_oserror_without_a_place() -> None:
    err = oserror(PalError(PalErrorCode.INVAL, "bad"))
    assert str(err).startswith(f"[Errno {errno.EINVAL}]")
    assert "INVAL: bad" in str(err)
