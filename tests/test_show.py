"""`harness show`: one stored run, with intervals from the stored stderr, provenance and reproduce."""

import json
import math

import pytest

from fixtures_results import make_doc, synth_items, write_synthetic
from harness.cli import main
from harness.errors import HarnessError
from harness.results import ResultStore
from harness.show import Z95, interval, show, show_data


def _stored_with_stderr(tmp_path):
    store = ResultStore(tmp_path)
    doc = make_doc(method="wanda", params={"sparsity": 0.5, "batch_size": 4}, task_id="wikitext2", limit=8,
                   metrics={"ppl": 30.0, "nll": math.log(30.0)}, measured_sparsity=0.5, prune_seconds=12.5,
                   non_semantic=["batch_size"])
    doc["metrics"]["ppl"].update(n=8, stderr=2.0)
    doc["metrics"]["nll"].update(n=8)  # no stderr stored: no interval
    doc["provenance"]["calibration"] = {"set": "c4-sample1k", "nsamples": 32, "seqlen": 512, "seed": 0}
    # per-window NLLs consistent with the stored figures (the store re-derives ppl and nll from them)
    items = [{"item": f"window-{i:04d}", "nll": math.log(30.0), "ppl": 30.0, "tokens": 2047} for i in range(8)]
    path = store.write(doc, items=items)
    return doc, path


def test_interval_is_value_plus_minus_1_96_stderr():
    low, high = interval(10.0, 1.0)
    assert low == pytest.approx(10 - Z95) and high == pytest.approx(10 + Z95)
    assert interval(10.0, None) is None


def test_text_view_has_every_section_and_the_ci(tmp_path):
    doc, _ = _stored_with_stderr(tmp_path)
    text = show(doc["run_id"][:6], tmp_path)
    for section in ("METHOD", "MODEL", "TASK", "METRICS", "EFFICIENCY", "PROVENANCE", "ARTIFACTS", "REPRODUCE"):
        assert f"\n{section}\n" in text
    assert "wanda (pruning)" in text and "sparsity=0.5" in text
    assert "batch_size=4  (not in the run id)" in text
    assert "limit=8, seqlen=2048" in text
    ppl = next(line for line in text.splitlines() if line.strip().startswith("ppl"))
    assert "[26.08, 33.92]" in ppl and "2.0000" in ppl  # 30 -+ 1.96 * 2
    nll = next(line for line in text.splitlines() if line.strip().startswith("nll"))
    assert "[" not in nll  # no stderr, no interval
    assert "set=c4-sample1k, nsamples=32, seqlen=512, seed=0" in text
    assert doc["provenance"]["reproduce"] in text.split("REPRODUCE")[1]
    assert doc["provenance"]["data"][0]["sha256"] in text


def test_labels_are_aligned_across_sections(tmp_path):
    doc, path = _stored_with_stderr(tmp_path)
    data = show_data(next(iter(ResultStore(tmp_path).scan()[0])))
    lines = show(doc["run_id"], tmp_path).splitlines()
    rows = [row for rows in data["sections"].values() for row in rows]
    col = 2 + max(len(label) for label, _ in rows) + 2  # every value starts in this column
    for label, value in rows:
        if col + len(value) <= 120:  # longer values wrap, continued in the same column
            assert any(line[:col].strip() == label and line[col:] == value for line in lines), label
    assert len(rows) > 20
    assert max(len(line) for line in lines) <= 120 or any(" " not in line.strip() for line in lines)


def test_long_values_wrap_in_the_value_column(tmp_path):
    from harness.show import _wrapped

    lines = _wrapped("packages", ", ".join(f"package{i} 1.{i}.0" for i in range(30)), 10)
    assert len(lines) > 2 and all(len(line) <= 120 for line in lines)
    assert all(line.startswith(" " * 14) and line[14] != " " for line in lines[1:])


def test_json_view_and_cli(tmp_path, capsys):
    doc, path = _stored_with_stderr(tmp_path)
    assert main(["show", str(path), "--results", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_id"] == doc["run_id"] and data["reproduce"] == doc["provenance"]["reproduce"]
    ppl = next(m for m in data["metrics"] if m["metric"] == "ppl")
    assert ppl["primary"] and ppl["ci95"] == pytest.approx([30 - 2 * Z95, 30 + 2 * Z95])
    assert data["metrics"][0]["metric"] == "ppl"  # primary first


def test_failed_run_shows_its_error_and_unknown_ids_are_named(tmp_path, capsys):
    store = ResultStore(tmp_path)
    doc = make_doc(method="sparsegpt", params={"sparsity": 0.5}, task_id="boolq", status="failed",
                   error={"type": "RuntimeError", "message": "out of memory"})
    store.write(doc)
    text = show(doc["run_id"], tmp_path)
    assert "ERROR" in text and "out of memory" in text and "METRICS" not in text
    write_synthetic(store, method="dense", params={}, task_id="boolq", quality=0.5)
    with pytest.raises(HarnessError, match="no stored result"):
        show("ffffffffffff", tmp_path)
    assert main(["show", "ffffffff", "--results", str(tmp_path)]) == 2
    assert "no stored result" in capsys.readouterr().err
