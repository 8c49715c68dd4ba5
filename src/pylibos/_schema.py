"""Every results format pylibos writes, typed and versioned, imported from one place.

Three JSON formats, each with its version constant and history; the names of the types'
fields are the JSON's keys.  Writers build these types and readers check a file against
them before anything else reads it.

- ``pylibos compare --json`` (and ``report`` of it): ``RunData``, key ``version``,
  ``FORMAT_VERSION``; defined, with its history, in ``_compare_schema`` and imported from
  here.
- ``pylibos workloads --json`` (and ``report`` of it): ``WorkloadsRun``, key ``version``,
  ``WORKLOADS_FORMAT_VERSION``, told apart from a compare run by ``kind`` = "workloads".
- ``pylibos run --json`` (read back by ``pylibos workloads`` for every LibOS run):
  ``RunStats``, key ``format_version``, ``RUN_FORMAT_VERSION``, ``kind`` = "pylibos.run".

``pylibos workloads`` format history (``version``):

1. First version.  Top level: ``version``, ``kind`` ("workloads"), ``machine`` (as a
   compare run's), ``settings`` (``workloads``, ``configs``, ``repeat``, ``size``,
   ``timeout_s``, ``ocall_cycles``, ``ghz``), ``interrupted``, ``results``, ``errors``.
   Per workload and configuration (``results[]``): ``workload``, ``config``, ``pal``,
   ``events``, ``pool``, ``runs``, ``wall_s`` (list), ``cpu_s`` (list), ``median_s``,
   ``threads_created`` (median; null natively), ``threads_created_runs``,
   ``host_calls`` (median of totals; null natively), ``host_calls_by_kind``, ``phases``
   (as ``pylibos run``'s JSON gives them, last run; null natively), ``result``,
   ``result_ok``, ``error``.

``pylibos run --json`` format history (``format_version``):

1. ``format_version``, ``kind`` ("pylibos.run"), ``pylibos``, ``python``, ``config``
   (``name``, ``pal``, ``events``, ``pool``), ``argv``, ``exit_code`` (the process's
   status as ``subprocess`` reports it: negative for a signal), ``wall_s``,
   ``threads_created`` (threads started through the LibOS), ``host_calls`` (by kind,
   from boot to exit), ``host_calls_total``, ``phases`` (per phase: ``count``,
   ``mean_ns``, ``median_ns``, ``p95_ns``, ``sum_ns``, ``host_calls``),
   ``proportions`` (``p1``, ``p2``, ``p3``, null where a phase is absent),
   ``ocall_cycles`` and ``projected_host_call_cycles`` (``host_calls_total`` x
   ``ocall_cycles``).
   Later, compatibly: ``profile`` (``every``: one thread start in ``every`` was timed,
   null with the profile off; ``clones_started``, ``clones_sampled``): ``phases`` are
   over the sampled starts, so each phase's ``count`` is ``clones_sampled``; files
   without it timed every start.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, get_type_hints

from ._compare_schema import FORMAT_VERSION as FORMAT_VERSION
from ._compare_schema import READABLE_VERSIONS as READABLE_VERSIONS
from ._compare_schema import TIMED as TIMED
from ._compare_schema import BatchFigures as BatchFigures
from ._compare_schema import Entry as Entry
from ._compare_schema import IntervalJSON as IntervalJSON
from ._compare_schema import LiveScaling as LiveScaling
from ._compare_schema import Machine as Machine
from ._compare_schema import PhaseSummary as PhaseSummary
from ._compare_schema import Projection as Projection
from ._compare_schema import ReplicaJSON as ReplicaJSON
from ._compare_schema import RunData as RunData
from ._compare_schema import SettingsJSON as SettingsJSON
from ._compare_schema import SliceJSON as SliceJSON
from ._compare_schema import Stability as Stability
from ._compare_schema import TargetJSON as TargetJSON
from ._compare_schema import UntilStable as UntilStable

WORKLOADS_FORMAT_VERSION = 1
"""``pylibos workloads``'s format (``report`` renders this one only)."""
RUN_FORMAT_VERSION = 1
"""``pylibos run --json``'s format (``pylibos workloads`` reads this one only)."""


# ``pylibos run --json``


class RunConfig(TypedDict):
    name: str
    pal: str
    events: str
    pool: bool


class PhaseStats(TypedDict):
    """One phase of thread creation over the whole run: its calls and their times in ns."""

    count: int
    mean_ns: float
    median_ns: float
    p95_ns: float
    sum_ns: int
    host_calls: int


class RunProfile(TypedDict):
    """How ``pylibos run``'s phases were sampled: one start in ``every`` (null: off)."""

    every: int | None
    clones_started: int
    clones_sampled: int


class RunStats(TypedDict):
    """``pylibos run``'s statistics at exit, as ``--json`` writes them."""

    format_version: int
    kind: Literal["pylibos.run"]
    pylibos: str
    python: str
    config: RunConfig
    argv: list[str]
    exit_code: int
    wall_s: float
    threads_created: int
    host_calls: dict[str, int]
    host_calls_total: int
    phases: dict[str, PhaseStats]
    proportions: dict[str, float | None]
    ocall_cycles: int
    projected_host_call_cycles: int
    profile: NotRequired[RunProfile]


# ``pylibos workloads --json``


class WorkloadsSettings(TypedDict):
    workloads: list[str]
    configs: list[str]
    repeat: int
    size: float | None
    timeout_s: float
    ocall_cycles: int
    ghz: float


class WorkloadsEntry(TypedDict):
    """One workload under one configuration: every run of it."""

    workload: str
    config: str
    pal: str | None
    events: str | None
    pool: bool
    runs: int
    wall_s: list[float]
    cpu_s: list[float]
    median_s: float | None
    threads_created: float | None
    threads_created_runs: list[int]
    host_calls: float | None
    host_calls_by_kind: dict[str, float]
    phases: dict[str, PhaseStats] | None
    result: str | None
    result_ok: bool
    error: str | None


class WorkloadsRun(TypedDict):
    """A whole workloads run: what ``pylibos workloads --json`` writes."""

    version: int
    kind: Literal["workloads"]
    machine: Machine
    settings: WorkloadsSettings
    interrupted: bool
    results: list[WorkloadsEntry]
    errors: list[str]


def keys(schema: type) -> tuple[frozenset[str], frozenset[str]]:
    """The keys a ``TypedDict`` of these formats must hold, and every key it may hold.

    (``__required_keys__`` cannot be trusted here: with postponed annotations, Python
    before 3.12 counts a ``NotRequired`` key as required.)"""
    hints = get_type_hints(schema, include_extras=True)
    optional = {k for k, t in hints.items() if getattr(t, "__origin__", None) is NotRequired}
    return frozenset(hints) - optional, frozenset(hints)
