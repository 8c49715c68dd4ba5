"""The command line: help on every command, errors as ERROR lines, outputs written."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pylibos import pal
from pylibos._cli import main


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["compare"], ["bench"], ["report"], ["workloads"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "usage: pylibos" in out
    assert main([]) == 1  # no command: help, and a failing exit code


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        (
            "compare",
            [
                "--configs LIST comma-separated configurations (default ",
                "--json F write the run's JSON to F",
                "--ghz G clock for ns-to-cycles (default: the CPU's reported clock)",
                "costs in the SGX projection (default 10000; published measurements range "
                "8000-17000)",
            ],
        ),
        (
            "workloads",
            [
                "--configs LIST comma-separated configurations, native among them (default ",
                "--json F write the run's JSON to F",
                "--ghz G clock for cycles-to-seconds in the projection (default: the CPU's",
                "costs in the SGX projection (default 10000)\n",
            ],
        ),
    ],
)
def test_options_several_commands_share_keep_each_commands_help(
    command: str,
    phrases: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = re.sub(" +", " ", capsys.readouterr().out)
    for phrase in phrases:
        assert phrase in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--configs", "sgx/tls"], "unknown configuration 'sgx/tls'; valid: native"),
        (["compare", "--duration", "0"], "--duration must be in (0, 3600]"),
        (["compare", "--batch", "0"], "--batch must be in [1, 10000]"),
        (["bench", "--config", "vm/raw"], "unknown configuration 'vm/raw'"),
        (["report", "/nonexistent/run.json"], "no such file"),
        (["compare", "--tls", "gnutls"], "unknown TLS backend 'gnutls'; choose one of mbedtls"),
        *[
            (["bench", "--config", "sgx/pipe", "--tls", name], f"--tls {name} is not available")
            for name in pal.TLS_BACKENDS
            if name not in pal.available_tls_backends()
        ],
    ],
)
def test_bad_input_is_one_error_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err
    assert "Traceback" not in err


def test_bad_number_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--duration", "soon"])
    assert exc.value.code == 2
    assert "not a number: 'soon'" in capsys.readouterr().err


def test_compare_writes_json_markdown_plot_and_report_rerenders(tmp_path: Path) -> None:
    js, md, png = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    argv = [
        "compare", "--configs", "native,sgx/eventfd", "--duration", "0.1", "--rounds", "1",
        "--batch", "5", "--live", "0", "--json", str(js), "--markdown", str(md),
        "--plot", str(png),
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(js.read_text())
    assert [e["name"] for e in data["configs"]] == ["native", "sgx/eventfd"]
    assert "| sgx/eventfd |" in md.read_text()
    assert png.stat().st_size > 1000
    md2 = tmp_path / "again.md"
    assert main(["report", str(js), "--markdown", str(md2)]) == 0
    assert md2.read_text() == md.read_text()


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--json", "no/such/dir.json", "no such directory"),
        ("--markdown", "no/such/run.md", "no such directory"),
        ("--plot", "run.xyz", "must end in .png, .pdf, .svg"),
    ],
)
def test_bad_output_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, name: str, message: str
) -> None:
    # A duration of an hour: the refusal has to come before any measuring.
    argv = ["bench", "--config", "sgx/raw+pool", "--duration", "3600", option]
    assert main([*argv, str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pylibos", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("pylibos ")


def _interrupt_compare(js: Path, when: bytes) -> tuple[int, str, str]:
    """Run ``compare`` and send it SIGINT once its progress line shows ``when``; its
    exit status, stdout and stderr."""
    # Slices of a fifth of a second (5 s in 25 rounds): the first one ends soon, and the
    # whole run (50 slices, 10 s) would take seconds more than the Ctrl-C needs to land.
    argv = [
        sys.executable, "-m", "pylibos", "compare", "--configs", "native,sgx/eventfd",
        "--duration", "5", "--rounds", "25", "--live", "0", "--json", str(js),
    ]  # fmt: skip
    # FORCE_COLOR: the progress line is drawn on the pipe too, so it says how far the run
    # is.
    env = {**os.environ, "FORCE_COLOR": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 30
        while when not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
            chunk = os.read(proc.stderr.fileno(), 65536) if ready else b""
            if not chunk:
                break
            seen += chunk
        assert when in seen, seen[-2000:]
        proc.send_signal(signal.SIGINT)
        raw_out, raw_err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, raw_out.decode(), (seen + raw_err).decode(errors="replace")


def test_ctrl_c_prints_what_was_measured(tmp_path: Path) -> None:
    js = tmp_path / "partial.json"
    # After the first slice, the progress line names the configuration it measured.
    returncode, out, err = _interrupt_compare(js, b"measuring native")
    assert returncode == 0, err
    assert "Interrupted: showing what was measured so far" in out
    data = json.loads(js.read_text())
    assert data["interrupted"] is True
    assert [e["name"] for e in data["configs"]][:1] == ["native"]
    assert all(e["batches"] >= 1 for e in data["configs"])


def test_too_few_descriptors_is_one_error_line() -> None:
    # One configuration: its measuring process is the one that finds the limit too low
    # (the first of the default list would be, with the others started for nothing).
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))\n"
        "from pylibos._cli import main\n"
        "sys.exit(main(['compare', '--configs', 'native', '--live', '100', '--batch', '10',\n"
        "               '--duration', '1']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("ERROR: ") and "file descriptors" in proc.stderr
    assert "Traceback" not in proc.stderr
