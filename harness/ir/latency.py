"""Per-query latency for IR tasks: a thin layer over :mod:`harness.timing`.

``time_each`` (time one query at a time after a warm-up) and ``single_thread`` live in
:mod:`harness.timing` and are re-exported here; :func:`latency_stats` is the one latency summary
shape (:func:`harness.timing.latency_summary`) of durations measured in seconds, reported in ms.
Percentiles: numpy's linear interpolation (``method="linear"``, Hyndman & Fan type 7).
:func:`time_each_cpu` also records each call's process CPU time: on a shared machine a query's
wall time includes waiting for a core, its CPU time does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.timing import LatencySummary, latency_summary, single_thread, time_each

__all__ = ["latency_stats", "single_thread", "time_each", "time_each_cpu"]


def latency_stats(durations_s: Sequence[float]) -> LatencySummary:
    """The latency summary (n, unit "ms", p50/p95/p99, mean, std, min, max) of per-call durations
    given in seconds. Results stored before the one shape used ``p50_ms``...; see
    :func:`harness.timing.normalize_latency`."""
    return latency_summary(np.asarray(durations_s, dtype=np.float64) * 1000.0, unit="ms")


def time_each_cpu(fn: Callable[[Any], Any], inputs: Sequence[Any], warmup: int = 3) -> tuple[list[float], list[float]]:
    """:func:`harness.timing.time_each` (warm-up, then each input alone), returning each call's wall
    time and its process CPU time (``time.process_time``: every thread of this process), in s."""
    for x in inputs[: max(0, warmup)]:
        fn(x)
    wall, cpu = [], []
    for x in inputs:
        c0, t0 = time.process_time(), time.perf_counter()
        fn(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu
