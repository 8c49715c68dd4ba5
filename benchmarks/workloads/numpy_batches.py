"""numpy batches: preprocessing in a thread pool made anew for every batch.

The pattern reported for training loops: each batch of generated samples is cut into
chunks, and a fresh ``ThreadPoolExecutor`` normalises, clips, projects and squashes the
chunks in parallel (numpy releases the GIL in its kernels), then goes away.  The result
line is a digest of every preprocessed batch, rounded to 9 decimals so that it names the
values, not the last bit of a BLAS kernel's rounding.

    python numpy_batches.py [--size S] [--workers N]
"""

from __future__ import annotations

import argparse
import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

BATCHES = 1_000  # at --size 1
ROWS, COLS, OUT = 768, 32, 16
CHUNKS = 8

Array = npt.NDArray[np.float64]


def preprocess(chunk: Array, weights: Array) -> Array:
    centred = chunk - chunk.mean(axis=0)
    scaled = centred / (chunk.std(axis=0) + 1e-9)
    clipped = np.clip(scaled, -3.0, 3.0)
    projected: Array = np.tanh(clipped @ weights)
    return projected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="work relative to the default")
    parser.add_argument("--workers", type=int, default=4, help="threads in each batch's pool")
    args = parser.parse_args()
    if args.size <= 0 or args.workers < 1:
        parser.error("--size must be > 0 and --workers >= 1")
    batches = max(1, round(BATCHES * args.size))
    weights = np.random.default_rng(1).standard_normal((COLS, OUT)) / np.sqrt(COLS)
    digest = hashlib.sha256()
    total = 0.0
    for b in range(batches):
        rng = np.random.default_rng([7, b])
        batch = rng.standard_normal((ROWS, COLS)) * 3.0 + rng.uniform(-1, 1, COLS)
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            parts = list(pool.map(preprocess, np.array_split(batch, CHUNKS), [weights] * CHUNKS))
        result = np.round(np.concatenate(parts), 9)
        digest.update(result.tobytes())
        total += float(result.sum())
    print(f"numpy_batches batches={batches} sum={total:.6f} digest={digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
