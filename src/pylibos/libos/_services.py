"""The LibOS's own workers (Gramine's async and IPC helper threads): their start at
boot and the API over them.  ``LibOS`` is a ``Services``; its teardown (``Teardown``, the
base) stops and joins them."""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Callable
from typing import Any

from ..pal import HostCallAccount, PalError, PalErrorCode, quiet_thread
from ._async import AsyncWorker
from ._errno import oserror
from ._ipc import THREADS, IpcClient, IpcWorker
from ._teardown import _JOIN_S, Teardown

_IPC_NAME_TRIES = 8


class Services(Teardown):
    """The async and IPC workers of a LibOS, and what the program asks of them."""

    # The host-call counts of the LibOS's own workers (``worker_host_calls``).
    _worker_accounts: list[HostCallAccount]

    def _boot_workers(self, ipc_name: str | None) -> None:
        """Start the async worker and the IPC worker (listening on ``ipc_name``)."""
        self._async = AsyncWorker(self._factory.create())
        self._async.thread = self._start_internal(self._async.run)
        self._ipc = self._ipc_worker(ipc_name)
        self._ipc.handlers[THREADS] = self._ipc_threads
        self._ipc.thread = self._start_internal(self._ipc.run)

    def _ipc_worker(self, ipc_name: str | None) -> IpcWorker:
        """The IPC worker, listening on ``ipc_name``, or on a random name (tried again if
        taken, so a host that binds names cannot keep the LibOS from booting)."""
        ipc_event = self._factory.create()
        tries = 1 if ipc_name is not None else _IPC_NAME_TRIES
        for attempt in range(tries):
            name = ipc_name if ipc_name is not None else f"ipc.{secrets.token_hex(8)}"
            try:
                return IpcWorker(self.host, ipc_event, name)
            except PalError as exc:
                if exc.code is PalErrorCode.STREAMEXIST and attempt + 1 < tries:
                    continue
                ipc_event.destroy()
                raise oserror(exc, f"IPC listener {name!r}") from exc
        raise AssertionError("unreachable")

    def _start_internal(self, fn: Callable[[], None]) -> Any:
        """Start a worker and wait (bounded) until it runs, so that a booted LibOS has
        its workers at their first wait and not still on their way to it."""
        running = threading.Event()

        def worker() -> None:
            quiet_thread()  # the program's signals are not the workers' to take
            self._worker_accounts.append(self.host.thread_account())
            running.set()
            fn()

        worker.__name__ = getattr(fn, "__qualname__", "worker")
        try:
            thread = self.host.thread_create(worker)
        except PalError as exc:
            raise oserror(exc, "start LibOS worker") from exc
        running.wait(_JOIN_S)
        return thread

    def worker_host_calls(self) -> int:
        """Host calls the LibOS's async and IPC workers have made (their periodic
        rechecks, the IPC traffic): no thread creation's doing."""
        return sum(account[0] for account in self._worker_accounts)

    def _ipc_threads(self, _payload: bytes) -> bytes:
        tids = sorted(t.tid for t in self._table.all())
        return struct.pack(f"!{len(tids)}I", *tids)

    def install_async_event(self, delay: float, callback: Callable[[], object]) -> int:
        """Run ``callback`` on the async worker after ``delay`` seconds."""
        assert self._async is not None
        return self._async.install(delay, callback)

    def cancel_async_event(self, timer_id: int) -> bool:
        assert self._async is not None
        return self._async.cancel(timer_id)

    @property
    def async_errors(self) -> list[BaseException]:
        """Exceptions raised by async callbacks, kept for the program to inspect."""
        return list(self._async.errors) if self._async else []

    @property
    def ipc_name(self) -> str:
        assert self._ipc is not None
        return self._ipc.name

    @property
    def ipc_worker(self) -> IpcWorker:
        assert self._ipc is not None
        return self._ipc

    def ipc_connect(self, name: str) -> IpcClient:
        """Connect to the IPC worker named ``name`` of a process of the same instance."""
        return IpcClient(self.host, name)
