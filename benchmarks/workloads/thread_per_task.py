"""Thread per task: thousands of short-lived threads, one per task (the Go-like pattern).

Every task gets its own ``threading.Thread``, which hashes a short chain and exits; at most
``--width`` tasks run at once (a batch is started, then joined).  The result line is a
digest of every task's output, in task order.

    python thread_per_task.py [--size S] [--width N]
"""

from __future__ import annotations

import argparse
import hashlib
import threading

TASKS = 8_000  # at --size 1
CHAIN = 400  # hashes per task: a few times the cost of a native thread start and join


def task(index: int, out: list[bytes]) -> None:
    h = hashlib.sha256(index.to_bytes(8, "little")).digest()
    for _ in range(CHAIN):
        h = hashlib.sha256(h).digest()
    out[index] = h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="work relative to the default")
    parser.add_argument("--width", type=int, default=16, help="tasks running at once")
    args = parser.parse_args()
    if args.size <= 0 or args.width < 1:
        parser.error("--size must be > 0 and --width >= 1")
    tasks = max(1, round(TASKS * args.size))
    out = [b""] * tasks
    for start in range(0, tasks, args.width):
        batch = [
            threading.Thread(target=task, args=(i, out))
            for i in range(start, min(tasks, start + args.width))
        ]
        for t in batch:
            t.start()
        for t in batch:
            t.join()
    digest = hashlib.sha256(b"".join(out)).hexdigest()[:16]
    print(f"thread_per_task tasks={tasks} digest={digest}")


if __name__ == "__main__":
    main()
