"""Per-query latency: timing one query at a time after a warm-up, and summary statistics.

Percentiles use numpy's default linear interpolation between order statistics (``method="linear"``,
i.e. Hyndman & Fan type 7, the definition of ``numpy.percentile`` and of Excel's PERCENTILE.INC).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


def latency_stats(durations_s: Sequence[float]) -> dict[str, float | int]:
    """p50/p95/p99/mean/min/max in milliseconds of per-call durations given in seconds."""
    if len(durations_s) == 0:
        raise ValueError("latency_stats needs at least one duration")
    ms = np.asarray(durations_s, dtype=np.float64) * 1000.0
    if np.any(ms < 0) or not np.all(np.isfinite(ms)):
        raise ValueError("durations must be finite and non-negative")
    p50, p95, p99 = np.percentile(ms, [50, 95, 99], method="linear")
    return {
        "n": int(ms.size),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def time_each(fn: Callable[[Any], Any], inputs: Sequence[Any], warmup: int = 3) -> list[float]:
    """Call ``fn`` on each input alone and return each call's wall time (s).

    The first ``warmup`` inputs are also run once, untimed, beforehand (caches, lazy loading, JIT),
    so every input is timed.
    """
    for x in inputs[: max(0, warmup)]:
        fn(x)
    out = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    return out


@contextlib.contextmanager
def single_thread() -> Iterator[int]:
    """Run the body with one intra-op thread in torch (when imported) and in BLAS; yields 1.

    Engines with their own thread setting (PISA, bm25s) are configured by their adapters, which run
    single-threaded by default.
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=1))
        except ImportError:
            pass
        try:
            if torch is not None:
                torch.set_num_threads(1)
            yield 1
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)
