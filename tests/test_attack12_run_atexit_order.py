"""The order of the exit work under ``pylibos run --stats``: the README says the
statistics come "after the program's non-daemon threads and atexit handlers".  Handlers
of modules pylibos itself imported before the program started (``logging``'s shutdown)
were registered before the runner's ``at_exit``, so they run after it."""

from __future__ import annotations

from pathlib import Path

from run_support import both


def test_the_program_logging_is_flushed_before_the_statistics(tmp_path: Path) -> None:
    # A program logs through a logging.handlers.MemoryHandler (flushed to stderr
    # by logging.shutdown, which logging registers with atexit when first imported).
    # Under python stderr is "last record\n".  Under pylibos run --stats stderr is
    #   pylibos run: sgx/raw, 0 threads created through the LibOS, 17 host calls, ...
    #   host calls by kind: ...
    #   projected SGX cost at 10,000 cycles per host call: ...
    #   last record
    # pylibos imports logging before cmd_run (_cli/_run.py) registers at_exit, so
    # atexit (last registered, first run) runs at_exit first and logging.shutdown, the
    # program's own exit work, after the statistics: the program sees 2 atexit callbacks
    # already registered (atexit._ncallbacks()) where python has 0.
    (tmp_path / "prog.py").write_text(
        "import logging, logging.handlers, sys\n"
        "memory = logging.handlers.MemoryHandler(100, target=logging.StreamHandler(sys.stderr))\n"
        "log = logging.getLogger('prog')\n"
        "log.addHandler(memory)\n"
        "log.warning('last record')\n"
    )
    native, under = both(tmp_path, ["prog.py"], ("--stats",))
    assert (native.returncode, native.stderr) == (0, "last record\n")
    assert under.returncode == 0
    assert under.stderr.startswith("last record\npylibos run:"), under.stderr
