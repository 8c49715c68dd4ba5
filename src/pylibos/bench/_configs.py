"""Benchmark configurations: ``native`` and ``PAL/EVENTS[+pool]``."""

from __future__ import annotations

from dataclasses import dataclass

from ..libos import EVENT_KINDS
from ..pal import HOST_KINDS

DEFAULT_COMPARE = ("native", "direct/pipe", "sgx/pipe", "sgx/raw", "sgx/eventfd", "sgx/raw+pool")


@dataclass(frozen=True)
class Config:
    name: str
    pal: str | None  # None for native
    events: str | None
    pool: bool

    @property
    def native(self) -> bool:
        return self.pal is None


def valid_names() -> list[str]:
    names = ["native"]
    for pal in HOST_KINDS:
        for events in EVENT_KINDS:
            names += [f"{pal}/{events}", f"{pal}/{events}+pool"]
    return names


def parse_config(name: str) -> Config:
    """``native`` or ``PAL/EVENTS[+pool]``; anything else is a ``ValueError`` listing the
    valid names."""
    text = name.strip()
    if text == "native":
        return Config("native", None, None, False)
    base, plus, suffix = text.partition("+")
    pal, slash, events = base.partition("/")
    if slash and pal in HOST_KINDS and events in EVENT_KINDS and (not plus or suffix == "pool"):
        return Config(text, pal, events, bool(plus))
    raise ValueError(f"unknown configuration {name!r}; valid: {', '.join(valid_names())}")


def parse_config_list(text: str) -> list[Config]:
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise ValueError("no configuration named")
    configs = [parse_config(n) for n in names]
    seen: set[str] = set()
    for c in configs:
        if c.name in seen:
            raise ValueError(f"configuration {c.name!r} named twice")
        seen.add(c.name)
    return configs


START_LIMITS = {"sgx/eventfd": 1.15, "sgx/raw+pool": 1.10}
"""The configurations whose start has a target relative to native's, and its limit."""
RATIOS_IN_ROUNDS = ("clone ÷ sgx/pipe", "create_pollable_event ÷ sgx/pipe")
"""The ratios between two configurations ``compare`` takes round by round (the trimmed
mean of the rounds' quotients): those whose intervals the pairing narrowed on measured
runs.  start ÷ native it did not narrow (``docs/benchmark.md``, "Ratios between
configurations"), so that stays the quotient of two medians."""


def measuring_order(configs: list[Config]) -> list[Config]:
    """The order a round measures ``configs`` in (odd rounds reverse it): native between
    the configurations its start targets divide (``START_LIMITS``), the others before
    them in the order given (sgx/raw beside sgx/pipe in the default list).  A ratio's
    two slices are then a few slices apart, not seconds, so more of the machine's drift
    is shared by them: it cancels in a round's quotient (``RATIOS_IN_ROUNDS``) and, as
    the bootstrap draws the same rounds for both, partly in a quotient of two medians."""
    native = [c for c in configs if c.native]
    partners = [c for c in configs if c.name in START_LIMITS]
    if not native or not partners:
        return list(configs)
    rest = [c for c in configs if not c.native and c.name not in START_LIMITS]
    return [*rest, partners[0], *native, *partners[1:]]
