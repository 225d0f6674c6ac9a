import hashlib
import json
import os

import pytest

from harness.errors import ResultValidationError
from harness.results import ResultStore, body_digest, load_artifact, run_digest, validate_result

BASE = dict(method="wanda", params={"sparsity": 0.5, "pattern": "unstructured"}, model="smollm2-135m",
            task_id="wikitext2", task_version=1, protocol={"seqlen": 2048, "limit": 4})


def make_doc(**over):
    args = dict(BASE) | over
    run_id = run_digest(**args)
    return {
        "schema_version": 1,
        "run_id": run_id,
        "status": "ok",
        "error": None,
        "created_at": "2026-11-22T00:00:00+00:00",
        "method": {"name": args["method"], "family": "pruning", "params": args["params"], "non_semantic": []},
        "model": {"id": args["model"], "random_weights": False, "info": {}},
        "task": {"id": args["task_id"], "version": args["task_version"], "kind": "perplexity", "protocol": args["protocol"]},
        "metrics": {"ppl": {"value": 21.5, "n": 4, "stderr": 0.3, "higher_is_better": False, "primary": True}},
        "pruning": {"measured_sparsity": 0.5},
        "efficiency": {"prune_seconds": 1.0, "eval_seconds": 2.0},
        "provenance": {"harness_version": "0.1.0", "command": "harness run", "reproduce": "harness run", "packages": {},
                       "device": {"type": "cpu"}, "data": []},
    }


def test_digest_changes_with_every_input_and_only_then():
    ref = run_digest(**BASE)
    assert run_digest(**dict(BASE)) == ref
    # key order does not matter
    assert run_digest(**BASE | {"params": {"pattern": "unstructured", "sparsity": 0.5}}) == ref
    changes = [
        {"method": "magnitude"},
        {"params": {"sparsity": 0.6, "pattern": "unstructured"}},
        {"params": {"sparsity": 0.5, "pattern": "2:4"}},
        {"model": "config:tiny-llama"},
        {"task_id": "wikipedia-gensim-ppl"},
        {"task_version": 2},
        {"protocol": {"seqlen": 2048, "limit": 8}},
        {"protocol": {"seqlen": 1024, "limit": 4}},
        {"protocol": {"seqlen": 2048, "limit": None}},
    ]
    digests = {run_digest(**BASE | c) for c in changes}
    assert ref not in digests and len(digests) == len(changes)


def test_write_then_load_roundtrip_with_items(tmp_path):
    store = ResultStore(tmp_path)
    doc = make_doc()
    items = [{"item": "window-0000", "nll": 3.0}, {"item": "window-0001", "nll": 3.2}]
    path = store.write(doc, items=items, artifacts={"run.trec": ("trec", b"1 Q0 d 1 1.0 x\n")})
    assert path == tmp_path / "wikitext2" / f"{doc['run_id']}.json"
    loaded = store.load(path)
    assert loaded["items"]["count"] == 2 and loaded["items"]["key"] == "item"
    good, bad = store.scan()
    assert len(good) == 1 and not bad and good[0].items() == items
    art = loaded.artifacts["run.trec"]
    sha = hashlib.sha256(b"1 Q0 d 1 1.0 x\n").hexdigest()
    assert art.sha256 == sha and art.bytes == 15 and art.file == f"../artifacts/{sha[:2]}/{sha}"
    assert (tmp_path / "artifacts" / sha[:2] / sha).read_bytes() == b"1 Q0 d 1 1.0 x\n"
    assert load_artifact(path, loaded, "run.trec") == ("trec", b"1 Q0 d 1 1.0 x\n")
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"


def test_identical_artifacts_are_stored_once_and_checked_on_every_scan(tmp_path):
    store = ResultStore(tmp_path)
    a, b = make_doc(), make_doc(model="another-model")
    run = {"run": ("ranked-lists+xz", b"same bytes")}
    pa, pb = store.write(a, artifacts=run), store.write(b, artifacts=run)
    blobs = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 1  # two runs, one file
    assert store.scan()[1] == []
    blobs[0].write_bytes(b"replaced")  # a replaced run file is a named problem for both results
    bad = dict(store.scan()[1])
    assert set(bad) == {pa, pb} and "field 'artifacts.run.sha256'" in bad[pa]
    blobs[0].unlink()  # and so is a deleted one
    assert "is missing" in dict(store.scan()[1])[pa]


def test_an_artifact_path_outside_the_results_directory_is_refused(tmp_path):
    store = ResultStore(tmp_path / "results")
    path = store.write(make_doc(), artifacts={"run": ("x", b"data")})
    doc = json.loads(path.read_text())
    doc["artifacts"]["run"]["file"] = "../../../outside"
    doc["body_sha256"] = body_digest(doc)  # a careful editor updates the body digest too
    path.write_text(json.dumps(doc))
    assert "points outside" in dict(store.scan()[1])[path]


def test_never_overwrites_a_different_run(tmp_path):
    store = ResultStore(tmp_path)
    doc = make_doc()
    path = store.write(doc)
    other = json.loads(path.read_text())
    other["model"]["id"] = "someone-else"  # same file name, different inputs
    path.write_text(json.dumps(other))
    with pytest.raises(ResultValidationError, match="holds a different run"):
        store.write(doc)
    assert json.loads(path.read_text())["model"]["id"] == "someone-else"  # untouched


def test_edited_metric_inputs_are_detected(tmp_path):
    doc = make_doc()
    doc["method"]["params"]["sparsity"] = 0.7  # inputs no longer match the run id
    with pytest.raises(ResultValidationError, match="does not match the digest"):
        validate_result(doc, "x.json")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("metrics"), "'metrics' is a required property"),
        (lambda d: d["metrics"]["ppl"].update(value="high"), "metrics.ppl.value"),
        (lambda d: d.update(status="weird"), "status"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d.update(status="failed"), "error"),
        (lambda d: d["metrics"]["ppl"].update(value=float("nan")), "not finite"),
    ],
)
def test_schema_violations_name_the_field(mutate, field):
    doc = make_doc()
    mutate(doc)
    with pytest.raises(ResultValidationError, match=field):
        validate_result(doc, "r.json")


def test_failed_result_carries_no_metric():
    doc = make_doc()
    doc.update(status="failed", error={"type": "RuntimeError", "message": "boom"})
    with pytest.raises(ResultValidationError, match="metrics"):
        validate_result(doc, "r.json")
    doc["metrics"] = {}
    validate_result(doc, "r.json")


def test_scan_reports_corrupt_and_foreign_files_and_touches_nothing(tmp_path):
    store = ResultStore(tmp_path)
    store.write(make_doc())
    (tmp_path / "wikitext2" / "corrupt.json").write_text("{not json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": "world"}))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    good, bad = store.scan()
    assert len(good) == 1
    messages = "\n".join(m for _, m in bad)
    assert "corrupt.json: not valid JSON" in messages and "foreign.json" in messages
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def test_tampered_sidecar_is_detected(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write(make_doc(), items=[{"item": "a", "nll": 1.0}])
    sidecar = path.with_name(path.stem + ".items.jsonl")
    sidecar.write_text('{"item":"a","nll":0.5}\n')
    good, bad = store.scan()
    assert not good and "sha256 differs" in bad[0][1]


def test_unwritable_results_dir_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="not writable"):
        ResultStore(blocker / "results").check_writable()


def test_the_stored_layout_keeps_short_objects_on_one_line_and_changes_no_value():
    from harness.results import body_digest, result_json

    doc = {"run_id": "r", "layers": [{"name": f"layers.{i}.q_proj", "shape": [576, 576], "measured_sparsity": 0.5}
                                     for i in range(3)],
           "metrics": {"ppl": {"value": 42.26127448170821, "n": 8}}, "note": "ü", "empty": {}, "none": None}
    text = result_json(doc, width=80)
    assert json.loads(text) == doc and body_digest(json.loads(text)) == body_digest(doc)
    lines = text.splitlines()
    assert '    {"name": "layers.0.q_proj", "shape": [576, 576], "measured_sparsity": 0.5},' in lines
    assert all(len(line) <= 80 for line in lines if line.strip().startswith("{\"name\""))
    assert result_json(doc, width=10_000) == json.dumps(doc, ensure_ascii=False)  # everything fits: one line


def test_a_large_sidecar_is_stored_compressed_and_reads_back_the_same(tmp_path):
    """Over ITEMS_COMPRESS_OVER bytes the per-item rows go to <run>.items.jsonl.xz; items.sha256
    is still that of the JSON lines; a rewrite in the other form leaves no stale sidecar, and a
    sidecar the result does not name is an orphan."""
    from fixtures_results import make_doc
    from harness.results import ITEMS_COMPRESS_OVER, items_to_jsonl

    store = ResultStore(tmp_path)
    rows = [{"item": f"i{i:05d}", "acc": float(i % 2)} for i in range(2000)]
    assert len(items_to_jsonl(rows)) > ITEMS_COMPRESS_OVER
    doc = make_doc(method="dense", params={}, task_id="boolq", model="smollm2-135m",
                   metrics={"acc": sum(r["acc"] for r in rows) / len(rows)})
    doc["metrics"]["acc"]["n"] = len(rows)
    path = store.write(doc, items=rows)
    xz = path.with_name(path.stem + ".items.jsonl.xz")
    assert xz.is_file() and not path.with_name(path.stem + ".items.jsonl").exists()
    assert xz.stat().st_size < len(items_to_jsonl(rows)) / 5
    stored = store.check(path)
    assert stored.items() == rows and stored.result.items.sha256 == hashlib.sha256(items_to_jsonl(rows)).hexdigest()
    small = rows[:10]
    doc2 = json.loads(path.read_text())
    doc2.pop("body_sha256")
    doc2["metrics"]["acc"] |= {"value": sum(r["acc"] for r in small) / len(small), "n": len(small)}
    store.write(doc2, items=small)
    assert not xz.exists() and store.check(path).items() == small
    xz.write_bytes(b"stale")
    assert [(p.name, "does not name" in why) for p, why in store.orphans()] == [(xz.name, True)]


def test_amend_rewrites_the_same_run_and_records_what_changed(tmp_path):
    store = ResultStore(tmp_path)
    doc = make_doc()
    items = [{"item": "window-0000", "tokens": 2047}, {"item": "window-0001", "tokens": 2047}]
    stored = store.check(store.write(doc, items=items))
    new = stored.result.to_dict()
    new["metrics"]["extra"] = {"value": 1.0, "n": 2, "stderr": None, "higher_is_better": True, "primary": False}
    got = store.amend(stored, new, {"added": ["metrics.extra"], "from": "a test"}, "pytest")
    (amend,) = got.result.provenance.amendments
    assert amend["added"] == ["metrics.extra"] and amend["from"] == "a test" and amend["command"] == "pytest"
    assert amend["at"] and "harness_commit" in amend and "harness_dirty" in amend
    assert got.items() == items and got.run_id == doc["run_id"] and "extra" in got.result.metrics
    assert got.result.body_sha256 != stored.result.body_sha256  # the digest was re-made, and validates
    rows = [dict(r, note="x") for r in items]
    again = store.amend(got, got.result.to_dict(), {"added": ["items[].note"], "from": "a test"}, "pytest", items=rows)
    assert again.items() == rows and len(again.result.provenance.amendments) == 2
    other = again.result.to_dict() | {"method": dict(again.result.to_dict()["method"], params={"sparsity": 0.6})}
    with pytest.raises(ResultValidationError, match="different run"):
        store.amend(again, other, {"changed": ["method.params"], "from": "a test"}, "pytest")
    assert store.check(again.path).items() == rows  # the refused amendment changed nothing
