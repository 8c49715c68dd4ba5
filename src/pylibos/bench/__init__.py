"""The seed's micro-benchmark: measuring, saving and rendering runs."""

from __future__ import annotations

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
