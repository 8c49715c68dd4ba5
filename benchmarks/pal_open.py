"""What one pollable-event channel costs to open and close, per PAL channel kind.

For each case the script opens a connected pair (``create_pipe`` or one ``eventfd:``),
closes it again, and times the two together with ``time.perf_counter_ns``.  It reports the
median and 95th percentile in microseconds, and the host calls one pair makes, by kind,
averaged from the ``host.calls`` deltas.  Counts do not depend on the machine's speed,
with one exception: how many ``recv`` calls a TLS handshake takes depends on whether a
flight of handshake messages has all arrived when the reader looks.

Nothing runs inside an enclave: on ``sgx`` the TLS handshake and the helper thread are
real, the enclave transitions are only counted.  The sgx TLS pipe is measured once per TLS
library this interpreter has (``sgx/pipe (mbedtls)``, ``sgx/pipe (openssl)``), so where both
are installed (Python 3.13 with python-mbedtls built from source) the two handshakes are
compared in one run.

Usage: python benchmarks/pal_open.py [--repeat N] [--warmup N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from pylibos import pal

Opener = Callable[[pal.Host], Sequence[pal.Handle]]


@dataclass(frozen=True)
class Case:
    label: str
    host_kind: str
    open_pair: Opener
    tls: str | None = None


@dataclass(frozen=True)
class Result:
    case: Case
    samples_us: list[float]
    calls_per_pair: dict[str, float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def p95_us(self) -> float:
        if len(self.samples_us) < 2:
            return self.samples_us[0]
        return statistics.quantiles(self.samples_us, n=20, method="inclusive")[18]

    @property
    def total_calls(self) -> float:
        return sum(self.calls_per_pair.values())


CASES = (
    *(
        Case("pipe", "sgx", lambda host: host.create_pipe(), tls)
        for tls in pal.available_tls_backends()
    ),
    Case("pipe", "direct", lambda host: host.create_pipe()),
    Case("pipe.raw", "sgx", lambda host: host.create_pipe(raw=True)),
    Case("eventfd", "sgx", lambda host: [host.stream_open("eventfd:")]),
)


def measure(case: Case, repeat: int, warmup: int) -> Result:
    """Open and close ``repeat`` pairs on a fresh host, after ``warmup`` untimed ones."""
    tls = {} if case.tls is None else {"tls": case.tls}
    with pal.open_host(case.host_kind, None, **tls) as host:
        for _ in range(warmup):
            for handle in case.open_pair(host):
                host.close(handle)
        before = host.calls.copy()
        samples: list[float] = []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            for handle in case.open_pair(host):
                host.close(handle)
            samples.append((time.perf_counter_ns() - start) / 1000)
        delta = Counter(host.calls)
        delta.subtract(before)
    calls = {kind: n / repeat for kind, n in sorted(delta.items()) if n}
    return Result(case, samples, calls)


def _count(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def _case_name(result: Result) -> str:
    tls = f" ({result.case.tls})" if result.case.tls else ""
    return f"{result.case.host_kind}/{result.case.label}{tls}"


def render(results: Sequence[Result], console: Console, repeat: int) -> None:
    """Two tables: times per case, then host calls per pair by kind (one column a case)."""
    fastest = min(r.median_us for r in results)
    times = Table(title=f"Open + close one connected pair ({repeat} pairs per case)")
    times.add_column("host/channel")
    times.add_column("median µs", justify="right")
    times.add_column("p95 µs", justify="right")
    times.add_column("vs fastest", justify="right")
    times.add_column("host calls", justify="right")
    for r in results:
        times.add_row(
            _case_name(r),
            f"{r.median_us:.1f}",
            f"{r.p95_us:.1f}",
            f"{r.median_us / fastest:.1f}",
            _count(r.total_calls),
        )
    console.print(times)

    calls = Table(
        title="Host calls per pair, by kind",
        caption="from host.calls deltas, averaged; all fixed but recv, which varies with "
        "timing: a handshake flight may be read in one recv or several",
    )
    calls.add_column("call")
    for r in results:
        calls.add_column(_case_name(r), justify="right")
    for kind in sorted({kind for r in results for kind in r.calls_per_pair}):
        calls.add_row(
            kind,
            *(_count(r.calls_per_pair[kind]) if kind in r.calls_per_pair else "-" for r in results),
        )
    console.print(calls)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time opening and closing one pollable-event channel per PAL channel "
        "kind, and count the host calls it makes."
    )
    parser.add_argument(
        "--repeat", type=_positive, default=300, metavar="N", help="pairs timed per case"
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative,
        default=10,
        metavar="N",
        help="untimed pairs opened first, per case",
    )
    args = parser.parse_args()
    try:
        results = [measure(case, args.repeat, args.warmup) for case in CASES]
    except pal.PalError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
    render(results, Console(), args.repeat)


if __name__ == "__main__":
    main()
