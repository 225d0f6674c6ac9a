"""`harness compare` on synthetic stored results: tables, corrections and refusals."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from fixtures_results import small_results, write_synthetic
from harness.compare import compare_runs as _compare_runs
from harness.compare import latex_escape
from harness.errors import HarnessError
from harness.results import ResultStore


def compare_runs(*args: Any, layout: str = "long", **kwargs: Any) -> str:
    """The tests below check the long layout (a row per metric and run); the paper layout has its own."""
    return _compare_runs(*args, layout=layout, **kwargs)



@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("results")
    return root, small_results(root)


def _ppl_full(info: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in info["ppl_runs"] if d["task"]["protocol"]["limit"] is None]


def test_csv_values_differences_and_holm(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    runs = _ppl_full(info)[:3]
    out = compare_runs([r["run_id"] for r in runs], root, fmt="csv", test="randomization", correction="holm")
    rows = list(csv.DictReader(io.StringIO(out)))
    # 2 metrics (ppl primary first, then nll) x 3 runs
    assert [r["metric"] for r in rows] == ["ppl"] * 3 + ["nll"] * 3
    base = runs[0]
    for r in rows:
        doc = next(d for d in runs if d["run_id"] == r["run_id"])
        assert float(r["value"]) == pytest.approx(doc["metrics"][r["metric"]]["value"])
        assert r["n"] == "40"
        if r["run_id"] == base["run_id"]:
            assert r["baseline"] == "True" and r["diff"] == "" and r["p_value"] == ""
        else:
            expected = doc["metrics"][r["metric"]]["value"] - base["metrics"][r["metric"]]["value"]
            assert float(r["diff"]) == pytest.approx(expected)
            assert float(r["ci_low"]) <= float(r["diff"]) <= float(r["ci_high"])
    tested = [r for r in rows if r["p_value"]]
    assert len(tested) == 4  # 2 runs x 2 metrics in one Holm family
    from harness.stats import holm

    assert [float(r["p_adjusted"]) for r in tested] == pytest.approx(holm([float(r["p_value"]) for r in tested]))


def test_identical_scores_compare_to_p_one(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    # Same quality and seed: identical per-item scores under two method names.
    _, a = write_synthetic(store, method="m1", params={}, task_id="boolq", quality=0.2, n_items=30, seed=5)
    _, b = write_synthetic(store, method="m2", params={}, task_id="boolq", quality=0.2, n_items=30, seed=5)
    for test in ("paired-bootstrap", "randomization", "t", "wilcoxon", "mcnemar"):
        rows = list(csv.DictReader(io.StringIO(compare_runs([a["run_id"], b["run_id"]], tmp_path, test=test, fmt="csv"))))
        cand = [r for r in rows if r["baseline"] == "False"]
        assert all(float(r["diff"]) == 0.0 for r in cand)
        assert all(float(r["p_adjusted"]) == 1.0 for r in cand), test


def test_prefix_ids_and_baseline(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    runs = _ppl_full(info)[:2]
    out = compare_runs([runs[0]["run_id"][:7], runs[1]["run_id"][:7]], root, baseline=runs[1]["run_id"][:5])
    lines = [l for l in out.splitlines() if l.startswith("| ppl")]
    assert "(baseline)" in lines[0] and runs[1]["run_id"] in lines[0]
    assert "Holm-corrected over 2 comparisons" in out


def test_refuses_different_protocols(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    full = _ppl_full(info)[0]
    lim = next(d for d in info["ppl_runs"] if d["task"]["protocol"]["limit"] == 8)
    with pytest.raises(HarnessError, match=r"task\.protocol\.limit: null vs 8"):
        compare_runs([full["run_id"], lim["run_id"]], root)


def test_refuses_different_tasks(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    with pytest.raises(HarnessError, match=r"task\.id differs"):
        compare_runs([_ppl_full(info)[0]["run_id"], info["acc_runs"][0]["run_id"]], root)


def test_refuses_different_item_sets(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _, a = write_synthetic(store, method="m1", params={}, task_id="boolq", quality=0.2, n_items=30)
    _, b = write_synthetic(store, method="m2", params={}, task_id="boolq", quality=0.2, n_items=32)
    with pytest.raises(HarnessError, match=r"item sets differ \(0 only in .*; 2 only in .*doc_id-00030, doc_id-00031"):
        compare_runs([a["run_id"], b["run_id"]], tmp_path)


def test_unknown_and_ambiguous_ids(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    with pytest.raises(HarnessError, match="no stored result"):
        compare_runs(["ffffffffffffffff", info["ppl_runs"][0]["run_id"]], root)
    with pytest.raises(HarnessError, match="ambiguous"):
        compare_runs(["", info["ppl_runs"][0]["run_id"]], root)
    failed = info["failed_path"]
    with pytest.raises(HarnessError, match="status 'failed'"):
        compare_runs([failed.stem, _ppl_full(info)[0]["run_id"]], root)


def test_latex_is_booktabs_and_escaped(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    ids = [d["run_id"] for d in info["acc_runs"]]
    tex = compare_runs(ids, root, fmt="latex", test="mcnemar")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "<script>" not in tex and "\\textless{}script\\textgreater{}" in tex
    assert tex.count("\\begin{tabular}") == 1 and tex.rstrip().endswith("\\end{table}")
    assert latex_escape("a_b & 50% #1 {x} ~ ^ \\") == (
        "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"
    )


def test_markdown_notes_ppl_tested_on_nll(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    md = compare_runs([d["run_id"] for d in _ppl_full(info)[:2]], root)
    assert "ppl is tested on per-item nll" in md
    row = next(l for l in md.splitlines() if l.startswith("| ppl") and "(baseline)" not in l)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] != "—" and not math.isnan(float(cells[3]))


def test_every_format_is_a_view_of_one_table(results: tuple[Path, dict[str, Any]]) -> None:
    import json

    from harness.compare import build_comparison, find_runs, to_table

    root, info = results
    ids = [d["run_id"] for d in _ppl_full(info)[:3]]
    table = to_table(build_comparison(find_runs(ids, root), None, "randomization", "holm"))
    assert compare_runs(ids, root, fmt="csv") == table.to_csv()
    assert compare_runs(ids, root, fmt="markdown") == table.to_markdown()
    data = json.loads(compare_runs(ids, root, fmt="json"))
    assert data == json.loads(table.to_json())
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert [float(r["value"]) for r in rows] == [r["value"] for r in data["rows"]]  # same raw numbers
    assert table.to_markdown().splitlines()[2] == "| metric | run | run id | value | Δ vs baseline | 95% CI | p (holm) | n |"
    tex = compare_runs(ids, root, fmt="latex")
    assert "Metric & Run & Value & $\\Delta$ & 95\\% CI & $p$ (holm) \\\\" in tex
    assert tex.count("ppl $\\downarrow$") == 1 and tex.count("nll $\\downarrow$") == 1  # each metric once
    baseline = next(l for l in tex.splitlines() if "(baseline)" in l)
    assert baseline.endswith("& -- & -- & -- \\\\")  # no difference, interval or p for the baseline


def test_paper_layout_one_row_per_run_with_marks_and_short_labels(results: tuple[Path, dict[str, Any]]) -> None:
    root, info = results
    ids = [d["run_id"] for d in _ppl_full(info)]
    md = _compare_runs(ids, root)  # the default layout
    lines = [x for x in md.splitlines() if x.startswith("|")]
    assert lines[0] == "| Run | ppl ↓ | Δ ppl | nll ↓ | Δ nll |"
    assert len(lines) == 2 + len(ids)  # header, rule, one row per run
    labels = [x.split("|")[1].strip() for x in lines[2:]]
    assert labels[0] == "dense (baseline)"
    assert "wanda (sparsity=0.5)" in labels and "magnitude (sparsity=0.7)" in labels  # nsamples is constant: left out
    worst = next(x for x in lines if x.startswith("| magnitude (sparsity=0.7)"))
    assert "▼" in worst and "(p " in worst  # much worse than dense on 40 windows: marked, with its p
    tex = _compare_runs(ids, root, fmt="latex")
    assert "\\toprule" in tex and "$^{\\blacktriangledown}$" in tex and "amssymb" in tex.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(_compare_runs(ids, root, fmt="csv"))))
    assert len(rows) == len(ids) and {"ppl", "ppl_diff", "ppl_ci_low", "ppl_ci_high", "ppl_p_adjusted"} <= set(rows[0])
    with pytest.raises(HarnessError, match="unknown layout"):
        _compare_runs(ids, root, layout="wide")
