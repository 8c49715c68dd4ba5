import os
import sys

# ``python -m pylibos`` put the current directory first on ``sys.path``: pylibos's own
# imports must not find a program's modules there (an ``argparse.py`` beside a program
# run with ``pylibos run``); ``pylibos run`` puts the program's entry in place itself.
if sys.path and not getattr(sys.flags, "safe_path", False):
    try:
        _here: str | None = os.getcwd()
    except OSError:
        _here = None
    if sys.path[0] in ("", _here):
        del sys.path[0]

from ._cli import main

sys.exit(main())
