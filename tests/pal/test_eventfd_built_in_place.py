"""An eventfd's handle is built in place by ``Eventfds._open_eventfd`` (no ``__init__``
call on the hot path of sgx/eventfd): it must hold what ``Handle.__init__`` gives an
eventfd, and behave as one, whether or not kcmp is to be had."""

from __future__ import annotations

import pytest

from pylibos import pal
from pylibos.pal import Handle, HandleKind


@pytest.mark.parametrize("nonblocking", [False, True], ids=["blocking", "nonblocking"])
@pytest.mark.parametrize("registry", [True, False], ids=["kcmp", "by-inode"])
def test_an_eventfds_handle_holds_what_its_init_would_give_it(
    host: pal.Host, nonblocking: bool, registry: bool
) -> None:
    if not registry:
        host._eventfds = False  # as where kcmp is not to be had: identity by inode
    handle = host.stream_open("eventfd:", nonblocking=nonblocking)
    try:
        made = Handle(
            HandleKind.EVENTFD, "eventfd:", raw=True, nonblocking=nonblocking, fd=handle._fd
        )
        own = {k: v for k, v in vars(handle).items() if k not in ("_ident", "_owner")}
        assert own == vars(made)
        assert handle.kind is HandleKind.EVENTFD and handle.raw and not handle.encrypted
        assert handle._owner is host and handle._ident is not None
        assert handle in host.open_handles()
        host.write(handle, pal.EVENT_TOKEN)
        assert host.read(handle, 8) == pal.EVENT_TOKEN
        with pytest.raises(pal.PalError):
            host.write(handle, b"data")  # no payload on an eventfd, as for any raw handle
    finally:
        host.close(handle)
    assert handle.closed and handle not in host.open_handles()
