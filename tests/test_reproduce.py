"""`harness reproduce`: a real cheap run graded OK, a doctored stored value graded FAIL, the
tolerance policy and its bad input, references validated at load, and reference rows on a board
labelled and never ranked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness import reproduce
from harness.cli import main
from harness.errors import HarnessError, TaskDefinitionError
from harness.results import ResultStore, load_artifact, load_items
from harness.tasks import load_task_file

DOCS = "".join(f"<DOC>\n<DOCNO>d{i}</DOCNO>\n{text}\n</DOC>\n" for i, text in enumerate([
    "the cat sat on the mat", "dogs chase cats in the garden", "stock markets fell sharply today",
    "the garden has roses and a cat", "markets and stock prices rose"], 1))
TOPICS = "<top>\n<num>1</num><title>cat on a mat</title>\n</top>\n<top>\n<num>2</num><title>stock market</title>\n</top>\n"
QRELS = "1 0 d1 1\n1 0 d4 1\n2 0 d3 1\n2 0 d5 1\n"

TASK = """id: toy-repro
version: 1
kind: retrieval
data:
  corpus: {{format: trec-docs, sources: [{{data_dir: docs.trec, sha256: {docs}}}]}}
  topics: {{format: trec-topics, sources: [{{data_dir: topics.trec, sha256: {topics}}}]}}
  qrels: {{format: trec-qrels, sources: [{{data_dir: qrels, sha256: {qrels}}}]}}
protocol: {{cutoff: 1000, rel_threshold: 1}}
metrics:
  - {{name: nDCG@10, higher_is_better: true, primary: true}}
  - {{name: R@100, higher_is_better: true}}
{references}"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write_task(root: Path, references: str = "") -> Path:
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    path = tasks / "toy.yaml"
    path.write_text(TASK.format(docs=_sha(DOCS), topics=_sha(TOPICS), qrels=_sha(QRELS), references=references))
    return path


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny retrieval task with its data, one real bm25s run of it stored under results/."""
    pytest.importorskip("bm25s")
    data = tmp_path / "data"
    data.mkdir()
    for name, text in (("docs.trec", DOCS), ("topics.trec", TOPICS), ("qrels", QRELS)):
        (data / name).write_text(text)
    _write_task(tmp_path)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tmp_path / "tasks"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    rc = main(["run", "--method", "bm25s", "--params", "stemmer=none", "--task", "toy-repro",
               "--results", str(tmp_path / "results"), "--no-progress"])
    assert rc == 0
    return tmp_path


def _stored(results: Path):
    (path,) = sorted((results / "toy-repro").glob("*.json"))
    return path, ResultStore(results).load(path)


def _log(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / reproduce.LOG_NAME).read_text().splitlines()]


def test_reproduce_grades_a_real_run_ok_and_logs_it(toy: Path, capsys: pytest.CaptureFixture) -> None:
    results = toy / "results"
    path, res = _stored(results)
    before = path.read_bytes()
    assert main(["reproduce", res.run_id[:6], "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "OK     " + res.run_id in out and "0 FAIL" in out
    lines = _log(results)
    assert {(ln["run_id"], ln["metric"], ln["grade"]) for ln in lines} == {
        (res.run_id, "nDCG@10", "OK"), (res.run_id, "R@100", "OK"),
        (res.run_id, "Judged@10", "OK")}  # the IR kinds' own diagnostic is graded too
    env = lines[0]["environment"]
    assert {"harness_version", "git_commit", "python", "torch", "device"} <= set(env) and lines[0]["date"]
    assert path.read_bytes() == before  # the stored result is never rewritten
    # a second run appends; earlier lines stay byte for byte
    first = (results / reproduce.LOG_NAME).read_bytes()
    assert main(["reproduce", "--task", "toy-repro", "--results", str(results)]) == 0
    assert (results / reproduce.LOG_NAME).read_bytes().startswith(first) and len(_log(results)) == 2 * len(lines)


def test_reproduce_fails_on_a_doctored_stored_value(toy: Path, capsys: pytest.CaptureFixture) -> None:
    path, res = _stored(toy / "results")
    # the doctored copy is written through the store API, so it is a valid result with a false number
    doc = res.to_dict()
    true_value = doc["metrics"]["nDCG@10"]["value"]
    doc["metrics"]["nDCG@10"]["value"] = 0.9999
    doctored = toy / "doctored"
    arts = {name: load_artifact(path, res, name) for name in (res.artifacts or {})}
    ResultStore(doctored).write(doc, items=load_items(path, res), item_key=res.items.key, artifacts=arts)
    assert main(["reproduce", res.run_id, "--results", str(doctored)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "expected 0.9999" in out and f"got {true_value:.6g}" in out
    grades = {ln["metric"]: ln for ln in _log(doctored)}
    assert grades["nDCG@10"]["grade"] == "FAIL" and grades["nDCG@10"]["got"] == pytest.approx(true_value)
    assert grades["R@100"]["grade"] == "OK"


def test_grade_value_ok_okish_fail_and_timings_never_ok() -> None:
    policy = reproduce.load_policy()
    ir = policy.kind_of("nDCG@10")[1]
    assert reproduce.grade_value(0.5, 0.5 + 1e-13, ir) == "OK"
    assert reproduce.grade_value(0.5, 0.5 + 5e-7, ir) == "OKish"
    assert reproduce.grade_value(0.5, 0.51, ir) == "FAIL"
    assert reproduce.grade_value(0.5, None, ir) == "FAIL"
    kind, lat = policy.kind_of("prefill_ms_p50")
    assert kind == "latency" and reproduce.grade_value(10.0, 10.0, lat) == "OKish"
    assert reproduce.grade_value(10.0, 30.0, lat) == "FAIL"
    assert policy.kind_of("ppl")[0] == "perplexity" and policy.kind_of("acc_norm")[0] == "accuracy"
    assert reproduce.published_precision(0.5058) == pytest.approx(5e-5)


@pytest.mark.parametrize(("text", "message"), [
    ("kinds: {ir: {abs: -0.1}}\ndefault: ir\n", "field 'kinds.ir.abs'"),
    ("kinds: {ir: {abs: 0.1}}\nmetrics: {'nDCG@*': irr}\ndefault: ir\n", "field 'metrics.nDCG@*': unknown metric kind 'irr'"),
    ("kinds: {ir: {abs: 0.1}}\ndefault: latency\n", "field 'default': unknown metric kind 'latency'"),
    ("kinds: {ir: {abs: 0.1, relative: 0.2}}\ndefault: ir\n", "field 'kinds.ir.relative': unknown key"),
    ("- just a list\n", "must be a mapping"),
])
def test_bad_tolerance_files_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tol.yaml"
    path.write_text(text)
    with pytest.raises(HarnessError) as exc:
        reproduce.load_policy(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_bad_tolerance_fails_before_any_rerun(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "tol.yaml"
    bad.write_text("kinds: {ir: {rel: -1}}\ndefault: ir\n")
    assert main(["reproduce", "--all", "--results", str(tmp_path / "none"), "--tolerance", str(bad)]) == 2
    assert "field 'kinds.ir.rel'" in capsys.readouterr().err


REF = """references:
  - source: "a paper, table 2"
    condition: {{method: bm25s, params: {{stemmer: none}}}}
    metric: {metric}
    value: {value}
    tolerance: {tolerance}
    note: another tokeniser
"""


@pytest.mark.parametrize(("metric", "value", "tolerance", "field"), [
    ("MAP", 0.5, 0.01, "references[0].metric"),
    ("nDCG@10", 0.5, -0.01, "references[0].tolerance"),
    ("nDCG@10", ".nan", 0.01, "references[0].value"),
])
def test_references_are_validated_at_load(tmp_path: Path, metric: str, value, tolerance, field: str) -> None:
    path = _write_task(tmp_path, REF.format(metric=metric, value=value, tolerance=tolerance))
    with pytest.raises(TaskDefinitionError) as exc:
        load_task_file(path)
    assert str(path) in str(exc.value) and field in str(exc.value)


def test_references_do_not_change_run_ids(tmp_path: Path) -> None:
    from harness.runner import RunRequest, protocol_for

    plain = load_task_file(_write_task(tmp_path))
    with_refs = load_task_file(_write_task(tmp_path, REF.format(metric="nDCG@10", value=0.5, tolerance=0.1)))
    assert len(with_refs.references) == 1 and with_refs.references[0].condition.method == "bm25s"
    req = RunRequest(method="bm25s")
    assert protocol_for(plain, req) == protocol_for(with_refs, req)


def test_references_graded_and_shown_as_labelled_unranked_rows(toy: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    from harness import tasks as tasksmod
    from harness.report import build_site

    results = toy / "results"
    _path, res = _stored(results)
    got = res.value("nDCG@10")
    refs = REF.format(metric="nDCG@10", value=round(got, 4), tolerance=0.01)
    refs += REF.format(metric="R@100", value=0.1, tolerance=0.01).removeprefix("references:\n")
    _write_task(toy, refs)
    tasksmod._cache.clear()
    assert main(["reproduce", "--references", "--results", str(results)]) == 1  # the R@100 figure is far off
    out = capsys.readouterr().out
    assert "OK     " + res.run_id in out and "FAIL" in out and "expected 0.1" in out
    lines = _log(results)
    assert {ln["check"] for ln in lines} == {"reference"} and all(ln["reference"]["source"] for ln in lines)

    site = toy / "site"
    build_site(results, site)
    (board_json,) = sorted((site / "boards").glob("toy-repro*.json"))
    board = json.loads(board_json.read_text())
    assert [r["run_id"] for r in board["rows"]] == [res.run_id]  # the reference is not an entry
    assert len(board["references"]) == 2 and all(r["rank"] is None for r in board["references"])
    html = board_json.with_suffix(".html").read_text()
    assert "Published reference scores" in html and "published reference" in html and "a paper, table 2" in html
    run_html = (site / "runs" / f"{res.run_id}.html").read_text()
    assert "Against published references" in run_html and "FAIL" in run_html


def test_board_and_run_page_show_the_last_grade(toy: Path) -> None:
    from harness.report import build_site

    results = toy / "results"
    _path, res = _stored(results)
    assert main(["reproduce", res.run_id, "--results", str(results)]) == 0
    build_site(results, toy / "site")
    (board_json,) = sorted((toy / "site" / "boards").glob("toy-repro*.json"))
    row = json.loads(board_json.read_text())["rows"][0]
    assert row["reproduction"]["grade"] == "OK" and row["reproduction"]["date"]
    assert 'class="badge grade grade-ok"' in board_json.with_suffix(".html").read_text()
    run_html = (toy / "site" / "runs" / f"{res.run_id}.html").read_text()
    assert "Reproduction (last re-run)" in run_html and row["reproduction"]["date"] in run_html


def test_last_grades_takes_the_latest_session_and_the_worst_metric() -> None:
    def line(date: str, session: str, metric: str, grade: str) -> dict:
        return {"run_id": "r1", "date": date, "session": session, "metric": metric, "grade": grade, "check": "rerun"}

    lines = [line("2026-01-01T00:00:00", "a", "x", "FAIL"), line("2026-01-02T00:00:00", "b", "x", "OK"),
             line("2026-01-02T00:00:00", "b", "y", "OKish")]
    last = reproduce.last_grades(lines)
    assert last["r1"]["grade"] == "OKish" and last["r1"]["date"] == "2026-01-02T00:00:00"
    assert [m["metric"] for m in last["r1"]["metrics"]] == ["x", "y"]


def test_unparsable_log_lines_are_problems_not_crashes(tmp_path: Path) -> None:
    (tmp_path / reproduce.LOG_NAME).write_text('{"run_id": "r", "metric": "m", "grade": "OK", "date": "d"}\nnot json\n[1]\n')
    lines, problems = reproduce.read_log(tmp_path)
    assert len(lines) == 1 and [p[1].split(":")[0] for p in problems] == ["line 2", "line 3"]


def test_nothing_selected_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reproduce", "--results", str(tmp_path)]) == 2
    assert "give run ids" in capsys.readouterr().err
    assert main(["reproduce", "0123abcd", "--results", str(tmp_path)]) == 2
    assert "no stored result with run id" in capsys.readouterr().err


def test_a_cell_that_cannot_be_rerun_here_is_a_named_fail(toy: Path, capsys: pytest.CaptureFixture) -> None:
    from harness import tasks as tasksmod

    _path, res = _stored(toy / "results")
    (toy / "tasks" / "toy.yaml").unlink()  # its task is no longer defined here
    tasksmod._cache.clear()
    assert main(["reproduce", "--all", "--results", str(toy / "results")]) == 1
    out = capsys.readouterr().out
    assert f"FAIL   {res.run_id}" in out and "cannot re-run here" in out and "toy-repro" in out


def test_a_rerun_with_another_identity_says_what_changed() -> None:
    """A stored v1 cell re-run by v2 code gets another run id: the grade's note says the method
    version changed (differences are then expected), and likewise for the task definition."""
    from harness.reproduce import identity_change

    stored = {"method": {"name": "magnitude"}, "task": {"definition_digest": "a" * 64}, "model": {"digest": "m"}}
    now = {"method": {"name": "magnitude", "version": 2}, "task": {"definition_digest": "a" * 64},
           "model": {"digest": "m"}}
    assert "method version 1 -> 2" in identity_change(stored, now)
    assert "task definition" not in identity_change(stored, now)
    now["task"]["definition_digest"] = "b" * 64
    assert "task definition aaaa" in identity_change(stored, now)
    assert identity_change(stored, stored) == "the re-run has another run id"
