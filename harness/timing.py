"""Latency summaries in one shape, and the per-call timing helpers every family uses.

A latency summary is one dict, whatever was timed (a query through a retriever, a reranked
query, an LLM prefill or decode)::

    {"n": 100, "unit": "ms", "p50": ..., "p95": ..., "p99": ..., "mean": ..., "std": ...,
     "min": ..., "max": ...}

Percentiles use numpy's default linear interpolation between order statistics
(``numpy.percentile(..., method="linear")``, i.e. Hyndman & Fan type 7, also Excel's
PERCENTILE.INC); ``std`` is the sample standard deviation (ddof=1; 0.0 for a single duration).

Results stored before this shape existed carry the IR shape ``p50_ms``, ``p95_ms``, ... (no
``unit``, no ``std``); :func:`normalize_latency` maps them (and any summary) to the shape above, so
readers handle one shape.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

SUMMARY_KEYS = ("n", "unit", "p50", "p95", "p99", "mean", "std", "min", "max")
STAT_KEYS = SUMMARY_KEYS[2:]
# The old IR summary (harness.ir.latency.latency_stats before the one shape): key -> new key.
LEGACY_MS_KEYS = {f"{k}_ms": k for k in ("p50", "p95", "p99", "mean", "std", "min", "max")}


LatencySummary = dict[str, Any]  # the keys of SUMMARY_KEYS


def latency_summary(durations: Sequence[float] | np.ndarray, unit: str = "ms") -> LatencySummary:
    """Summary of per-call durations that are given in ``unit`` (the summary is in that unit too)."""
    values = np.asarray(durations, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a latency summary needs at least one duration")
    if values.ndim != 1:
        raise ValueError("a latency summary needs a flat list of durations")
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("durations must be finite and non-negative")
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="linear")
    return dict(
        n=int(values.size),
        unit=unit,
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        min=float(values.min()),
        max=float(values.max()),
    )


def normalize_latency(d: Mapping[str, Any] | None, unit: str = "ms") -> dict[str, Any] | None:
    """A stored latency dict in the one shape: old IR keys (``p50_ms``...) renamed with
    ``unit="ms"``; a summary without ``unit`` gets ``unit`` (the unit its producer used: ms for
    every summary the harness stored). Other keys (device, threads, batch_size, ...) are kept in
    place; nothing is invented (an old summary without ``std`` stays without it). Not a dict:
    returned unchanged."""
    if not isinstance(d, Mapping):
        return d  # type: ignore[return-value]
    out: dict[str, Any] = {}
    legacy = any(k in d for k in LEGACY_MS_KEYS)
    for k, v in d.items():
        key = LEGACY_MS_KEYS.get(k, k)
        if key in out and k != key:
            continue  # both p50 and p50_ms present: the new key wins
        out[key] = v
    if legacy:
        out["unit"] = "ms"
    elif "unit" not in out and any(k in out for k in STAT_KEYS):
        out["unit"] = unit
    return out


# --------------------------------------------------------------------------------- per-call timing


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
