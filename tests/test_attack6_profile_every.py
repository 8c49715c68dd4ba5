"""Hostile review of the sampling interval as given: ``pylibos run --profile-every N``
and ``LibOS(..., profile_every=N)``.  An interval of any size must work, and cost no
memory in proportion to itself."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

from pylibos.libos import Profile
from pylibos.pal import open_host

RUN = [sys.executable, "-m", "pylibos", "run"]
BOUND = 30.0


def test_a_huge_profile_every_samples_the_first_start_and_runs_as_python_does(
    tmp_path: Path,
) -> None:
    """``--profile-every 99999999999999999999`` is an int of at least 1: accepted, it
    samples the first start only, and the program runs as under python.  (Before: the
    LibOS built its sampling cycle as a tuple of ``N`` booleans, and the run died with an
    ``OverflowError`` traceback, status 1.)"""
    (tmp_path / "x.py").write_text(
        "import threading\nt = threading.Thread(target=print, args=('ran',))\nt.start(); t.join()\n"
    )
    done = subprocess.run(
        [*RUN, "--stats", "--profile-every", "99999999999999999999", "--", "x.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode == 0 and done.stdout == "ran\n", (done.returncode, done.stdout)
    assert "timed 1 of 1" in done.stderr, done.stderr


def test_the_sampling_costs_no_memory_in_proportion_to_its_interval() -> None:
    """A profile sampling one clone in a million: its sampling state must stay small
    (it is one counter's worth of information).  Fails: ``_new_sampling`` cycles over a
    tuple of ``every`` booleans, 8 bytes a clone of the interval (8 MB here; 800 MB for
    ``--profile-every 100000000``, which ``pylibos run`` accepts), and again at each
    restart of the sampling (``enabled``)."""
    host = open_host("direct")
    try:
        tracemalloc.start()
        try:
            profile = Profile(host, every=1_000_000)
            profile.enabled = False
            profile.enabled = True
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert next(profile.sampling) and not next(profile.sampling)
        assert peak < 1_000_000, f"{peak:,} bytes to sample one clone in a million"
    finally:
        host.shutdown()
