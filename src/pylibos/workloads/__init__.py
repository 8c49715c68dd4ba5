"""Real programs natively and under ``pylibos run``: measuring, checking, rendering."""

from __future__ import annotations

from .._schema import WORKLOADS_FORMAT_VERSION as WORKLOADS_FORMAT_VERSION
from ._measure import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from ._measure import Run as Run
from ._measure import Settings as Settings
from ._measure import default_dir as default_dir
from ._measure import discover as discover
from ._measure import run as run
from ._measure import validate as validate
from ._render import LEGEND as LEGEND
from ._render import describe as describe
from ._render import markdown as markdown
from ._render import plot as plot
from ._render import table_rows as table_rows
from ._render import target_rows as target_rows
from ._results import load_if_workloads as load_if_workloads
