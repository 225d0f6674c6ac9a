"""Exports for neighbouring tools: lm-eval results JSON (read back by lm-eval's own table code) and
ir_metadata beside the TREC run file."""

import json

import pandas as pd
import pytest
import yaml

from fixtures_results import make_doc, synth_items, write_synthetic
from harness.cli import main
from harness.compare import find_runs
from harness.errors import HarnessError
from harness.exports import ir_metadata, lm_eval_results
from harness.ir import runfile
from harness.results import ResultStore


def _lm_runs(store):
    for task, metrics in (("boolq", {"acc": 0.6, "acc_norm": 0.55}), ("wikitext2", {"ppl": 25.0, "nll": 3.2})):
        doc = make_doc(method="wanda", params={"sparsity": 0.5}, task_id=task, limit=50, metrics=metrics,
                       measured_sparsity=0.5)
        first = next(iter(doc["metrics"]))
        doc["metrics"][first].update(n=50, stderr=0.07)
        store.write(doc)  # figures given without per-item rows (the store would re-derive them from rows)
    return find_runs([r.run_id for r in store.scan()[0]], store.root)


def test_lm_eval_layout_and_key_names(tmp_path):
    doc = lm_eval_results(_lm_runs(ResultStore(tmp_path)))
    boolq = doc["results"]["boolq"]
    assert boolq["acc,none"] == 0.6 and boolq["acc_stderr,none"] == 0.07
    assert boolq["acc_norm_stderr,none"] == "N/A"  # no stderr stored: lm-eval's marker
    assert doc["results"]["wikitext2"]["ppl,none"] == 25.0
    for key in ("configs", "versions", "n-shot", "higher_is_better", "n-samples", "group_subtasks"):
        assert set(doc[key]) == {"boolq", "wikitext2"}, key
    assert doc["n-shot"]["boolq"] == 0 and doc["higher_is_better"]["wikitext2"]["ppl"] is False
    assert doc["config"]["model"] == "hf" and "pretrained=smollm2-135m" in doc["config"]["model_args"]
    assert doc["config"]["limit"] == 50 and doc["config"]["pruning"]["method"] == "wanda"
    assert doc["harness"]["boolq"]["run_id"]


def test_lm_eval_own_table_reads_the_export(tmp_path):
    utils = pytest.importorskip("lm_eval.utils")
    pytest.importorskip("pytablewriter")
    table = utils.make_table(json.loads(json.dumps(lm_eval_results(_lm_runs(ResultStore(tmp_path))))))
    row = next(line for line in table.splitlines() if line.startswith("|boolq"))
    cells = [c.strip() for c in row.split("|")]
    assert "acc" in cells and float(cells[cells.index("acc") + 2]) == 0.6 and float(cells[-2]) == 0.07


def test_lm_eval_refuses_mixed_methods_and_ir_runs(tmp_path):
    store = ResultStore(tmp_path)
    runs = _lm_runs(store)
    write_synthetic(store, method="dense", params={}, task_id="arc_easy", quality=0.5)
    dense = [r for r in store.scan()[0] if r.result.method.name == "dense"]
    with pytest.raises(HarnessError, match="one method, params and model"):
        lm_eval_results(runs + dense)
    write_synthetic(store, method="bm25", params={}, task_id="msmarco-dev-small", quality=0.5, model=None)
    ir = [r for r in store.scan()[0] if r.result.method.name == "bm25"]
    with pytest.raises(HarnessError, match="not a language-model run"):
        lm_eval_results(ir)


def _ir_run(store):
    doc = make_doc(method="bm25", params={"k1": 0.9}, task_id="msmarco-dev-small", model=None,
                   metrics={"nDCG@10": 0.5, "RR@10": 0.6, "R@100": 0.7, "AP": 0.3})
    frame = pd.DataFrame({"qid": ["1", "1", "2"], "docno": ["d1", "d2", "d3"], "score": [2.0, 1.0, 1.0],
                          "rank": [0, 1, 0]})
    return store.write(doc, artifacts={"run": (runfile.FORMAT, runfile.from_frame(frame))})


def test_ir_metadata_fields(tmp_path):
    store = ResultStore(tmp_path)
    path = _ir_run(store)
    (stored,) = find_runs([str(path)], tmp_path)
    meta = ir_metadata(stored)
    for key in ("tag", "research goal", "platform", "implementation", "data", "method"):
        assert key in meta
    assert meta["tag"] == stored.run_id
    assert meta["method"]["retrieval"][0] == {"name": "bm25", "method": "retrieval", "params": {"k1": 0.9},
                                              "implementation": "methods.retrieval.bm25"}
    assert meta["data"]["test collection"]["name"] == "msmarco-dev-small"
    assert meta["implementation"]["executable"]["cmd"] == stored.result.provenance.reproduce
    assert meta["research goal"]["evaluation"]["results"]["nDCG@10"] == 0.5


def test_cli_writes_the_run_file_and_its_description_side_by_side(tmp_path):
    store = ResultStore(tmp_path / "results")
    path = _ir_run(store)
    rid = path.stem
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", rid[:8], "--format", "ir-metadata", "--results", str(store.root), "--out", str(out)]) == 0
    trec = (out / f"{rid}.trec").read_text().splitlines()
    assert trec[0].split()[:3] == ["1", "Q0", "d1"] and len(trec) == 3
    meta = yaml.safe_load((out / f"{rid}.ir_metadata.yaml").read_text())
    assert meta["tag"] == rid
    lm = tmp_path / "lm.json"
    assert main(["export", rid, "--format", "lm-eval", "--results", str(store.root), "--out", str(lm)]) == 2
    assert not lm.exists()
