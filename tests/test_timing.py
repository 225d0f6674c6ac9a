"""The one latency summary shape (harness.timing) and the mapping of old stored shapes onto it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.timing import SUMMARY_KEYS, latency_summary, normalize_latency, single_thread, time_each


def test_summary_by_hand() -> None:
    # 1..10 ms: linear interpolation at position (n - 1) q: p50 at 4.5 -> 5.5, p95 at 8.55 -> 9.55,
    # p99 at 8.91 -> 9.91
    s = latency_summary([float(i) for i in range(10, 0, -1)])  # order must not matter
    assert tuple(s) == SUMMARY_KEYS == ("n", "unit", "p50", "p95", "p99", "mean", "std", "min", "max")
    assert s["n"] == 10 and s["unit"] == "ms"
    assert s["p50"] == pytest.approx(5.5) and s["p95"] == pytest.approx(9.55) and s["p99"] == pytest.approx(9.91)
    assert s["mean"] == pytest.approx(5.5) and (s["min"], s["max"]) == (1.0, 10.0)
    assert s["std"] == pytest.approx(float(np.sqrt(sum((i - 5.5) ** 2 for i in range(1, 11)) / 9)))
    assert latency_summary([3.0], unit="s") == {"n": 1, "unit": "s", "p50": 3.0, "p95": 3.0, "p99": 3.0,
                                                "mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0}
    for bad in ([], [1.0, -1.0], [float("nan")]):
        with pytest.raises(ValueError):
            latency_summary(bad)


def test_both_families_produce_the_one_shape() -> None:
    from harness.ir.latency import latency_stats
    from harness.llm.latency import summarize

    ir = latency_stats([0.001, 0.002, 0.004])  # seconds
    llm = summarize([1_000_000, 2_000_000, 4_000_000])  # nanoseconds
    assert ir == llm == latency_summary([1.0, 2.0, 4.0])
    assert json.loads(json.dumps(ir)) == dict(ir)  # only the new keys are stored
    assert "p50_ms" not in ir and ir["unit"] == "ms"


def test_normalize_old_ir_shape() -> None:
    old = {"n": 3, "p50_ms": 2.0, "p95_ms": 3.8, "p99_ms": 3.96, "mean_ms": 2.33, "min_ms": 1.0, "max_ms": 4.0,
           "device": "cpu", "threads": 1, "batch_size": 1}
    new = normalize_latency(old)
    assert new == {"n": 3, "p50": 2.0, "p95": 3.8, "p99": 3.96, "mean": 2.33, "min": 1.0, "max": 4.0,
                   "device": "cpu", "threads": 1, "batch_size": 1, "unit": "ms"}
    assert "std" not in new  # nothing invented
    assert normalize_latency(latency_summary([1.0, 2.0])) == latency_summary([1.0, 2.0])
    # an old LLM stats_ms block (no unit) and a nested block pass through with the unit added
    assert normalize_latency({"p50": 1.0, "n": 2})["unit"] == "ms"
    assert normalize_latency({"device": "cpu"}) == {"device": "cpu"}
    assert normalize_latency(None) is None


def test_time_each_and_single_thread() -> None:
    calls: list[int] = []
    durations = time_each(calls.append, [1, 2, 3], warmup=1)
    assert calls == [1, 1, 2, 3] and len(durations) == 3 and all(d >= 0 for d in durations)
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with single_thread() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
