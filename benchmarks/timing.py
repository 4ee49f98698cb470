"""Medians of many timed calls, with a warm-up and a per-figure time budget.

A median, not a mean: one garbage collection or scheduler hiccup must not
move the figure. The repetition count adapts to the call's cost (a fixed
time budget, clamped to a minimum and maximum count), so a 10 µs key
derivation and a 20 ms thousand-row query both get enough samples without
the run taking minutes; the count used is reported with every median.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """How many times to call: warm-up calls, then a budget in seconds."""

    warmup: int
    budget: float
    min_reps: int
    max_reps: int


FULL = Plan(warmup=10, budget=1.0, min_reps=30, max_reps=20_000)
QUICK = Plan(warmup=2, budget=0.03, min_reps=5, max_reps=200)


@dataclass(frozen=True)
class Stats:
    """One figure: the median of ``count`` calls, in microseconds."""

    median_us: float
    count: int
    min_us: float
    p90_us: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median_us": round(self.median_us, 3),
            "count": self.count,
            "min_us": round(self.min_us, 3),
            "p90_us": round(self.p90_us, 3),
        }


def _nothing() -> None:
    return None


def _ignore(_: Any) -> None:
    return None


def _time_once(
    call: Callable[[Any], object], setup: Callable[[], Any], teardown: Callable[[Any], object]
) -> float:
    # Only the call is timed: opening and closing the fresh session (or
    # building the statement) of each repetition happens outside.
    arg = setup()
    start = time.perf_counter()
    call(arg)
    elapsed = time.perf_counter() - start
    teardown(arg)
    return elapsed


def measure(
    call: Callable[[Any], object],
    plan: Plan,
    setup: Callable[[], Any] = _nothing,
    teardown: Callable[[Any], object] = _ignore,
) -> Stats:
    """Time ``call(setup())`` repeatedly and return the median.

    The warm-up fills SQLAlchemy's compiled-statement cache, the cache
    entry being measured and the connection pool, and estimates the cost
    of one call to size the run.
    """
    warm = [_time_once(call, setup, teardown) for _ in range(max(plan.warmup, 1))]
    estimate = max(statistics.median(warm), 1e-7)
    reps = int(min(max(plan.budget / estimate, plan.min_reps), plan.max_reps))
    # Start each figure with no garbage left over from the previous one;
    # the collector stays on, as in an application.
    gc.collect()
    samples = sorted(_time_once(call, setup, teardown) for _ in range(reps))
    return Stats(
        median_us=statistics.median(samples) * 1e6,
        count=reps,
        min_us=samples[0] * 1e6,
        p90_us=samples[min(int(reps * 0.9), reps - 1)] * 1e6,
    )


def _stats(samples: list[float]) -> Stats:
    samples = sorted(samples)
    reps = len(samples)
    return Stats(
        median_us=statistics.median(samples) * 1e6,
        count=reps,
        min_us=samples[0] * 1e6,
        p90_us=samples[min(int(reps * 0.9), reps - 1)] * 1e6,
    )


def _warm_pair(
    first: Callable[[Any], object],
    second: Callable[[Any], object],
    plan: Plan,
    setup: Callable[[], Any],
    teardown: Callable[[Any], object],
) -> int:
    """Warm both calls up; how many times to time each within the budget."""
    for _ in range(max(plan.warmup, 1)):
        _time_once(first, setup, teardown)
        _time_once(second, setup, teardown)
    estimate = max(_time_once(first, setup, teardown) + _time_once(second, setup, teardown), 2e-7)
    return int(min(max(plan.budget / estimate, plan.min_reps), plan.max_reps))


def measure_pair(
    first: Callable[[Any], object],
    second: Callable[[Any], object],
    plan: Plan,
    setup: Callable[[], Any] = _nothing,
    teardown: Callable[[Any], object] = _ignore,
) -> tuple[Stats, Stats]:
    """``measure`` two calls alternately, so that drift in the machine's speed
    (frequent on shared hardware) moves both figures alike and their ratio
    stays meaningful."""
    reps = _warm_pair(first, second, plan, setup, teardown)
    gc.collect()
    a: list[float] = []
    b: list[float] = []
    for _ in range(reps):
        a.append(_time_once(first, setup, teardown))
        b.append(_time_once(second, setup, teardown))
    return _stats(a), _stats(b)


BLOCKS = 6


def measure_blocks(
    first: Callable[[Any], object],
    second: Callable[[Any], object],
    plan: Plan,
    setup: Callable[[], Any] = _nothing,
    teardown: Callable[[Any], object] = _ignore,
) -> tuple[Stats, Stats]:
    """``measure`` two different calls in alternating blocks.

    Each block repeats one call, so each figure is taken in its own steady
    state (alternating call by call lets one leave the other its garbage,
    its cold caches and its connection pool's work: a hit timed right
    after a PostgreSQL query measured twice its cost); the blocks
    alternate, so that drift in the machine's speed moves both alike.
    """
    per_block = max(_warm_pair(first, second, plan, setup, teardown) // BLOCKS, 1)
    a: list[float] = []
    b: list[float] = []
    for _ in range(BLOCKS):
        for call, samples in ((first, a), (second, b)):
            gc.collect()
            _time_once(call, setup, teardown)  # the block's own warm-up
            samples.extend(_time_once(call, setup, teardown) for _ in range(per_block))
    return _stats(a), _stats(b)
