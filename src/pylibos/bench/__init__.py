"""The seed's micro-benchmark: measuring, saving and rendering runs.

The names below are loaded on first use (PEP 562): a measuring process
(``python -m pylibos.bench._worker``) imports this package but needs none of the
statistics, rendering or plotting, and ``compare`` starts one such process per
configuration and live count, so each skips numpy and the rest at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._schema import FORMAT_VERSION as FORMAT_VERSION
    from .._schema import RunData as RunData
    from ._configs import DEFAULT_COMPARE as DEFAULT_COMPARE
    from ._configs import Config as Config
    from ._configs import parse_config as parse_config
    from ._configs import parse_config_list as parse_config_list
    from ._configs import valid_names as valid_names
    from ._machine import RunError as RunError
    from ._measure import Run as Run
    from ._measure import Settings as Settings
    from ._measure import run as run
    from ._measure import validate as validate
    from ._plot import plot as plot
    from ._render import analyse as analyse
    from ._render import markdown as markdown
    from ._render import targets as targets
    from ._results import ResultsError as ResultsError
    from ._results import load as load
    from ._results import save as save

# name -> the module (relative to this package) that defines it
_WHERE = {
    "FORMAT_VERSION": ".._schema",
    "RunData": ".._schema",
    "DEFAULT_COMPARE": "._configs",
    "Config": "._configs",
    "parse_config": "._configs",
    "parse_config_list": "._configs",
    "valid_names": "._configs",
    "RunError": "._machine",
    "Run": "._measure",
    "Settings": "._measure",
    "run": "._measure",
    "validate": "._measure",
    "plot": "._plot",
    "analyse": "._render",
    "markdown": "._render",
    "targets": "._render",
    "ResultsError": "._results",
    "load": "._results",
    "save": "._results",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
