"""LLM latency statistics (the one summary shape of harness.timing) on a fake clock, the timer protocol, and the latency evaluator on a tiny model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.llm.latency import Timer, is_two_four, semi_structured_unavailable, summarize


def test_summarize_known_percentiles() -> None:
    # 1..100 ms: linear interpolation gives p50 = 50.5, p95 = 95.05, p99 = 99.01
    durations_ns = [i * 1_000_000 for i in range(1, 101)]
    s = summarize(durations_ns)
    assert s["n"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p95"] == pytest.approx(95.05)
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))


def test_summarize_small_sample_interpolation() -> None:
    s = summarize([4_000_000, 1_000_000, 2_000_000, 3_000_000])  # order must not matter
    assert s["p50"] == pytest.approx(2.5)
    assert s["p95"] == pytest.approx(3.85)  # 1 + 0.95 * 3 = 3.85 -> between 3 and 4 at 0.85
    assert s["p99"] == pytest.approx(3.97)
    assert (s["min"], s["max"], s["unit"]) == (1.0, 4.0, "ms")
    one = summarize([7_000_000])
    assert one == {"n": 1, "unit": "ms", "p50": 7.0, "p95": 7.0, "p99": 7.0, "mean": 7.0, "std": 0.0,
                   "min": 7.0, "max": 7.0}
    with pytest.raises(ValueError):
        summarize([])


def test_timer_on_fake_clock_counts_warmup_setup_and_sync() -> None:
    readings = iter([0, 5, 100, 112, 1000, 1030])  # three timed calls: 5, 12, 30 ns
    calls: list[str] = []
    timer = Timer(clock=lambda: next(readings), sync=lambda: calls.append("sync"))

    def fn(arg: int) -> None:
        calls.append(f"fn{arg}")

    counter = iter(range(100))
    durations = timer.measure(fn, warmup=2, repeats=3, setup=lambda: next(counter))
    assert durations == [5, 12, 30]
    # warm-up calls are untimed (no clock readings, no sync); each timed call syncs before and after
    assert calls[:2] == ["fn0", "fn1"]
    assert calls[2:] == ["sync", "fn2", "sync", "sync", "fn3", "sync", "sync", "fn4", "sync"]
    with pytest.raises(ValueError):
        timer.measure(fn, warmup=0, repeats=0)


def test_two_four_detection_and_cpu_refusal() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0]])
    assert is_two_four(w)
    w[0, 1] = 5.0  # first group now has 3 non-zeros
    assert not is_two_four(w)
    reason = semi_structured_unavailable("cpu", torch.float16)
    assert reason is not None and "CUDA" in reason


@pytest.fixture(scope="module")
def tiny_latency_output():
    from harness.kinds import RunContext, get_evaluator
    from harness.llm.models import load_model
    from harness.tasks import get_task

    loaded = load_model("config:tiny-llama")
    task = get_task("llm-latency")
    # pin one thread through the protocol: on a shared 2-core machine two OpenMP threads can be
    # 100x slower for a tiny model
    grids = {**task.protocol["grids"], "cpu": {**task.protocol["grids"]["cpu"], "threads": 1}}
    task = dataclasses.replace(task, protocol={**task.protocol, "grids": grids})
    ctx = RunContext(method=None, model=loaded, device="cpu", limit=2, progress=False)
    threads = torch.get_num_threads()
    out = get_evaluator("latency")(task, ctx)
    assert torch.get_num_threads() == threads  # restored after the measurement
    return task, loaded, out


def test_latency_evaluator_on_tiny_llama(tiny_latency_output) -> None:
    task, _loaded, out = tiny_latency_output
    assert set(out.metrics) == {m.name for m in task.metrics}
    grid = task.protocol["grids"]["cpu"]
    cells = [f"prefill/b{b}/s{s}" for b in grid["prefill"]["batch_sizes"] for s in grid["prefill"]["seqlens"]]
    dec = grid["decode"]
    names = [it["item"] for it in out.items]
    assert names == cells + [f"decode/b{dec['batch_size']}/p{dec['prompt_len']}/n{dec['new_tokens']}"]
    for it in out.items:
        assert len(it["durations_ms"]) == 2 and all(d > 0 for d in it["durations_ms"])  # limit=2 repeats
        assert it["stats_ms"]["p50"] == pytest.approx(float(np.median(it["durations_ms"])))
        assert it["stats_ms"]["unit"] == "ms" and it["stats_ms"]["n"] == 2
    largest = max(out.items[:-1], key=lambda it: it["tokens"])
    assert out.metrics["prefill_tokens_per_s"].value == pytest.approx(largest["tokens"] / largest["stats_ms"]["p50"] * 1e3)
    assert out.metrics["prefill_ms_p50"].value == pytest.approx(out.items[0]["stats_ms"]["p50"])
    assert out.metrics["peak_memory_mb"].value > 0
    env = out.efficiency["latency"]["environment"]
    assert env["device"] == "cpu" and env["dtype"] == "float32" and env["threads"] == 1
    assert "process_peak_rss" in out.efficiency["latency"]["peak_memory"]["kind"]
    assert out.protocol_details["repeats"] == 2 and out.protocol_details["device_type"] == "cpu"


def test_semi_structured_on_cpu_fails_clearly(tiny_latency_output) -> None:
    from harness.kinds import RunContext, get_evaluator

    task, loaded, _ = tiny_latency_output
    sparse_task = dataclasses.replace(task, protocol={**task.protocol, "sparse_kernels": "semi_structured"})
    ctx = RunContext(method=None, model=loaded, device="cpu", limit=1, progress=False)
    with pytest.raises(HarnessError, match="unavailable.*CUDA"):
        get_evaluator("latency")(sparse_task, ctx)


def test_shipped_2to4_task_fails_on_cpu_for_the_device_not_the_grid(tiny_latency_output) -> None:
    from harness.kinds import RunContext, get_evaluator
    from harness.tasks import get_task

    task = get_task("llm-latency-2to4")
    assert task.protocol["sparse_kernels"] == "semi_structured" and "cuda" in task.protocol["grids"]
    _, loaded, _ = tiny_latency_output
    ctx = RunContext(method=None, model=loaded, device="cpu", limit=1, progress=False)
    with pytest.raises(HarnessError, match="unavailable.*CUDA"):
        get_evaluator("latency")(task, ctx)


def test_to_semi_structured_converts_only_two_four_linears(monkeypatch) -> None:
    """The conversion logic with torch's CUDA-only converter faked: 2:4 linears are converted, the
    others stay dense and are listed with the reason (the real kernels need a GPU)."""
    import torch.sparse
    from torch import nn

    import harness.llm.latency as lat

    calls = []

    def fake_convert(w: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 12:
            raise RuntimeError("shape refused\nsecond line")
        calls.append(tuple(w.shape))
        return w.clone()

    monkeypatch.setattr(lat, "semi_structured_unavailable", lambda device, dtype: None)
    monkeypatch.setattr(torch.sparse, "to_sparse_semi_structured", fake_convert)
    model = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 8), nn.Linear(8, 12))
    with torch.no_grad():
        for lin in (model[0], model[2]):  # 2:4: zero the first two of every group of four inputs
            lin.weight.view(lin.out_features, -1, 4)[:, :, :2] = 0
    linears = {"a": model[0], "b": model[1], "c": model[2]}
    report = lat.to_semi_structured(model, linears)
    assert calls == [(16, 8)]
    assert report["converted"] == 1 and report["total"] == 3
    assert report["skipped"]["b"] == "not 2:4 sparse"
    assert report["skipped"]["c"] == "refused by to_sparse_semi_structured: shape refused"
    with torch.no_grad():
        model[0].weight.zero_()
        model[2].weight.zero_()
    with pytest.raises(HarnessError, match="no linear layer is 2:4"):
        lat.to_semi_structured(model, {"b": model[1]})


def test_semi_structured_run_times_dense_then_sparse_and_restores_weights(tiny_latency_output, monkeypatch) -> None:
    """The evaluator's 2:4 protocol with the kernels faked: both executions are stored, the speedup
    is dense p50 / 2:4 p50 per cell, and the dense weights are back afterwards."""
    import harness.llm.latency_task as ev
    from harness.kinds import RunContext, get_evaluator

    task, loaded, _ = tiny_latency_output
    linears = ev.prunable_linears(loaded.model)
    before = {name: lin.weight for name, lin in linears.items()}

    def fake_to_semi_structured(model, lins):
        for lin in lins.values():
            lin.weight = torch.nn.Parameter(lin.weight.detach().clone(), requires_grad=False)
        return {"converted": len(lins), "skipped": {}, "total": len(lins)}

    monkeypatch.setattr(ev, "semi_structured_unavailable", lambda device, dtype: None)
    monkeypatch.setattr(ev, "to_semi_structured", fake_to_semi_structured)
    sparse_task = dataclasses.replace(task, protocol={**task.protocol, "sparse_kernels": "semi_structured"})
    out = get_evaluator("latency")(sparse_task, RunContext(method=None, model=loaded, device="cpu", limit=1,
                                                           progress=False))
    lat = out.efficiency["latency"]
    cells = set(lat["cells"])
    assert cells and set(lat["dense_cells"]) == cells and set(lat["semi_structured_speedup_p50"]) == cells
    for k in cells:
        expected = lat["dense_cells"][k]["stats_ms"]["p50"] / lat["cells"][k]["stats_ms"]["p50"]
        assert lat["semi_structured_speedup_p50"][k] == pytest.approx(expected)
    executions = {(it["item"], it["execution"]) for it in out.items}
    assert {(k, "semi_structured") for k in cells} <= executions
    assert {(f"dense/{k}", "dense") for k in cells} <= executions
    assert lat["semi_structured"]["converted"] == len(linears)
    assert all(lin.weight is before[name] for name, lin in ev.prunable_linears(loaded.model).items())
