"""How ``pylibos run`` runs the program as ``python`` does (``_run.py`` sets it up): a
script, compiled file, standard input, module, directory or zip file in a fresh
``__main__``; its exit status as the interpreter takes it; and an exception escaping it
handed to the hook in place with the traceback ``python`` would show."""

from __future__ import annotations

import builtins
import contextlib
import marshal
import os
import runpy
import struct
import sys
import types
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run_stats import RunState

# The runner's modules: their frames are cut off a traceback the program's hook is given.
_RUNNER_MODULES = frozenset({"pylibos._cli._run", __name__})


def _absolute(path: str) -> str:
    """``path`` joined to the current directory if relative, as python joins a script's
    path (not normalised); an absolute path needs no current directory."""
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


MISSING = object()
"""What ``sys.excepthook`` was when the program had deleted it."""


class _ReportOnce:
    """Put in ``sys.excepthook`` only while an exception that escaped the program goes
    up through the runner's frames to the interpreter: it puts the hook that was there
    back, then hands it the exception with the traceback trimmed to what ``python``
    shows.  The interpreter does the rest (a hook that fails, ``sys.last_*``, status 1,
    death by SIGINT after a KeyboardInterrupt) as it does natively."""

    def __init__(
        self, state: RunState, inner: Any, exc: BaseException, tb: TracebackType | None
    ) -> None:
        self.state, self.inner, self.exc, self.tb = state, inner, exc, tb

    def __call__(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if getattr(sys, "excepthook", None) is self:
            if self.inner is MISSING:
                del sys.excepthook
            else:
                sys.excepthook = self.inner
        if exc is not self.exc:
            # Another exception (a Ctrl-C landed on the way up): reported as it comes.
            self.state.exit_code = -2 if isinstance(exc, KeyboardInterrupt) else 1  # (SIGINT)
            self._hand_on(exc_type, exc, tb)
            return
        exc.__traceback__ = self.tb  # the interpreter prints the exception's own
        sys.last_traceback = self.tb  # (the interpreter set it to the untrimmed one)
        if self.inner is MISSING:  # the program deleted sys.excepthook
            if sys.stderr is not None:
                sys.stderr.write("sys.excepthook is missing\n")
                sys.__excepthook__(exc_type, exc, self.tb)
            return
        try:
            self.inner(exc_type, exc, self.tb)
        except SystemExit as stop:  # the program's hook ends the process its own way
            self.state.exit_code = _exit_status(stop.code)
            raise
        except BaseException as failure:
            # A hook that fails is reported as the interpreter reports it, without
            # this frame (raising out of it would add it again).
            tb = failure.__traceback__
            if tb is not None and tb.tb_frame is sys._getframe():
                tb = tb.tb_next
            failure.__traceback__ = tb  # the one the interpreter prints
            with contextlib.suppress(Exception):
                if sys.stdout is not None:
                    sys.stdout.flush()
            if sys.stderr is not None:
                sys.stderr.write("Error in sys.excepthook:\n")
                sys.__excepthook__(type(failure), failure, tb)
                sys.stderr.write("\nOriginal exception was:\n")
                exc.__traceback__ = self.tb  # (a hook that raised it grew it)
                sys.__excepthook__(exc_type, exc, self.tb)

    def _hand_on(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if self.inner is MISSING:
            if sys.stderr is not None:
                sys.stderr.write("sys.excepthook is missing\n")
                sys.__excepthook__(exc_type, exc, tb)
        else:
            self.inner(exc_type, exc, tb)


def _program_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the program's first frame on, after the runner's frames: what
    ``python`` shows (with the ``runpy`` ones a module or a directory runs under)."""
    entry, last_runner = tb, None
    while entry is not None:
        if entry.tb_frame.f_globals.get("__name__") in _RUNNER_MODULES:
            last_runner = entry
        entry = entry.tb_next
    if last_runner is None:
        return tb  # not raised through the runner: keep everything
    # The runpy frames a module or a directory runs under stay, as python shows them.
    first = last_runner.tb_next
    _drop_sigint_handler_frames(first)
    return first


def _drop_sigint_handler_frames(tb: TracebackType | None) -> None:
    """Cut the PAL's SIGINT handler (a Python function, unlike the interpreter's
    default one) off the end of a KeyboardInterrupt's traceback, where the program's
    own frame is the last under ``python``."""
    entry, keep = tb, None
    while entry is not None:
        if entry.tb_frame.f_globals.get("__name__") != _SIGINT_HANDLER_MODULE:
            keep = entry  # the last frame that is not the handler's
        entry = entry.tb_next
    if keep is not None:
        keep.tb_next = None


_SIGINT_HANDLER_MODULE = "pylibos.pal._interrupts"


def _has_main(path: str) -> bool:
    """A file is its own main; a directory or zip file needs a ``__main__`` inside."""
    names = ("__main__.py", "__main__.pyc")
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(path, n)) for n in names)
    if os.path.isfile(path) and _is_zip(path):  # a pipe's data is the program's
        import zipfile

        with zipfile.ZipFile(path) as z:
            return any(n in z.namelist() for n in names)
    return True


def _fresh_main() -> types.ModuleType:
    """A ``__main__`` module with the names the interpreter starts its own with, put in
    ``sys.modules`` (atexit handlers and daemon threads see it there)."""
    main = types.ModuleType("__main__")
    if sys.version_info < (3, 14):
        main.__annotations__ = {}  # set by the interpreter's start-up before 3.14
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


def _exec_script(path: str) -> None:
    """Run a file as ``python path`` does: ``__file__`` and code filenames the path
    joined to the current directory if relative (not normalised), ``sys.argv[0]`` as
    given; a compiled file (``.pyc``, or starting with the interpreter's magic number)
    run as compiled code, a damaged one reported in python's words."""
    import importlib.machinery
    import importlib.util
    import io

    full = _absolute(path)
    with io.open_code(full) as f:
        data = f.read()
    main = _fresh_main()
    main.__file__ = full
    main.__cached__ = None  # type: ignore[attr-defined]
    magic = importlib.util.MAGIC_NUMBER
    if path.endswith(".pyc") or data[:2] == magic[:2]:
        main.__loader__ = importlib.machinery.SourcelessFileLoader("__main__", full)
        code = _compiled_code(data, magic)
    else:
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full)
        code = compile(data, full, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def _compiled_code(data: bytes, magic: bytes) -> types.CodeType:
    """The code object of a ``.pyc`` file's bytes, or python's exceptions for a damaged
    one: the header (the magic number, the flags, the source's stamp: four 4-byte words)
    cut short is EOFError, another magic number or anything but a code object after the
    header is RuntimeError."""
    if len(data) >= 4 and data[:4] != magic:
        raise RuntimeError("Bad magic number in .pyc file")
    if len(data) < 16:
        raise EOFError("EOF read where not expected")
    try:
        code = marshal.loads(data[16:])
    except Exception:
        code = None
    if not isinstance(code, types.CodeType):
        raise RuntimeError("Bad code object in .pyc file")
    return code


def _exec_stdin() -> None:
    """Run the program read from standard input, as ``python -`` does when it is not a
    terminal: all of it read first (from the descriptor, leaving ``sys.stdin``'s buffer
    untouched), compiled as ``<stdin>``, which is also ``__file__``."""
    import importlib.machinery

    chunks = []
    # Started with descriptor 0 closed (the interpreter then made no ``sys.stdin``), the
    # program is empty, as under python: the number may be a PAL descriptor by now.
    while sys.__stdin__ is not None and (chunk := os.read(0, 1 << 16)):
        chunks.append(chunk)
    main = _fresh_main()
    main.__file__ = "<stdin>"
    main.__cached__ = None  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.BuiltinImporter
    exec(compile(b"".join(chunks), "<stdin>", "exec", dont_inherit=True), main.__dict__)


def _exec_module(name: str, alter_argv: bool = True) -> None:
    """Run a module as ``python -m name`` does (and a directory or zip file as
    ``__main__`` from ``sys.path[0]``): through ``runpy``'s own entry for ``-m``, in a
    fresh ``__main__``; its parent packages are imported there, after ``sys.argv`` is
    set and with the LibOS installed, and a module it cannot find is reported in its
    words."""
    _fresh_main()
    runpy._run_module_as_main(name, alter_argv=alter_argv)  # type: ignore[attr-defined]


def _is_zip(path: str) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


_C_LONG = 1 << (8 * struct.calcsize("l") - 1)


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for ``sys.exit(code)``: an integer is taken
    as a C ``long`` (one past its range exits as -1 would), of which the system keeps
    the low byte; ``None`` is 0 and anything else, printed, is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return (code if -_C_LONG <= code < _C_LONG else -1) & 0xFF
    return 1
