"""Per-query latency for IR tasks: a thin layer over :mod:`harness.timing`.

``time_each`` (time one query at a time after a warm-up) and ``single_thread`` live in
:mod:`harness.timing` and are re-exported here; :func:`latency_stats` is the one latency summary
shape (:func:`harness.timing.latency_summary`) of durations measured in seconds, reported in ms.
Percentiles: numpy's linear interpolation (``method="linear"``, Hyndman & Fan type 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.timing import LatencySummary, latency_summary, single_thread, time_each

__all__ = ["latency_stats", "single_thread", "time_each"]


def latency_stats(durations_s: Sequence[float]) -> LatencySummary:
    """The latency summary (n, unit "ms", p50/p95/p99, mean, std, min, max) of per-call durations
    given in seconds. Results stored before the one shape used ``p50_ms``...; see
    :func:`harness.timing.normalize_latency`."""
    return latency_summary(np.asarray(durations_s, dtype=np.float64) * 1000.0, unit="ms")
