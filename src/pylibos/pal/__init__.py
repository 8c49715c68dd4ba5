"""The PAL: the only way the LibOS reaches the host.

Streams are opened by URI and used through ``Host`` methods that mirror Gramine's PAL API
(``PalStreamOpen``, ``PalStreamWaitForClient``, ``PalStreamRead``/``Write``,
``PalStreamsWaitEvents``, ``PalStreamDelete``, ``PalObjectDestroy``, ``PalThreadCreate``).
"""

from __future__ import annotations

from typing import Any

from ._direct import DirectHost as DirectHost
from ._errors import PalError as PalError
from ._errors import PalErrorCode as PalErrorCode
from ._errors import ShutDownError as ShutDownError
from ._eventfd import EVENT_TOKEN as EVENT_TOKEN
from ._handle import Handle as Handle
from ._handle import HandleKind as HandleKind
from ._host import Host as Host
from ._host import ShutsDown as ShutsDown
from ._interrupts import critical_deliver as critical_deliver
from ._interrupts import critical_enter as critical_enter
from ._interrupts import critical_leave as critical_leave
from ._interrupts import critical_owed as critical_owed
from ._interrupts import marks_critical_sections as marks_critical_sections
from ._interrupts import (
    marks_critical_sections_from_entry as marks_critical_sections_from_entry,
)
from ._interrupts import quiet_thread as quiet_thread
from ._ledger import HostCallAccount as HostCallAccount
from ._ledger import HostCallStats as HostCallStats
from ._sgx import SgxHost as SgxHost
from ._thread import PalThread as PalThread
from ._tls import CIPHERSUITE as CIPHERSUITE
from ._tls import PSK_IDENTITY as PSK_IDENTITY
from ._tls_backends import TLS_BACKENDS as TLS_BACKENDS
from ._tls_backends import available_tls_backends as available_tls_backends
from ._tls_backends import default_tls_backend as default_tls_backend
from ._tls_backends import tls_backend_problem as tls_backend_problem
from ._wait import WAIT_ERROR as WAIT_ERROR
from ._wait import WAIT_HANG_UP as WAIT_HANG_UP
from ._wait import WAIT_PRI as WAIT_PRI
from ._wait import WAIT_RDHUP as WAIT_RDHUP
from ._wait import WAIT_READ as WAIT_READ
from ._wait import WAIT_WRITE as WAIT_WRITE

HOST_KINDS = ("direct", "sgx")


def open_host(kind: str, master_key: bytes | None = None, **options: Any) -> Host:
    """Open a host of ``kind`` (``"direct"`` or ``"sgx"``).

    Without ``master_key`` the host draws a random 32-byte one.  Options: ``instance``
    (share it, and the key, between processes that talk over pipes) and, on ``sgx``,
    ``max_threads`` (default 256, as ``sgx.max_threads``) and ``tls``, the TLS library of
    its pipes: ``"mbedtls"`` (Gramine's; the default where python-mbedtls is installed) or
    ``"openssl"`` (the standard library's ``ssl``, Python 3.13+).  A backend this
    interpreter cannot use is a ``ValueError`` that says why.
    """
    if kind == "sgx":
        return SgxHost(master_key, **options)
    if kind == "direct":
        for option in ("max_threads", "tls"):
            if option in options:
                raise ValueError(f"{option} applies only to sgx hosts")
        return DirectHost(master_key, **options)
    raise ValueError(f"unknown host kind {kind!r}; choose one of {', '.join(HOST_KINDS)}")
