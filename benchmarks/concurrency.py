"""Measurement 4: cache hits per second from 1 and from 8 threads.

All threads hit the same key of one memory region, each call in a fresh
session, for a fixed wall-clock window started together behind a barrier.
Throughput is total hits over the window; the reported figure is the
median of several rounds. With the GIL, 8 threads show how much the
library's locks and the interpreter serialize, not a parallel speed-up.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any

from caching_query import FromCache

from .environment import MEMORY_REGION, Bench, legacy_all

THREADS = (1, 8)
ROWS = 1


def _round(bench: Bench, threads: int, seconds: float) -> float:
    """Hits per second over one window of ``seconds``."""
    option = FromCache(MEMORY_REGION, "bench.concurrency")
    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    ends = [0.0] * threads
    errors: list[BaseException] = []
    deadline = [0.0]

    def worker(index: int) -> None:
        barrier.wait()
        done = 0
        try:
            while time.perf_counter() < deadline[0]:
                with bench.cached() as session:
                    legacy_all(session, ROWS, option)
                done += 1
        except BaseException as error:  # reported after the round, never lost
            errors.append(error)
        counts[index] = done
        ends[index] = time.perf_counter()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for thread in pool:
        thread.join()
    if errors:
        raise RuntimeError(f"a worker thread failed: {errors[0]!r}") from errors[0]
    return sum(counts) / (max(ends) - start)


def run(bench: Bench) -> list[dict[str, Any]]:
    """Median hits/s for each thread count, and its ratio to one thread."""
    rounds, seconds = (3, 0.2) if bench.quick else (7, 0.6)
    with bench.cached() as session:
        legacy_all(session, ROWS, FromCache(MEMORY_REGION, "bench.concurrency"))  # store it
    records: list[dict[str, Any]] = []
    for threads in THREADS:
        _round(bench, threads, seconds / 4)  # warm-up
        per_round = [_round(bench, threads, seconds) for _ in range(rounds)]
        records.append(
            {
                "threads": threads,
                "rows": ROWS,
                "hits_per_second": round(statistics.median(per_round), 1),
                "rounds": rounds,
                "round_seconds": seconds,
            }
        )
        print(
            f"  {threads} thread(s): {records[-1]['hits_per_second']:.0f} hits/s", file=sys.stderr
        )
    base = records[0]["hits_per_second"]
    for record in records:
        record["ratio_to_1_thread"] = round(record["hits_per_second"] / base, 4)
    return records
