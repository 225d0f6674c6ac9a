"""Suites: loading and validation, aggregation, protocol refusals, top and baseline marks, the
table's views (LaTeX compiled when a TeX engine is installed) and `harness table` / `list suites`."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures_results import make_doc
from harness.cli import main
from harness.errors import HarnessError, TaskDefinitionError
from harness.report.suite import suite_view, to_table
from harness.results import ResultStore
from harness.suites import load_suites, parse_suite
from harness.tasks import load_tasks

SUITE = {"id": "two", "title": "Two tasks", "members": [{"task": "boolq", "label": "BoolQ"},
                                                        {"task": "arc_easy", "label": "ARC-e"}],
         "aggregate": {"label": "Mean"}}


def _suite(raw: dict[str, Any] | None = None, path: Path = Path("tasks/suites/two.yaml")) -> Any:
    return parse_suite(raw or SUITE, path, load_tasks())


def _write(store: ResultStore, method: str, params: dict[str, Any], task: str, scores: list[float],
           limit: int | None = None) -> Any:
    """One stored run whose per-item acc and acc_norm are ``scores`` (so both metrics are their mean)."""
    mean = sum(scores) / len(scores)
    doc = make_doc(method=method, params=params, task_id=task, limit=limit, metrics={"acc": mean, "acc_norm": mean})
    for m in doc["metrics"].values():
        m["n"] = len(scores)  # the store checks n against the per-item rows
    items = [{"doc_id": str(i), "acc": s, "acc_norm": s} for i, s in enumerate(scores)]
    return store.write(doc, items=items, item_key="doc_id")


def _view(root: Path, suite: Any = None, baseline: str | None = None) -> Any:
    good, bad = ResultStore(root).scan()
    assert not bad
    return suite_view(suite or _suite(), good, "smollm2-135m", baseline)


def _row(view: Any, label: str) -> Any:
    return next(r for r in view.rows if r.label == label)


# ---------------------------------------------------------------------------------------------
# Loading


def test_shipped_suites_load_and_the_task_loader_skips_them() -> None:
    suites = load_suites()
    assert {"zeroshot-7", "llm-pruning", "ir-classic", "trec-dl"} <= set(suites)
    z = suites["zeroshot-7"]
    assert [m.id for m in z.members] == ["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                         "openbookqa"]
    assert z.aggregate == tuple(m.id for m in z.members) and all(m.pinned["limit"] == 50 for m in z.members)
    lp = suites["llm-pruning"]
    assert lp.members[0].id == "wikitext2" and "wikitext2" not in lp.aggregate  # zero-shot mean only
    assert [m.id for m in suites["trec-dl"].members] == ["trec-dl-2019", "trec-dl-2020"]
    assert [m.id for m in suites["ir-classic"].members] == ["vaswani", "cranfield", "cisi", "cacm", "scifact"]
    tasks = load_tasks()
    assert not tasks.errors and "zeroshot-7" not in tasks and "boolq" in tasks


@pytest.mark.parametrize("change, where, why", [
    ({"members": [{"task": "boolqq"}]}, "members[0].task", "unknown task 'boolqq'"),
    ({"memberz": []}, "memberz", "unknown key"),
    ({"members": [{"task": "boolq", "protocol": {"seqlen": 8}}]}, "members[0].protocol.seqlen", "no protocol key"),
    ({"protocol": {"num_fewshot": 5}}, "protocol.num_fewshot", "fixes num_fewshot=0"),
    ({"aggregate": {"over": ["rte"]}}, "aggregate.over[0]", "not a member"),
    ({"members": [{"task": "boolq", "metric": "f1"}]}, "members[0].metric", "no metric 'f1'"),
    ({"members": ["boolq", "boolq"]}, "members", "listed twice"),
    ({"aggregate": "mean"}, "aggregate", "must be none or a mapping"),
    ({"aggregate": {"labl": "x"}}, "aggregate.labl", "unknown key"),
])
def test_bad_suite_files_name_file_and_field(change: dict[str, Any], where: str, why: str) -> None:
    raw = {k: v for k, v in SUITE.items() if k not in change and not (k == "members" and "memberz" in change)}
    raw |= change
    with pytest.raises(TaskDefinitionError) as exc:
        _suite(raw)
    msg = str(exc.value)
    assert "tasks/suites/two.yaml" in msg and f"field {where!r}" in msg and why in msg


def test_a_broken_suite_file_is_refused_on_load(tmp_path: Path) -> None:
    shutil.copytree(Path(__file__).parent.parent / "tasks", tmp_path / "tasks",
                    ignore=shutil.ignore_patterns("suites"))
    (tmp_path / "tasks" / "suites").mkdir()
    (tmp_path / "tasks" / "suites" / "x.yaml").write_text(yaml.safe_dump(SUITE | {"members": ["nope"]}))
    with pytest.raises(TaskDefinitionError, match=r"x\.yaml: field 'members\[0\]\.task'"):
        load_suites(tmp_path / "tasks")
    assert not load_tasks(tmp_path / "tasks").errors  # the suite file is not read as a task


# ---------------------------------------------------------------------------------------------
# Aggregation and protocols


def test_missing_member_shows_the_gap_and_gets_no_aggregate(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _write(store, "dense", {}, "boolq", [1, 1, 0, 1])
    _write(store, "dense", {}, "arc_easy", [1, 0, 0, 0])
    _write(store, "wanda", {"sparsity": 0.5}, "boolq", [1, 1, 1, 1])  # no arc_easy result
    v = _view(tmp_path)
    dense, wanda = _row(v, "dense"), _row(v, "wanda")
    assert dense.aggregate == pytest.approx((0.75 + 0.25) / 2)
    assert wanda.aggregate is None and "arc_easy" not in wanda.cells
    md = to_table(v).to_markdown()
    line = next(x for x in md.splitlines() if x.startswith("| wanda"))
    assert [c.strip() for c in line.strip("|").split("|")][2:] == ["—", "—"]  # the gap, and no mean
    assert any("no aggregate" in n for n in v.notes)


def test_mixed_protocols_within_a_member_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _write(store, "dense", {}, "boolq", [1, 0, 1, 0], limit=4)
    _write(store, "wanda", {}, "boolq", [1, 0, 1, 0, 1], limit=5)
    with pytest.raises(HarnessError, match=r"member boolq: results under 2 protocols differing in limit \(4 vs 5\)"):
        _view(tmp_path)
    # pinning the limit in the suite picks one protocol
    pinned = _suite(SUITE | {"protocol": {"limit": 5}})
    assert [r.label for r in _view(tmp_path, pinned).rows] == ["wanda"]


def test_results_outside_the_pinned_protocol_are_left_out(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _write(store, "dense", {}, "boolq", [1, 0], limit=2)
    v = _view(tmp_path, _suite(SUITE | {"protocol": {"limit": None}}))
    assert v.rows == []


# ---------------------------------------------------------------------------------------------
# Marks


def test_best_and_statistically_tied_entries_are_marked_top(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    n = 40
    _write(store, "a", {}, "boolq", [1.0] * n)
    _write(store, "b", {}, "boolq", [1.0] * (n - 1) + [0.0])  # one item worse: not separable from a
    _write(store, "c", {}, "boolq", [0.0] * n)  # 40 items worse: clearly separated
    v = _view(tmp_path)
    marks = {r.label: r.cells["boolq"].marks for r in v.rows}
    assert marks == {"a": ["top"], "b": ["top"], "c": []}
    t = to_table(v)
    md = t.to_markdown()
    assert "| a | **1.0000** |" in md and "| b | **0.9750** |" in md and "| c | 0.0000 |" in md
    assert "\\textbf{1.0000}" in t.to_latex()
    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(t.to_csv()))}
    assert rows["b"]["boolq_top"] == "True" and rows["c"]["boolq_top"] == "False"


def test_baseline_marks_follow_a_paired_test_with_the_correction_stated(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    n = 30
    half = [1.0, 0.0] * (n // 2)
    _write(store, "base", {}, "boolq", half)
    _write(store, "better", {}, "boolq", [1.0] * n)  # wins every item the baseline loses: p ~ 1e-4
    _write(store, "worse", {}, "boolq", [0.0] * n)
    _write(store, "same", {}, "boolq", [0.0, 1.0] * (n // 2))  # same mean, items swapped: p = 1
    v = _view(tmp_path, baseline="base")
    cells = {r.label: r.cells["boolq"] for r in v.rows}
    assert "up" in cells["better"].marks and "down" in cells["worse"].marks
    assert not {"up", "down"} & set(cells["same"].marks) and cells["same"].p_base == pytest.approx(1.0)
    assert cells["better"].p_base < 0.05 and cells["base"].p_base is None
    t = to_table(v)
    assert "Holm-corrected over the rows of each column" in t.caption and "baseline base" in t.caption
    md = t.to_markdown()
    assert "| better | **1.0000**▲ |" in md and "| worse | 0.0000▼ |" in md and "(baseline)" in md
    tex = t.to_latex()
    assert "$^{\\blacktriangle}$" in tex and "amssymb" in tex.splitlines()[0]


def test_the_aggregate_is_tested_on_items_weighted_to_its_mean(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for name, q in (("good", 1.0), ("bad", 0.0)):
        _write(store, name, {}, "boolq", [q] * 30)
        _write(store, name, {}, "arc_easy", [q] * 10)
    v = _view(tmp_path, baseline="bad")
    good = _row(v, "good")
    assert good.aggregate == 1.0 and good.agg_marks == ["top", "up"] and _row(v, "bad").agg_marks == []


def test_short_labels_show_only_params_that_differ_within_a_method(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for sp in (0.5, 0.7):
        _write(store, "wanda", {"sparsity": sp, "nsamples": 32}, "boolq", [1, 0])
    _write(store, "magnitude", {"sparsity": 0.5}, "boolq", [1, 0])
    labels = sorted(r.label for r in _view(tmp_path).rows)
    assert labels == ["magnitude", "wanda (sparsity=0.5)", "wanda (sparsity=0.7)"]


# ---------------------------------------------------------------------------------------------
# Views and the CLI


def test_latex_is_booktabs_and_compiles_when_tex_is_installed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    for name, q in (("dense", [1, 1, 0, 1]), ("wanda_x", [1, 0, 0, 1])):
        _write(store, name, {"sparsity": 0.5, "note": "50% & more"}, "boolq", q)
        _write(store, name, {"sparsity": 0.5, "note": "50% & more"}, "arc_easy", q)
    tex = to_table(_view(tmp_path / "results", baseline="dense")).to_latex()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and tex.count("\\begin{tabular}") == 1
    assert "wanda\\_x" in tex and "Per member (metric): BoolQ" in tex  # the caption states the protocol
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no TeX engine installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    doc = ("\\documentclass{article}\\usepackage{booktabs,amssymb,graphicx}\\begin{document}\n" + tex
           + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    out = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "Overfull \\hbox" not in out.stdout  # fits the page


def test_cli_table_and_list_suites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ResultStore(tmp_path)
    _write(store, "dense", {}, "boolq", [1, 0, 1, 1], limit=50)
    assert main(["list", "suites"]) == 0
    assert "zeroshot-7" in capsys.readouterr().out
    assert main(["table", "zeroshot-7", "--results", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["boolq"] == 0.75 and data["rows"][0]["aggregate"] is None
    assert main(["table", "zeroshot-7", "--results", str(tmp_path), "--model", "other"]) == 2
    assert "no stored result on model 'other'" in capsys.readouterr().err
    assert main(["table", "zeroshot-77", "--results", str(tmp_path)]) == 2
    assert "Did you mean 'zeroshot-7'" in capsys.readouterr().err


def test_a_column_whose_items_cannot_separate_entries_says_so(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for i in range(8):  # 8 items, 7 comparisons: the smallest corrected p is 7 * 2/2^8 = 0.0547
        _write(store, f"m{i}", {}, "boolq", [1.0] * (8 - i) + [0.0] * i)
    v = _view(tmp_path)
    assert all("top" in r.cells["boolq"].marks for r in v.rows)  # even 8/8 against 1/8
    assert v.power_notes == ["BoolQ: with 8 items and 7 comparisons the smallest corrected p the rank test can reach "
                             "is 0.0547 ≥ 0.05, so no entry can be separated from the best (the whole column is bold)."]
    assert v.power_notes[0] in to_table(v).caption
