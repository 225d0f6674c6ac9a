"""The typed stored Result: committed files load and round-trip, the schema file is generated from
the model, and the model refuses what schema version 1 refused."""

import json
from pathlib import Path

import pytest

from harness.errors import ResultValidationError
from harness.results import SCHEMA_PATH, Result, ResultStore, run_digest, schema_text, validate_result

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(p for p in (ROOT / "results").rglob("*.json") if not p.name.startswith("."))


def test_committed_schema_is_generated_from_the_model():
    assert SCHEMA_PATH.read_text() == schema_text(), "run `python -m harness.results --write-schema`"


def test_schema_is_closed_at_the_top_and_requires_what_v1_required():
    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert {"schema_version", "run_id", "status", "created_at", "method", "model", "task", "metrics",
            "efficiency", "provenance"} <= set(schema["required"])


@pytest.mark.skipif(not COMMITTED, reason="no committed results in this checkout")
def test_committed_result_round_trips():
    path = COMMITTED[0]
    raw = json.loads(path.read_text())
    res = ResultStore(ROOT / "results").load(path)
    assert isinstance(res, Result)
    assert res.to_dict() == raw
    assert res.run_id == run_digest(**res.digest_args()) == raw["run_id"]
    assert res.method.name == raw["method"]["name"] and res.task.protocol == raw["task"]["protocol"]
    # ints stay ints, so a re-written file keeps its numbers exactly
    assert all(type(m.value) is type(raw["metrics"][k]["value"]) for k, m in res.metrics.items())
    assert validate_result(res.to_dict(), str(path)) == res


@pytest.mark.skipif(not COMMITTED, reason="no committed results in this checkout")
def test_every_committed_result_validates():
    good, bad = ResultStore(ROOT / "results").scan()
    assert not bad and len(good) == len(COMMITTED)


def _doc() -> dict:
    path = COMMITTED[0]
    return json.loads(path.read_text())


@pytest.mark.skipif(not COMMITTED, reason="no committed results in this checkout")
def test_unknown_top_level_field_and_bool_number_are_refused():
    doc = _doc() | {"metircs": {}}
    with pytest.raises(ResultValidationError, match="'metircs': not a field"):
        validate_result(doc, "r.json")
    doc = _doc()
    name = next(iter(doc["metrics"]))
    doc["metrics"][name]["value"] = True
    with pytest.raises(ResultValidationError, match=f"metrics.{name}.value"):
        validate_result(doc, "r.json")
    doc = _doc()
    doc["task"]["protocol"]["limit"] = 0
    with pytest.raises(ResultValidationError, match="task.protocol"):
        validate_result(doc, "r.json")


@pytest.mark.skipif(not COMMITTED, reason="no committed results in this checkout")
def test_dict_style_reads_still_work_for_old_callers():
    res = ResultStore(ROOT / "results").load(COMMITTED[0])
    raw = _doc()
    assert res["status"] == raw["status"] and res["method"]["name"] == raw["method"]["name"]
    assert res.get("artifacts", "absent") == ("absent" if "artifacts" not in raw else res.artifacts)
    with pytest.raises(KeyError):
        res["nope"]


@pytest.mark.skipif(not COMMITTED, reason="no committed results in this checkout")
def test_generated_schema_agrees_with_the_model_for_other_validators():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(schema_text()))
    assert all(validator.is_valid(json.loads(p.read_text())) for p in COMMITTED)
    mutations = [
        lambda d: d.update(status="failed"),  # failed needs an error and no metric
        lambda d: d.update(unknown=1),
        lambda d: d["metrics"][next(iter(d["metrics"]))].update(value="high"),
        lambda d: d["task"]["protocol"].pop("limit"),
        lambda d: d["items"].update(sha256="abc") if d.get("items") else d.update(run_id="xyz"),
    ]
    for mutate in mutations:
        doc = _doc()
        mutate(doc)
        assert not validator.is_valid(doc)
        with pytest.raises(ResultValidationError):
            validate_result(doc, "r.json")
