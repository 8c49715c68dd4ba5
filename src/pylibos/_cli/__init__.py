"""The ``pylibos`` command: one ``cmd_<name>`` function per subcommand.

Each subcommand imports what it needs when it runs: ``pylibos run`` (every workload's
process starts with it) then loads neither the benchmark, numpy, rich nor matplotlib.
"""

from ._main import main as main
