"""ir-measures on a toy run against hand-computed values; tie-breaking; latency statistics."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.ir.evaluate import aggregate, normalize_run, per_query_scores, resolve_measures
from harness.ir.formats.trec_run import write_trec_run
from harness.ir.latency import latency_stats, time_each

NAMES = ["nDCG@10", "RR@10", "R@100", "AP@1000"]

# q1: judged d1 (grade 2), d2 (grade 1), d5 (grade 1; never retrieved)
# q2: judged d9, and the method returns nothing for q2
QRELS = pd.DataFrame(
    [("q1", "d1", 2), ("q1", "d2", 1), ("q1", "d5", 1), ("q2", "d9", 1)],
    columns=["query_id", "doc_id", "relevance"],
)
RUN = pd.DataFrame(
    [("q1", "d3", 3.0), ("q1", "d1", 2.0), ("q1", "d4", 1.5), ("q1", "d2", 1.0)],
    columns=["qid", "docno", "score"],
)


def _scores(rel_threshold: int = 1) -> pd.DataFrame:
    run = normalize_run(RUN, cutoff=1000)
    return per_query_scores(run, QRELS, ["q1", "q2"], resolve_measures(NAMES, rel_threshold))


def test_toy_run_matches_hand_computation() -> None:
    t = _scores()
    # ranking of q1: d3 (0), d1 (2), d4 (0), d2 (1); relevant = {d1, d2, d5}
    # RR@10: first relevant at rank 2 -> 1/2
    assert t.at["q1", "RR@10"] == pytest.approx(0.5)
    # AP: precision at the relevant ranks 2 and 4 is 1/2 and 2/4; divided by |relevant| = 3
    assert t.at["q1", "AP@1000"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    # R@100: 2 of the 3 relevant documents retrieved
    assert t.at["q1", "R@100"] == pytest.approx(2 / 3)
    # nDCG@10 with trec_eval gains = labels, discount log2(rank + 1):
    # DCG = 2/log2(3) + 1/log2(5) = 1.26186 + 0.43068; ideal [2, 1, 1]: 2/1 + 1/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert t.at["q1", "nDCG@10"] == pytest.approx(dcg / idcg)
    assert dcg / idcg == pytest.approx(1.6925361 / 3.1309298, abs=1e-6)  # = 0.540586
    # q2 has judgements but no retrieved document: 0 on every measure, and it counts in the mean
    assert (t.loc["q2"] == 0).all()
    agg = aggregate(t)
    assert agg["RR@10"].value == pytest.approx(0.25) and agg["RR@10"].n == 2
    # standard error of the mean of [0.5, 0]: sd = 0.35355, / sqrt(2) = 0.25
    assert agg["RR@10"].stderr == pytest.approx(0.25)


def test_rel_threshold_applies_to_binary_measures_only() -> None:
    m = resolve_measures(NAMES, 2)
    assert str(m["RR@10"]) == "RR(rel=2)@10" and str(m["AP@1000"]) == "AP(rel=2)@1000"
    assert str(m["nDCG@10"]) == "nDCG@10"
    t = _scores(rel_threshold=2)
    # only d1 (grade 2) is relevant now: first at rank 2; AP = (1/2) / 1; recall 1/1
    assert t.at["q1", "RR@10"] == pytest.approx(0.5)
    assert t.at["q1", "AP@1000"] == pytest.approx(0.5)
    assert t.at["q1", "R@100"] == pytest.approx(1.0)
    # nDCG keeps the graded gains: identical to the threshold-1 value
    assert t.at["q1", "nDCG@10"] == pytest.approx(_scores().at["q1", "nDCG@10"])


def test_ties_are_broken_by_docno_ascending_and_evaluated_in_that_order() -> None:
    run = pd.DataFrame([("q", "b", 1.0), ("q", "a", 1.0), ("q", "c", 2.0)], columns=["qid", "docno", "score"])
    norm = normalize_run(run, cutoff=1000)
    assert list(norm["docno"]) == ["c", "a", "b"] and list(norm["rank"]) == [0, 1, 2]
    qrels = pd.DataFrame([("q", "b", 1)], columns=["query_id", "doc_id", "relevance"])
    t = per_query_scores(norm, qrels, ["q"], resolve_measures(["RR@10"]))
    # trec_eval alone would put b (docno descending) before a and give 1/2; our order gives 1/3
    assert t.at["q", "RR@10"] == pytest.approx(1 / 3)


def test_normalize_run_cuts_and_dedupes() -> None:
    run = pd.DataFrame(
        [("q", f"d{i}", float(i)) for i in range(5)] + [("q", "d4", -1.0)], columns=["qid", "docno", "score"]
    )
    norm = normalize_run(run, cutoff=3)
    assert list(norm["docno"]) == ["d4", "d3", "d2"]
    trec = write_trec_run(norm, "my run").decode().splitlines()
    assert trec == ["q Q0 d4 1 3 my_run", "q Q0 d3 2 2 my_run", "q Q0 d2 3 1 my_run"]  # rank-derived scores


def test_latency_stats_on_known_durations() -> None:
    s = latency_stats([i / 1000 for i in range(1, 11)])  # 1..10 ms
    # linear interpolation: position (n-1)p = 4.5 -> 5.5; 8.55 -> 9 + 0.55; 8.91 -> 9 + 0.91
    assert s["p50"] == pytest.approx(5.5)
    assert s["p95"] == pytest.approx(9.55)
    assert s["p99"] == pytest.approx(9.91)
    assert s["mean"] == pytest.approx(5.5)
    assert s["n"] == 10 and s["min"] == pytest.approx(1) and s["max"] == pytest.approx(10)
    with pytest.raises(ValueError):
        latency_stats([])


def test_time_each_warms_up_then_times_every_input() -> None:
    calls: list[int] = []
    durations = time_each(calls.append, [1, 2, 3, 4], warmup=2)
    assert calls == [1, 2, 1, 2, 3, 4] and len(durations) == 4 and all(d >= 0 for d in durations)
