"""Results that defend themselves: each bad case of the issue, end to end on a toy task kind.

Identity (the task's full definition, the method's version, the model's content), tamper evidence
(body digest, metrics re-derived from the items, artifacts), a robust store (hostile JSON, orphan
files and --repair, quarantine, writable folders, the per-run-id lock across two processes) and the
cheap checks before any model loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import trust_toy
from harness import config
from harness import results as resultsmod
from harness import tasks as tasksmod
from harness.cli import main
from harness.errors import HarnessError, ParamError
from harness.results import ResultStore, body_digest
from harness.runner import RunRequest, check_request, execute

TESTS_DIR = Path(__file__).parent


@pytest.fixture
def toy(tmp_path, monkeypatch):
    trust_toy.install()
    tasks = tmp_path / "tasks"
    trust_toy.write_task(tasks)
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks))
    log = tmp_path / "evaluations.log"
    monkeypatch.setenv("TRUST_TOY_LOG", str(log))
    yield SimpleNamespace(root=tmp_path, tasks=tasks, results=tmp_path / "results", log=log)
    trust_toy.uninstall()
    tasksmod._cache.pop(tasks.resolve(), None)


def run_toy(results: Path, **kw):
    return execute(RunRequest(method=trust_toy.METHOD_NAME, tasks=["toy"], results_dir=results, progress=False, **kw))


def evaluations(toy) -> int:
    return len(toy.log.read_text().splitlines()) if toy.log.exists() else 0


def rewrite(path: Path, edit, *, update_body_digest: bool = True) -> None:
    """Edit a stored result as a careful forger would (the body digest recomputed too)."""
    doc = json.loads(path.read_text())
    edit(doc)
    if update_body_digest:
        doc["body_sha256"] = body_digest(doc)
    path.write_text(json.dumps(doc, indent=2))


def validate(capsys, *args: str) -> tuple[int, str]:
    code = main(["validate", *args])
    return code, capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Identity


def test_a_stored_result_records_its_full_identity_and_provenance(toy):
    (out,) = run_toy(toy.results)
    doc = json.loads(out.path.read_text())
    assert out.status == "ok"
    assert doc["task"]["definition_digest"] == tasksmod.definition_digest(tasksmod.get_task("toy"))
    assert doc["method"]["version"] == 1 and doc["model"]["digest"] is None
    assert doc["body_sha256"] == body_digest(doc)
    src = doc["provenance"]["method"]
    assert src["module"] == "trust_toy" and src["distribution"] == "trust_toy (no installed distribution)"
    assert len(src["source_sha256"]) == 64


def test_a_changed_task_definition_makes_the_result_stale_and_is_never_reused(toy, capsys):
    (first,) = run_toy(toy.results)
    trust_toy.write_task(toy.tasks, description="prose only")  # not part of the definition
    assert run_toy(toy.results)[0].status == "skipped"
    trust_toy.write_task(toy.tasks, n=4)  # the protocol changed, the version did not
    code, out = validate(capsys, "--results", str(toy.results))
    assert code == 1 and f"STALE   {first.path}: field 'task.definition_digest': stale" in out
    assert "stale" in dict(ResultStore(toy.results).scan()[1])[first.path]
    from harness.report import build_site

    summary = build_site(toy.results, toy.root / "site")  # left out of the board, on the problems page
    assert summary.results == 0 and "stale" in dict(summary.problems)[f"toy/{first.path.name}"]
    (second,) = run_toy(toy.results)
    assert second.status == "ok" and second.run_id != first.run_id and evaluations(toy) == 2
    assert first.path.exists()  # the stale result is kept (shown as stale), never deleted


def test_the_method_version_enters_the_run_id(toy, monkeypatch):
    (first,) = run_toy(toy.results)
    monkeypatch.setattr(trust_toy.ToyMethod, "version", 2)
    (second,) = run_toy(toy.results)
    assert second.status == "ok" and second.run_id != first.run_id
    assert json.loads(second.path.read_text())["method"]["version"] == 2


def test_the_definition_digest_covers_data_pins_formats_protocol_and_metrics_only():
    task = tasksmod.get_task("scifact")
    ref = tasksmod.definition_digest(task)
    corpus = task.data["corpus"]
    changed = [
        dataclasses.replace(task, data=task.data | {"corpus": dataclasses.replace(corpus, options={"member": "x.csv"})}),
        dataclasses.replace(task, data=task.data | {"corpus": dataclasses.replace(corpus, format="trec-docs")}),
        dataclasses.replace(task, data=task.data | {"corpus": dataclasses.replace(
            corpus, sources=(dataclasses.replace(corpus.sources[0], sha256="0" * 64),))}),
        dataclasses.replace(task, protocol=task.protocol | {"cutoff": 100}),
        dataclasses.replace(task, metrics=task.metrics[:1]),
    ]
    assert len({tasksmod.definition_digest(t) for t in changed} | {ref}) == len(changed) + 1
    same = [
        dataclasses.replace(task, title="another title", description="other prose", tags=("x",)),
        dataclasses.replace(task, data=task.data | {"corpus": dataclasses.replace(
            corpus, sources=(dataclasses.replace(corpus.sources[0], path="moved/scifact.zip"),))}),
    ]
    assert {tasksmod.definition_digest(t) for t in same} == {ref}


def test_model_digests_pin_content(tmp_path):
    from harness.llm import models

    assert models.model_digest("smollm2-135m") == "sha256:" + models.EMBEDDED["smollm2-135m"]["gguf_sha256"]
    assert models.model_digest("org/name@abc123") == "revision:abc123"
    assert models.model_digest("org/name") == "revision:main"
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = models.model_digest(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert before.startswith("dir-sha256:") and models.model_digest(str(tmp_path)) != before


# ---------------------------------------------------------------------------------------------
# Tamper evidence


def test_an_edited_metric_is_a_named_problem_and_leaves_the_rankings(toy, capsys):
    from harness.report import build_site

    (out,) = run_toy(toy.results)
    stored = json.loads(out.path.read_text())["metrics"]["score"]["value"]
    rewrite(out.path, lambda d: d["metrics"]["score"].update(value=0.9999))
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1
    assert f"INVALID {out.path}: field 'metrics.score.value': stored 0.9999, recomputed from 3 items {stored!r}" in text
    summary = build_site(toy.results, toy.root / "site")
    assert summary.results == 0 and [p for p, _ in summary.problems] == [f"toy/{out.path.name}"]
    assert "metrics.score.value" in summary.problems[0][1]


def test_an_edit_without_the_body_digest_is_caught_by_the_digest(toy, capsys):
    (out,) = run_toy(toy.results)
    rewrite(out.path, lambda d: d["efficiency"].update(eval_seconds=0.0), update_body_digest=False)
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and "field 'body_sha256'" in text


def test_an_edited_or_missing_artifact_is_a_named_problem(toy, capsys):
    (out,) = run_toy(toy.results)
    art = json.loads(out.path.read_text())["artifacts"]["run"]
    blob = (out.path.parent / art["file"]).resolve()
    blob.write_bytes(b"another run")
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and "field 'artifacts.run.sha256'" in text
    blob.unlink()
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and "field 'artifacts.run'" in text and "is missing" in text


def test_an_adapter_whose_source_changed_is_a_warning_not_invalid(toy, capsys):
    (out,) = run_toy(toy.results)
    rewrite(out.path, lambda d: d["provenance"]["method"].update(source_sha256="0" * 64))
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 0 and f"WARNING {out.path}: adapter source of {trust_toy.METHOD_NAME} changed" in text


# ---------------------------------------------------------------------------------------------
# A robust store


def test_deeply_nested_and_huge_files_are_clear_problems(toy, capsys, monkeypatch):
    from harness.report import build_site

    (out,) = run_toy(toy.results)
    deep = toy.results / "toy" / "0123456789abcdef.json"
    deep.write_text("[" * 1000 + "]" * 1000)
    nested = toy.results / "toy" / "fedcba9876543210.json"
    doc = json.loads(out.path.read_text())
    doc["method"]["params"]["x"] = json.loads("{\"a\":" * 900 + "1" + "}" * 900)
    nested.write_text(json.dumps(doc))
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and f"INVALID {deep}: JSON nested too deeply" in text and f"INVALID {nested}:" in text
    summary = build_site(toy.results, toy.root / "site")
    assert summary.results == 1 and len(summary.problems) == 2
    monkeypatch.setattr(resultsmod, "MAX_RESULT_BYTES", 100)
    code, text = validate(capsys, "--results", str(toy.results))
    assert f"INVALID {out.path}: " in text and "more than the" in text


def test_orphans_are_reported_and_repair_removes_only_them(toy, capsys):
    (out,) = run_toy(toy.results)
    kept = {p: p.read_bytes() for p in toy.results.rglob("*") if p.is_file() and ".locks" not in p.parts}
    orphans = [toy.results / "toy" / f".{out.path.name}.x1y2.tmp", toy.results / "toy" / "00000000deadbeef.items.jsonl",
               toy.results / "artifacts" / "ab" / ".abcdef.tmp"]
    for p in orphans:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("partial")
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and all(f"ORPHAN  {p}" in text for p in orphans)
    code, text = validate(capsys, "--results", str(toy.results), "--repair")
    assert code == 0 and all(f"REMOVED {p}" in text for p in orphans)
    assert not any(p.exists() for p in orphans)
    assert all(p.read_bytes() == data for p, data in kept.items())  # nothing valid touched


def test_an_ok_result_without_its_sidecar_is_not_stored(toy):
    (out,) = run_toy(toy.results)
    (out.path.parent / f"{out.run_id}.items.jsonl").unlink()
    (again,) = run_toy(toy.results)
    assert again.status == "ok" and evaluations(toy) == 2
    ResultStore(toy.results).check(again.path)


def test_force_over_a_corrupt_file_quarantines_it_and_says_so(toy, caplog):
    (out,) = run_toy(toy.results)
    out.path.write_text("{ not json")
    with caplog.at_level("INFO", logger="harness"):
        (again,) = run_toy(toy.results, force=True)
    moved = list((toy.results / ".quarantine" / "toy").glob(f"{out.path.name}.*"))
    assert again.status == "ok" and len(moved) == 1 and moved[0].read_text() == "{ not json"
    assert f"moved the invalid stored file {out.path} to {moved[0]}" in caplog.text
    ResultStore(toy.results).check(again.path)
    assert len(ResultStore(toy.results).scan()[0]) == 1  # the quarantine is not scanned


def test_an_unwritable_task_subfolder_fails_before_any_work(toy):
    toy.results.mkdir()
    (toy.results / "toy").write_text("a file where the task's folder should be")
    with pytest.raises(HarnessError, match="not writable"):
        run_toy(toy.results)
    assert evaluations(toy) == 0


def test_two_concurrent_identical_runs_compute_once(toy):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        import trust_toy
        trust_toy.install()
        from harness.runner import RunRequest, execute
        (out,) = execute(RunRequest(method=trust_toy.METHOD_NAME, tasks=["toy"], results_dir={str(toy.results)!r},
                                    progress=False))
        print(out.status)
    """)
    env = os.environ | {"TRUST_TOY_SLEEP": "2", "PYTHONPATH": str(config.REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    statuses = sorted(p.communicate(timeout=300)[0].strip() for p in procs)
    assert statuses == ["ok", "skipped"] and evaluations(toy) == 1


def test_report_strict_exits_non_zero_on_a_problem(toy, capsys):
    run_toy(toy.results)
    site = str(toy.root / "site")
    assert main(["report", "--results", str(toy.results), "--out", site, "--strict"]) == 0
    (toy.results / "toy" / "0123456789abcdef.json").write_text("{}")
    assert main(["report", "--results", str(toy.results), "--out", site]) == 0
    assert main(["report", "--results", str(toy.results), "--out", site, "--strict"]) == 1
    assert "problem: toy/0123456789abcdef.json" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Cheap checks before any model loads


@pytest.mark.parametrize("change, message", [
    ({"batch_size": -1}, "--batch-size -1"),
    ({"device": "tpu"}, "--device 'tpu': unsupported"),
])
def test_bad_run_settings_fail_before_the_model_loads(change, message, tmp_path):
    req = RunRequest(method="magnitude", params={"sparsity": "0.5"}, model="smollm2-135m", tasks=["wikitext2"],
                     results_dir=tmp_path)
    with pytest.raises(HarnessError, match=message):
        check_request(dataclasses.replace(req, **change))


def test_blocks_beyond_the_models_block_count_fail_before_the_model_loads(tmp_path):
    req = RunRequest(method="shortgpt", params={"blocks": "999"}, model="smollm2-135m", tasks=["wikitext2"],
                     results_dir=tmp_path)
    with pytest.raises(ParamError, match="blocks=999: must remove between 1 and 29 of the model's 30 blocks"):
        check_request(req)
    check_request(dataclasses.replace(req, params={"blocks": "4"}))


def test_git_dirty_counts_untracked_task_files(tmp_path, monkeypatch):
    from harness import provenance

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text("id: a\n")
    (tmp_path / ".gitignore").write_text("tasks/*.ignored\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    assert provenance.git_state()[1] is False
    (tmp_path / "tasks" / "b.ignored").write_text("ignored")
    assert provenance.git_state()[1] is False
    (tmp_path / "tasks" / "new.yaml").write_text("id: new\n")
    assert provenance.git_state()[1] is True


def test_builtin_adapters_are_recorded_as_the_harness():
    from harness import __version__, provenance
    from harness.registry import get_method

    src = provenance.method_source(get_method("magnitude").cls)
    assert src["distribution"] == f"harness {__version__}" and src["module"] == "methods.pruning.magnitude"


# ---------------------------------------------------------------------------------------------
# Storage budget


RESULTS_BUDGET_MB = 30  # stated in README ("Storage")


def test_committed_results_stay_under_their_budget():
    root = config.REPO_ROOT / "results"
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < RESULTS_BUDGET_MB * 1e6, f"results/ holds {total / 1e6:.1f} MB, over its {RESULTS_BUDGET_MB} MB budget"


def test_an_artifact_no_result_names_is_an_orphan_once_old_enough(toy, capsys):
    """A blob under results/artifacts that no stored result names is reported (and removed by
    --repair) once older than ORPHAN_BLOB_AGE; the blobs results name, and a young one (a writer
    stores its blobs just before its result file), are kept."""
    import os
    import time

    (out,) = run_toy(toy.results)
    named = [p for p in (toy.results / "artifacts").rglob("*") if p.is_file()]
    assert named  # the toy's run artifact
    old = time.time() - 2 * resultsmod.ORPHAN_BLOB_AGE
    for p in named:
        os.utime(p, (old, old))
    stray = toy.results / "artifacts" / "ff" / ("f" * 64)
    young = toy.results / "artifacts" / "ee" / ("e" * 64)
    for p in (stray, young):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"left behind")
    os.utime(stray, (old, old))
    code, text = validate(capsys, "--results", str(toy.results))
    assert code == 1 and f"ORPHAN  {stray}: artifact that no stored result names" in text
    assert str(young) not in text and not any(str(p) in text for p in named)
    code, text = validate(capsys, "--results", str(toy.results), "--repair")
    assert code == 0 and not stray.exists() and young.exists() and all(p.exists() for p in named)
