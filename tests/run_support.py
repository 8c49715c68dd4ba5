"""Running a program under ``python`` and under ``pylibos run`` side by side: the
command lines, the bound on each run, and processes that end with their test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

RUN = [sys.executable, "-m", "pylibos", "run"]
BOUND = 30.0


def at_once(
    commands: list[list[str]], cwd: Path, stdin: str | bytes | None, text: bool
) -> list[subprocess.CompletedProcess[Any]]:
    """Run ``commands`` at the same time (each is a process of its own, so neither sees
    the other), each given ``stdin`` (None: this process's); what each did, in order.
    A process still running when its test gives up is killed and waited for."""
    procs = [
        subprocess.Popen(
            args,
            cwd=cwd,
            stdin=None if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=text,
        )
        for args in commands
    ]
    done: list[subprocess.CompletedProcess[Any]] = []
    try:
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(stdin, timeout=BOUND)
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    finally:
        for proc in procs[len(done) :]:
            proc.kill()
            proc.communicate()
    return done


def side_by_side(
    commands: list[list[str]], cwd: Path, stdin: str | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """``at_once`` with text streams."""
    return at_once(commands, cwd, stdin, text=True)


def python(
    args: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One command, run as ``side_by_side`` runs each."""
    (done,) = side_by_side([args], cwd, stdin)
    return done


def both(
    folder: Path, program: list[str], options: tuple[str, ...] = (), stdin: str | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``python program`` and ``pylibos run options -- program``, at the same time."""
    native, under = side_by_side(
        [[sys.executable, *program], [*RUN, *options, "--", *program]], folder, stdin
    )
    return native, under


def native_and_under(
    folder: Path, program: list[str], options: tuple[str, ...] = (), stdin: str | None = None
) -> list[tuple[int, str, str]]:
    """``both``'s two runs, each as (status, stdout, stderr)."""
    return [(d.returncode, d.stdout, d.stderr) for d in both(folder, program, options, stdin)]
