"""A whole program on an sgx host, its data and its IPC included, puts no payload on
the host's system calls in the clear; the same program on a direct host does (the
control, which shows the trace would catch it).

The program runs under ``strace -f``, which records every buffer each of its threads
hands to the host kernel (write, send and the rest).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """
import sys, threading
from pylibos.libos import ECHO, LibOS
from pylibos.pal import open_host

kind, events, secret = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
with open_host(kind) as host, LibOS(host, events) as libos:
    seen = []
    threads = [libos.clone(seen.append, i) for i in range(20)]
    for t in threads:
        assert t.join(10)
    done = threading.Event()
    libos.install_async_event(0.01, done.set)
    assert done.wait(10)
    with libos.ipc_connect(libos.ipc_name) as client:
        assert client.request(ECHO, secret + b" over IPC", timeout=10) == secret + b" over IPC"
    reader, writer = host.create_pipe()
    host.write(writer, secret + b" over a data pipe")
    got = b""
    while len(got) < len(secret) + 17:
        got += host.read(reader, 4096)
    assert got == secret + b" over a data pipe"
    host.close(reader)
    host.close(writer)
print("done")
"""

CALLS = "write,writev,pwrite64,sendto,sendmsg,sendmmsg"


def _escaped(data: bytes) -> str:
    """How ``strace -xx`` prints these bytes inside a string."""
    return "".join(f"\\x{b:02x}" for b in data)


def _trace(tmp_path: Path, kind: str, events: str, secret: bytes) -> str:
    out = tmp_path / f"{kind}-{events}.trace"
    command = ["strace", "-f", "-qq", "-xx", "-s", "1000000", "-e", f"trace={CALLS}"]
    command += ["-o", str(out), sys.executable, "-c", PROGRAM, kind, events, secret.hex()]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "done"
    return out.read_text()


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """The same program on a direct host, traced once for the module, and its secret: the
    payload goes over IPC and a data pipe, whatever channel the events use."""
    secret = b"SECRET-" + secrets.token_hex(12).encode()
    return secret, _trace(tmp_path_factory.mktemp("control"), "direct", "raw", secret)


@pytest.mark.skipif(
    shutil.which("strace") is None,
    reason="strace is not installed (apt-get install strace; .ci/run installs it)",
)
@pytest.mark.parametrize("events", ["raw", "eventfd"])
def test_no_payload_in_the_clear_on_sgx(
    tmp_path: Path, events: str, control: tuple[bytes, str]
) -> None:
    secret = b"SECRET-" + secrets.token_hex(12).encode()
    sgx = _trace(tmp_path, "sgx", events, secret)
    assert "sendto(" in sgx or "write(" in sgx, "the trace recorded nothing"
    assert _escaped(secret[:16]) not in sgx, "payload on a host system call in the clear"
    shown, direct = control
    assert _escaped(shown[:16]) in direct, "the control run did not show the payload"
