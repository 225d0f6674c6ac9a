"""The retrieval latency pass times each query at k = 10 and at the run's depth: the method is
asked for the top 10 at timing time, the metrics come from the deep run, and a method that cannot
change k is timed at its depth and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

import ir_toy
from harness.ir.evaluate import latency_cutoffs
from harness.report import data
from harness.results import ResultStore
from harness.runner import RunRequest, execute


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch):
    ir_toy.install(monkeypatch)
    yield
    ir_toy.uninstall()


def _run(results: Path, **params: str):
    (out,) = execute(RunRequest(method=ir_toy.METHOD_NAME, params=dict(params), tasks=[ir_toy.TASK_ID],
                                results_dir=results, progress=False))
    assert out.status == "ok", out.doc.get("error")
    return ResultStore(results).check(out.path)


def test_cutoffs_default_to_10_and_the_run_depth() -> None:
    assert latency_cutoffs({}, 1000) == [1000, 10]
    assert latency_cutoffs(None, 5) == [5]  # never deeper than the run
    assert latency_cutoffs({"cutoffs": [100, 10, 10]}, 1000) == [100, 10]


def test_the_timed_call_is_asked_for_the_top_10(toy, tmp_path: Path) -> None:
    stored = _run(tmp_path / "r")
    calls = ir_toy.CALLS
    # the evaluation pass: all 3 topics at the run's depth; then single-query calls at each cut-off
    assert calls[0] == (1000, 3)
    single = [k for k, n in calls[1:] if n == 1]
    assert len(single) == len(calls) - 1
    # per cut-off: 1 depth probe + 3 warm-up + 3 timed calls, deep first
    assert single == [1000] * 7 + [10] * 7
    lat = stored.result.efficiency.latency
    assert lat["k"] == 1000 and set(lat["by_k"]) == {"10", "1000"}
    assert lat["by_k"]["10"]["k"] == 10 and lat["by_k"]["10"]["served_depth"] == 10  # q1 has 12 documents
    assert lat["by_k"]["1000"]["served_depth"] == 12
    assert lat["by_k"]["10"]["n"] == 3 and "note" not in lat["by_k"]["10"]
    assert lat["by_k"]["10"]["load_average_1m"] >= 0  # how busy the machine was when timed
    cpu = lat["by_k"]["10"]["cpu"]  # the same calls' process CPU time
    assert cpu["n"] == 3 and cpu["unit"] == "ms" and 0 <= cpu["min"] <= cpu["max"]
    assert lat["p50"] == lat["by_k"]["1000"]["p50"]  # the flat summary stays the deep one
    # the metrics come from the deep run: c (rank 11, relevance 2) counts for R@100 and AP
    assert stored.result.metrics["R@100"].value == pytest.approx((2 / 2 + 1 + 0) / 3)


def test_a_method_that_cannot_change_k_is_timed_at_its_depth_and_says_so(toy, tmp_path: Path) -> None:
    stored = _run(tmp_path / "r", fixed_depth="true")
    at10 = stored.result.efficiency.latency["by_k"]["10"]
    assert at10["served_depth"] == 12
    assert "cannot be asked for the top 10" in at10["note"] and "depth 12" in at10["note"]


def test_boards_show_latency_at_each_k(toy, tmp_path: Path) -> None:
    stored = _run(tmp_path / "r")
    site = data.build([stored], [])
    (board,) = site.boards
    cols = dict(board.extra_cols)
    assert cols["latency@k=10"] == "latency p50 ms, top 10" and "latency@k=1000" in cols
    row = data.board_row(board, board.entries[0])
    by_k = stored.result.efficiency.latency["by_k"]
    assert row["latency@k=10"] == by_k["10"]["p50"] and row["latency@k=1000"] == by_k["1000"]["p50"]
    assert cols["cpu@k=10"] == "CPU p50 ms, top 10" and row["cpu@k=10"] == by_k["10"]["cpu"]["p50"]


def test_pisa_bm25_is_asked_for_the_top_k_when_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real adapter on a 4-document index: pyterrier-pisa gets num_results=k for the timed
    calls, and returns at most k (with k = 2 here: topic 1 matches 3 documents)."""
    pytest.importorskip("pyterrier_pisa")
    import pyterrier_pisa

    from harness.kinds import RunContext, get_evaluator
    from harness.registry import instantiate
    from test_retrieval_methods import _toy_task

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    task, data_dir = _toy_task(tmp_path)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    monkeypatch.setattr("harness.ir.evaluate.LATENCY_CUTOFFS", (2,))
    asked: list[int] = []
    real = pyterrier_pisa.PisaIndex.bm25
    monkeypatch.setattr(pyterrier_pisa.PisaIndex, "bm25",
                        lambda self, **kw: asked.append(kw["num_results"]) or real(self, **kw))
    m = instantiate("bm25", {"query_algorithm": "block_max_wand"})
    out = get_evaluator("retrieval")(task, RunContext(method=m, model=None))
    assert asked == [1000, 2]  # the evaluation run (also timed at 1000), then the timed top 2
    by_k = out.efficiency["latency"]["by_k"]
    assert by_k["2"]["served_depth"] == 2 and by_k["1000"]["served_depth"] == 3
    assert m.num_results == 1000  # the run's depth restored after the pass
    assert out.items[0]["R@100"] == 1.0  # metrics from the deep run


def test_cpu_time_excludes_waiting_wall_time_includes_it() -> None:
    import time

    from harness.ir.latency import time_each_cpu

    def sleepy(x: float) -> None:  # waits without using the CPU, like a query waiting for a core
        time.sleep(x)

    wall, cpu = time_each_cpu(sleepy, [0.02, 0.02], warmup=0)
    assert all(w >= 0.02 for w in wall) and all(c < 0.01 for c in cpu)
