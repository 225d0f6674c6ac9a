"""Judged@10 (partial judgements): by hand on a toy run, through a real run, added to a stored
result from its stored run (``harness rescore``), and the board's flag on constructed results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import ir_toy
from harness.ir.evaluate import JUDGED, normalize_run, per_query_scores, resolve_measures
from harness.results import ResultStore
from harness.runner import RunRequest, execute


def test_judged_at_10_by_hand_on_a_toy_run() -> None:
    rows = [(q, d, float(100 - i)) for q, docs in ir_toy.RANKINGS.items() for i, d in enumerate(docs)]
    run = normalize_run(pd.DataFrame(rows, columns=["qid", "docno", "score"]))
    qrels = pd.DataFrame(ir_toy.QRELS, columns=["query_id", "doc_id", "relevance"])
    table = per_query_scores(run, qrels, ["1", "2", "3"], resolve_measures([JUDGED]))
    # q1: a and b judged among the top 10 (b is judged non-relevant: it still counts), c is 11th
    assert table.at["1", JUDGED] == pytest.approx(0.2)
    assert table.at["2", JUDGED] == pytest.approx(0.25)  # 1 of the 4 retrieved
    assert table.at["3", JUDGED] == 0.0  # judged, nothing retrieved
    # the same fraction computed directly from its definition
    judged = {(q, d) for q, d, _r in ir_toy.QRELS}
    for q, docs in ir_toy.RANKINGS.items():
        top = docs[:10]
        assert table.at[q, JUDGED] == pytest.approx(sum((q, d) in judged for d in top) / len(top) if top else 0.0)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch):
    ir_toy.install(monkeypatch)
    yield
    ir_toy.uninstall()


def _run(results: Path, **params: str) -> Path:
    (out,) = execute(RunRequest(method=ir_toy.METHOD_NAME, params=dict(params), tasks=[ir_toy.TASK_ID],
                                results_dir=results, progress=False))
    assert out.status == "ok", out.doc.get("error")
    return out.path


def test_every_ir_result_carries_judged_per_query_and_as_a_metric(toy, tmp_path: Path) -> None:
    path = _run(tmp_path / "results")
    stored = ResultStore(tmp_path / "results").check(path)
    by_q = {r["item"]: r[JUDGED] for r in stored.items()}
    assert by_q == pytest.approx(ir_toy.EXPECTED_JUDGED)
    m = stored.result.metrics[JUDGED]
    assert m.value == pytest.approx(sum(ir_toy.EXPECTED_JUDGED.values()) / 3) and m.n == 3
    assert m.primary is False and stored.result.metrics["nDCG@10"].primary is True
    assert stored.result.task.protocol_details["qrels_nonrelevant_labels"] == 1  # (q1, b, 0)


def _strip(store: ResultStore, path: Path) -> dict:
    """The result as it was stored before the kind computed Judged@10."""
    stored = store.check(path)
    doc = stored.result.to_dict()
    del doc["metrics"][JUDGED]
    doc["task"]["protocol_details"].pop("qrels_nonrelevant_labels")
    doc.pop("body_sha256")
    items = [{k: v for k, v in r.items() if k != JUDGED} for r in stored.items()]
    store.write(doc, items=items, item_key=stored.result.items.key)
    return doc


def test_rescore_adds_judged_from_the_stored_run_and_records_it(toy, tmp_path: Path) -> None:
    from harness.ir.rescore import rescore

    root = tmp_path / "results"
    path = _run(root)
    store = ResultStore(root)
    want = store.check(path)
    _strip(store, path)
    assert JUDGED not in store.check(path).result.metrics
    ir_toy.CALLS.clear()
    done = rescore(root, command="harness rescore --results x")
    assert done == [(path, "added")]
    assert ir_toy.CALLS == []  # the method was not run again
    got = store.check(path)  # what `harness validate` checks: digests, sidecar, metric from items
    assert got.run_id == want.run_id
    assert got.result.metrics[JUDGED].to_dict() == want.result.metrics[JUDGED].to_dict()
    assert {r["item"]: r[JUDGED] for r in got.items()} == pytest.approx(ir_toy.EXPECTED_JUDGED)
    (amend,) = got.result.provenance.amendments
    assert amend["command"] == "harness rescore --results x" and f"metrics.{JUDGED}" in amend["added"]
    assert "method not re-run" in amend["from"] and amend["at"]
    # idempotent: a second pass changes nothing
    before = path.read_bytes()
    assert rescore(root) == [(path, f"skipped: already has {JUDGED}")]
    assert path.read_bytes() == before


def test_rescore_refuses_other_metrics_and_skips_invalid_files(toy, tmp_path: Path) -> None:
    from harness.errors import HarnessError
    from harness.ir.rescore import rescore

    root = tmp_path / "results"
    path = _run(root)
    with pytest.raises(HarnessError, match="Judged@10 only"):
        rescore(root, metric="P@10")
    doc = json.loads(path.read_text())
    doc["metrics"]["nDCG@10"]["value"] += 0.5  # tampered: the body digest no longer matches
    path.write_text(json.dumps(doc))
    ((p, what),) = rescore(root)
    assert p == path and what.startswith("skipped: does not validate")


# --------------------------------------------------------------------------------- the board flag


def _board(tmp_path: Path, task_id: str, entries: list[tuple[str, float, dict]]):
    from fixtures_results import make_doc

    from harness.report import data

    store = ResultStore(tmp_path / "r")
    for method, judged, details in entries:
        doc = make_doc(method=method, params={}, task_id=task_id, model=None, metrics={"nDCG@10": 0.5, "RR@10": 0.5})
        doc["metrics"][JUDGED] = {"value": judged, "n": 0, "stderr": None, "higher_is_better": True, "primary": False}
        doc["task"]["protocol_details"] = details
        store.write(doc)
    good, bad = store.scan()
    assert not bad
    (board,) = data.build(good, []).boards
    return board


def test_reranking_board_flags_entries_far_below_the_first_stage(tmp_path: Path) -> None:
    from harness.report import data

    ref = {"qrels_nonrelevant_labels": 40, "judged_reference": {"what": "first stage", JUDGED: 0.98}}
    b = _board(tmp_path, "trec-dl-2019-rerank", [("first-stage", 0.98, ref), ("close", 0.94, ref), ("far", 0.90, ref)])
    rows = {r["method"]: r for r in (data.board_row(b, e) for e in b.entries)}
    assert {m: r["judged_flag"] for m, r in rows.items()} == {"first-stage": False, "close": False, "far": True}
    (note,) = [n for n in b.notes if n.startswith(JUDGED)]
    assert "first stage this board reranks" in note and "0.980" in note and "far 0.900" in note
    assert "close" not in note.split("Flagged")[1]
    assert [m for m, _h in b.metrics][:2] == ["nDCG@10", JUDGED]  # shown beside the primary metric


def test_retrieval_board_uses_its_best_judged_entry_and_skips_relevant_only_qrels(tmp_path: Path) -> None:
    from harness.report import data

    d = {"qrels_nonrelevant_labels": 5}
    b = _board(tmp_path / "a", "msmarco-dev-small", [("bm25", 0.70, d), ("dense", 0.60, d), ("splade", 0.67, d)])
    ref, flagged = data.judged_flags(b)
    assert ref is not None and ref[0] == 0.70 and "bm25" in ref[1]
    assert {e.method for e in b.entries if e.run_id in flagged} == {"dense"}  # 0.10 below; splade 0.03 (within the gap)
    only_rel = {"qrels_nonrelevant_labels": 0}
    b2 = _board(tmp_path / "b", "msmarco-dev-small", [("bm25", 0.70, only_rel), ("dense", 0.3, only_rel)])
    assert data.judged_flags(b2) == (None, set())
    assert any("equals P@10" in n for n in b2.notes)

