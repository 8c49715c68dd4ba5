"""``pylibos workloads``: real child processes, checked results, failures and Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

import pytest

from pylibos import _schema
from pylibos._cli import main
from pylibos._schema import WorkloadsRun
from pylibos._signals import sigint_deferred
from pylibos.workloads import default_dir, discover, table_rows, target_rows
from pylibos.workloads._child import RunFailed, _read_stats

SHIPPED = ("asyncio_mixed", "http_threads", "numpy_batches", "sklearn_forest", "thread_per_task")


def _write(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_five_workloads_are_shipped() -> None:
    assert tuple(discover(default_dir())) == SHIPPED


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "nosuch"], "unknown workload 'nosuch'; valid: asyncio_mixed, http_threads"),
        (["--only", ","], "no workload named"),
        (["--only", "http_threads,http_threads"], "a workload is named twice"),
        (["--configs", "sgx/tls"], "unknown configuration 'sgx/tls'; valid: native"),
        (["--configs", "sgx/raw"], "--configs must include native"),
        (["--configs", "native,native"], "configuration 'native' named twice"),
        (["--repeat", "0"], "--repeat must be in [1, 100]"),
        (["--size", "0"], "--size must be in (0, 1000]"),
        (["--timeout", "-1"], "--timeout must be in (0, 86400]"),
        (["--dir", "/nonexistent/workloads"], "no workloads folder /nonexistent/workloads"),
        (["--plot", "run.xyz"], "must end in .png, .pdf, .svg"),
    ],
)
def test_bad_input_is_one_error_line_before_any_run(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workloads", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err
    assert "Traceback" not in err


def test_a_hanging_run_is_killed_at_the_timeout_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "pid"
    _write(
        tmp_path,
        "hang",
        f"""
        import os, threading
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(os.getpid()))
        threading.Event().wait()
        """,
    )
    js = tmp_path / "run.json"
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native", "--repeat", "2"]
    assert main([*argv, "--timeout", "1", "--json", str(js)]) == 1
    err = capsys.readouterr().err
    assert "ERROR: hang under native: did not finish within 1 s and was killed" in err
    assert _gone(int(pid_file.read_text()))
    (entry,) = json.loads(js.read_text())["results"]
    assert entry["result_ok"] is False and entry["runs"] == 0
    assert "did not finish" in entry["error"]


def test_a_crash_is_reported_with_its_stderr_and_stops_that_workload_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "crash", "raise ValueError('boom in the workload')\n")
    _write(tmp_path, "silent", "pass\n")
    _write(tmp_path, "needs_lib", "import no_such_library_here\n")
    _write(tmp_path, "fine", "print('fine result 42')\n")
    js = tmp_path / "run.json"
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native", "--repeat", "2"]
    assert main([*argv, "--json", str(js)]) == 1
    captured = capsys.readouterr()
    assert (
        "ERROR: crash under native: exited with status 1; its stderr ends: "
        "Traceback (most recent call last):" in captured.err
    )
    assert "ValueError: boom in the workload" in captured.err
    assert "ERROR: silent under native: printed no result line" in captured.err
    assert "No module named 'no_such_library_here' (pip install -e '.[workloads]'" in captured.err
    data = json.loads(js.read_text())
    by_name = {e["workload"]: e for e in data["results"]}
    assert by_name["fine"]["result_ok"] is True and by_name["fine"]["runs"] == 2
    assert by_name["fine"]["result"] == "fine result 42"
    assert by_name["crash"]["runs"] == 0 and by_name["crash"]["result_ok"] is False
    assert "FAILED" in captured.out


def test_a_result_that_changes_between_native_runs_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "pid", "import os\nprint('pid', os.getpid())\n")
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native", "--repeat", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "ERROR: pid under native: result 'pid " in err
    assert "differs from an earlier native run's 'pid " in err


def test_size_is_passed_and_report_rerenders_the_saved_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "echo", "import sys\nprint(' '.join(sys.argv[1:]))\n")
    js, md, png = tmp_path / "run.json", tmp_path / "run.md", tmp_path / "run.png"
    monkeypatch.chdir(tmp_path.parent)  # a --dir relative to where the command runs
    argv = ["workloads", "--dir", tmp_path.name, "--configs", "native", "--repeat", "1"]
    outputs = ["--json", str(js), "--markdown", str(md), "--plot", str(png)]
    assert main([*argv, "--size", "0.25", *outputs]) == 0
    data = json.loads(js.read_text())
    assert data["version"] == 1 and data["kind"] == "workloads"
    (entry,) = data["results"]
    assert entry["result"] == "--size 0.25"
    assert "| echo | native |" in md.read_text()
    assert png.stat().st_size > 1000
    again = tmp_path / "again.md"
    assert main(["report", str(js), "--markdown", str(again)]) == 0
    assert again.read_text() == md.read_text()
    capsys.readouterr()
    assert main(["report", str(js), "--vs", str(js)]) == 1
    assert "--vs compares micro-benchmark runs; this is a workloads run" in capsys.readouterr().err
    for version, named in ((99, "99"), (0, "0"), (None, "None")):
        if version is None:
            del data["version"]
        else:
            data["version"] = version
        js.write_text(json.dumps(data))
        capsys.readouterr()
        assert main(["report", str(js)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ERROR: {js}: workloads format version {named}; ")
        assert "this pylibos reads version 1" in err and "Traceback" not in err


def test_a_run_json_of_another_version_or_missing_a_key_is_named(tmp_path: Path) -> None:
    """What ``pylibos run --json`` wrote, read back as ``workloads`` does for every run."""
    _write(tmp_path, "one", "import threading\nthreading.Thread(target=print).start()\n")
    js = tmp_path / "stats.json"
    subprocess.run(
        [sys.executable, "-m", "pylibos", "run", "--json", str(js), "--", "one.py"],
        cwd=tmp_path, check=True, capture_output=True, timeout=50,
    )  # fmt: skip
    written = json.loads(js.read_text())
    assert _read_stats(str(js)) == written
    damaged: list[tuple[dict[str, object], str]] = [
        ({"format_version": 2}, "has format version 2; this pylibos reads version 1"),
        ({"format_version": None}, "has format version None; this pylibos reads version 1"),
        ({"host_calls_total": None}, "lacks 'host_calls_total'"),
    ]
    for change, message in damaged:
        data = dict(written)
        for key, value in change.items():
            if value is None:
                del data[key]
            else:
                data[key] = value
        js.write_text(json.dumps(data))
        with pytest.raises(RunFailed, match="^pylibos run's JSON " + message):
            _read_stats(str(js))


def test_ctrl_c_kills_the_running_child_and_prints_what_was_measured(tmp_path: Path) -> None:
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    _write(tmp_path, "a_quick", "print('quick result')\n")
    _write(
        tmp_path,
        "b_hang",
        f"""
        import os, threading
        fd = os.open({str(fifo)!r}, os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        threading.Event().wait()
        """,
    )
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native", "--repeat", "1"]
    # Ctrl-C's usual handler even where this test was started with SIGINT ignored.
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from pylibos._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([reader], [], [], 30)
        assert ready, "the hanging workload never started"
        child = int(os.read(reader, 64))
        parent.send_signal(signal.SIGINT)
        out, err = parent.communicate(timeout=30)
    finally:
        os.close(reader)
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
    assert parent.returncode == 0, err
    assert "Interrupted: showing what was measured so far." in out
    assert "a_quick" in out and "b_hang" not in out
    assert "Traceback" not in err
    assert _gone(child)


def _entry(workload: str, config: str, median: float, calls: float | None) -> dict[str, object]:
    return {
        "workload": workload, "config": config, "wall_s": [median], "median_s": median,
        "threads_created": None if calls is None else 1000.0, "host_calls": calls,
        "result": "r", "result_ok": True, "error": None,
    }  # fmt: skip


def test_table_and_targets_are_computed_from_the_saved_figures() -> None:
    results = [
        _entry("thread_per_task", "native", 1.0, None),
        _entry("thread_per_task", "direct/pipe", 2.0, 7000),
        _entry("thread_per_task", "sgx/pipe", 6.0, 22_000),
        _entry("thread_per_task", "sgx/raw", 2.1, 7000),
        _entry("http_threads", "native", 1.0, None),
        _entry("http_threads", "direct/pipe", 1.0, 7000),
        _entry("http_threads", "sgx/pipe", 1.5, 22_000),
        _entry("http_threads", "sgx/raw", 1.2, 2_000_000),
    ]
    # Only the keys the rendering reads.
    data = cast(
        WorkloadsRun, {"settings": {"ocall_cycles": 10_000, "ghz": 2.0}, "results": results}
    )
    _, rows = table_rows(data)
    by = {(r[0], r[1]): r for r in rows}
    # wall s, ÷ native, ÷ sgx/pipe, threads, threads/s, host calls, projected, result
    assert by[("thread_per_task", "sgx/raw")][2:] == [
        "2.10", "2.10", "0.35", "1,000", "476", "7,000", "2.14", "ok",
    ]  # fmt: skip
    # 2,000,000 host calls × 10,000 cycles at 2 GHz = 10 s on top of the 1.2 s measured.
    assert by[("http_threads", "sgx/raw")][8] == "11.20"
    assert by[("http_threads", "native")][3:7] == ["1.00", "0.67", "-", "-"]
    _, targets = target_rows(data)
    assert targets == [
        ["thread_per_task", "sgx/raw ÷ direct/pipe", "1.05", "≤ 1.1", "met"],
        ["thread_per_task", "sgx/pipe ÷ sgx/raw", "2.86", "≥ 2", "met"],
        ["http_threads", "sgx/raw ÷ direct/pipe", "1.20", "≤ 1.1", "MISSED"],
        ["http_threads", "sgx/pipe ÷ sgx/raw", "1.25", "(shown)", "-"],
    ]


def test_a_ctrl_c_while_a_child_starts_is_held_until_the_child_is_known() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), sigint_deferred():
        signal.raise_signal(signal.SIGINT)
        reached.append("after the signal")  # the child is recorded here
    assert reached == ["after the signal"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigint_deferred():
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # ignored, as before
    finally:
        signal.signal(signal.SIGINT, previous)


def test_smoke_the_smallest_workload_natively_and_under_sgx_raw(tmp_path: Path) -> None:
    js = tmp_path / "run.json"
    argv = [
        "workloads", "--only", "thread_per_task", "--configs", "native,sgx/raw",
        "--repeat", "1", "--size", "0.05", "--timeout", "50", "--json", str(js),
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(js.read_text())
    holds = [(_schema.WorkloadsRun, data), (_schema.Machine, data["machine"])]
    holds += [(_schema.WorkloadsSettings, data["settings"])]
    holds += [(_schema.WorkloadsEntry, entry) for entry in data["results"]]
    native, raw = data["results"]
    assert native["phases"] is None and raw["phases"]
    holds += [(_schema.PhaseStats, phase) for phase in raw["phases"].values()]
    for schema, value in holds:
        required, allowed = _schema.keys(schema)
        assert required <= value.keys() <= allowed, (schema.__name__, sorted(value))
    assert data["version"] == _schema.WORKLOADS_FORMAT_VERSION
    assert (native["config"], raw["config"]) == ("native", "sgx/raw")
    for entry in (native, raw):
        for key in ("wall_s", "median_s", "threads_created", "host_calls", "result_ok"):
            assert key in entry
        assert entry["result_ok"] is True and entry["error"] is None
        assert len(entry["wall_s"]) == 1 and entry["median_s"] == entry["wall_s"][0] > 0
    assert native["result"] == raw["result"]
    assert native["result"].startswith("thread_per_task tasks=400 digest=")
    # Every task's thread went through the LibOS, and each crossed to the host.
    assert native["threads_created"] is None and native["host_calls"] is None
    assert raw["threads_created"] >= 400
    assert raw["host_calls"] >= raw["threads_created"]
    assert data["errors"] == []


def test_a_result_that_differs_under_the_libos_names_workload_and_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "aware", "import sys\nprint('libos' if 'pylibos' in sys.modules else 'no')\n")
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native,sgx/raw", "--repeat", "1"]
    assert main([*argv, "--timeout", "50"]) == 1
    captured = capsys.readouterr()
    assert "ERROR: aware under sgx/raw: result 'libos' differs from native's 'no'" in captured.err
    assert "MISMATCH" in captured.out


@pytest.mark.parametrize(
    ("under_libos", "timeout", "message"),
    [
        (
            "import threading; threading.Event().wait()",
            "2",
            "did not finish within 2 s and was killed (a hang, or raise --timeout)",
        ),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
            "50",
            "was killed by signal SIGSEGV",
        ),
        ("sys.exit(3)", "50", "exited with status 3"),
    ],
)
def test_a_run_that_fails_only_under_the_libos_is_named_and_reaped(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    under_libos: str,
    timeout: str,
    message: str,
) -> None:
    pid_file = tmp_path / "pid"
    _write(
        tmp_path,
        "picky",
        f"""
        import os, sys
        if "pylibos" in sys.modules:
            with open({str(pid_file)!r}, "w") as f:
                f.write(str(os.getpid()))
            {under_libos}
        print("picky done")
        """,
    )
    js = tmp_path / "run.json"
    argv = ["workloads", "--dir", str(tmp_path), "--configs", "native,sgx/raw", "--repeat", "2"]
    assert main([*argv, "--timeout", timeout, "--json", str(js)]) == 1
    err = capsys.readouterr().err
    assert f"ERROR: picky under sgx/raw: {message}" in err
    assert _gone(int(pid_file.read_text()))
    native, raw = json.loads(js.read_text())["results"]
    assert native["result_ok"] is True and native["runs"] == 2
    assert raw["result_ok"] is False and raw["runs"] == 0
