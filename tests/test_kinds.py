"""Task kinds as registered records, and task files checked against them when they load."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import types
from pathlib import Path

import pytest

from harness import tasks as tasksmod
from harness.cli import main
from harness.errors import HarnessError, TaskDefinitionError
from harness.kinds import TASK_KINDS, RunSettings, get_kind, tracks
from harness.registry import METHODS
from harness.runner import RunRequest, execute, protocol_for
from harness.tasks import get_task, load_task_file, load_tasks

RETRIEVAL = """\
id: toy-retrieval
version: 1
kind: retrieval
title: Toy retrieval
data:
  corpus:
    format: trec-docs
    sources:
      - data_dir: toy/docs.trec
        sha256: {sha}
protocol:
  cutoff: 100
metrics:
  - name: nDCG@10
    higher_is_better: true
    primary: true
  - name: RR@10
    higher_is_better: true
"""
SHA = "a" * 64


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def refused(path: Path) -> str:
    with pytest.raises(TaskDefinitionError) as exc:
        load_task_file(path)
    return str(exc.value)


def test_the_good_file_loads_and_its_protocol_is_typed(tmp_path):
    task = load_task_file(write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA)))
    assert task.protocol == {"cutoff": 100}  # as written: it enters the run id
    assert task.settings.cutoff == 100 and task.settings.rel_threshold == 1  # typed, defaults filled


def test_misspelt_protocol_key_is_refused_at_load_naming_file_and_field(tmp_path):
    path = write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA).replace("cutoff: 100", "cuttoff: 100"))
    msg = refused(path)
    assert str(path) in msg and "'protocol.cuttoff'" in msg and "did you mean 'cutoff'" in msg
    assert "allowed: cutoff, latency, rel_threshold" in msg


def test_protocol_values_are_typed(tmp_path):
    msg = refused(write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA).replace("cutoff: 100", "cutoff: deep")))
    assert "'protocol.cutoff'" in msg
    msg = refused(write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA).replace("cutoff: 100", "cutoff: 0")))
    assert "'protocol.cutoff'" in msg


def test_unknown_ir_metric_is_refused_at_load(tmp_path):
    msg = refused(write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA).replace("RR@10", "RR@1O")))
    assert "'metrics[1].name'" in msg and "RR@1O" in msg and "ir-measures" in msg


def test_fixed_metric_sets_are_checked(tmp_path):
    text = textwrap.dedent("""\
        id: toy-ppl
        version: 1
        kind: perplexity
        protocol: {seqlen: 128}
        metrics:
          - {name: perplexity, higher_is_better: false, primary: true}
        """)
    msg = refused(write(tmp_path, "t.yaml", text))
    assert "'metrics[0].name'" in msg and "ppl, nll" in msg


def test_unknown_kind_lists_the_valid_kinds(tmp_path):
    msg = refused(write(tmp_path, "t.yaml", RETRIEVAL.format(sha=SHA).replace("kind: retrieval", "kind: retreival")))
    assert "'kind'" in msg
    for name in ("perplexity", "zeroshot", "latency", "calibration", "retrieval", "reranking"):
        assert name in msg


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("      - data_dir: toy/docs.trec\n        sha256: {sha}\n", "      - hub: org/set\n", "data.corpus.sources[0].revision"),
        ("      - data_dir: toy/docs.trec\n", "      - data_dir: toy/docs.trec\n        hub: org/set\n", "data.corpus.sources[0]"),
        ("        sha256: {sha}\n", "        sha256: {sha}\n        mirror: x\n", "data.corpus.sources[0].mirror"),
        ("    primary: true\n", "    primary: true\n  - name: AP\n    higher_is_better: true\n    primary: true\n", "metrics"),
        ("    higher_is_better: true\n    primary: true\n", "    higher_is_better: yes please\n    primary: true\n",
         "metrics[0].higher_is_better"),
    ],
)
def test_typed_fields_name_the_field(tmp_path, old, new, field):
    text = RETRIEVAL.replace(old, new).format(sha=SHA)
    assert text != RETRIEVAL.format(sha=SHA)
    msg = refused(write(tmp_path, "t.yaml", text))
    assert f"field {field!r}" in msg


def test_a_broken_file_does_not_block_the_others(tmp_path, monkeypatch, capsys):
    write(tmp_path, "good.yaml", RETRIEVAL.format(sha=SHA))
    broken = write(tmp_path, "broken.yaml", RETRIEVAL.format(sha=SHA).replace("toy-retrieval", "toy-broken")
                   .replace("cutoff: 100", "cuttoff: 100"))
    tasks = load_tasks(tmp_path)
    assert set(tasks) == {"toy-retrieval"} and set(tasks.errors) == {broken.resolve()}
    assert get_task("toy-retrieval", tmp_path).id == "toy-retrieval"
    with pytest.raises(TaskDefinitionError, match="protocol.cuttoff"):
        get_task("toy-broken", tmp_path)
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tmp_path))
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "toy-retrieval" in out
    broken_line = next(line for line in out.splitlines() if "broken.yaml" in line)
    assert broken_line.startswith("(broken)") and "protocol.cuttoff" in broken_line


def test_tracks_are_the_kinds_records():
    assert tracks() == [
        ("llm", "LLM pruning", ("perplexity", "zeroshot")),
        ("retrieval", "Retrieval", ("retrieval",)),
        ("reranking", "Reranking", ("reranking",)),
        ("context", "RAG context pruning", ("context-pruning",)),
        ("latency", "Latency", ("latency",)),
        ("data-pruning", "Data pruning", ("data-pruning",)),
    ]
    assert get_kind("calibration").track is None and get_kind("calibration").evaluator is None


def test_the_kind_adds_its_protocol_keys():
    settings = RunSettings(device="cuda", dtype="bfloat16")
    assert get_kind("latency").protocol_for({"a": 1}, None, settings) == {
        "a": 1, "limit": None, "device": "cuda", "dtype": "bfloat16"}
    assert get_kind("latency").protocol_for({}, 2, RunSettings()) == {"limit": 2, "device": "cpu", "dtype": "float32"}
    assert get_kind("perplexity").protocol_for({"seqlen": 8}, 1, RunSettings()) == {"seqlen": 8, "limit": 1}
    assert get_kind("retrieval").protocol_for({}, None, settings) == {"limit": None, "dtype": "bfloat16"}
    task = get_task("wikitext2")
    assert protocol_for(task, RunRequest(method="dense", tasks=["wikitext2"], limit=4)) == {"seqlen": 2048, "limit": 4}


def test_kinds_and_families_are_checked_before_any_work(tmp_path):
    with pytest.raises(HarnessError, match="takes pruning methods; bm25s is a retrieval method"):
        execute(RunRequest(method="bm25s", tasks=["wikitext2"], results_dir=tmp_path))
    with pytest.raises(HarnessError, match=r"not --model"):
        execute(RunRequest(method="bm25s", model="smollm2-135m", tasks=["cacm"], results_dir=tmp_path))


# ---------------------------------------------------------------------------------------------
# A task kind from a separate package, end to end: entry point -> task file -> run -> board

TOY_PACKAGE = '''
"""A toy task kind and a toy method, as a third-party package would ship them."""
from dataclasses import dataclass

from pydantic import Field

from harness.ir.base import RetrievalMethod
from harness.kinds import EvalOutput, Metric, Protocol, TaskKind, Track, fixed_metrics
from harness.params import MethodParams
from harness.registry import register_method


class CountProtocol(Protocol):
    n: int = Field(3, ge=1)


def evaluate_count(task, ctx):
    values = ctx.method.count(task.settings.n)
    items = [{"item": f"i{i}", "total": float(v)} for i, v in enumerate(values)]
    return EvalOutput(metrics={"total": Metric(float(sum(values)), len(values))}, items=items)


KIND = TaskKind(name="toy-count", evaluator=evaluate_count, families=("retrieval",),
                track=Track("toy", "Toy counting", order=90), protocol=CountProtocol,
                metric_error=fixed_metrics("total"))


@dataclass(frozen=True)
class CounterParams(MethodParams):
    step: int = 2


@register_method("toy-counter", "retrieval", CounterParams)
class Counter(RetrievalMethod):
    """Counts in steps (a toy method for the toy kind)."""

    setups = 0

    def setup(self, ctx):
        type(self).setups += 1
        return super().setup(ctx)

    def index(self, corpus):
        pass

    def transformer(self):
        raise NotImplementedError

    def count(self, n):
        return [self.params.step * i for i in range(n)]
'''

TOY_TASK = """\
id: {id}
version: 1
kind: toy-count
title: Toy count {id}
protocol: {{n: {n}}}
metrics:
  - {{name: total, higher_is_better: true, primary: true}}
"""


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    write(pkg / "harness_toy_kind", "__init__.py", TOY_PACKAGE)
    monkeypatch.syspath_prepend(str(pkg))
    eps = {
        "harness.task_kinds": [importlib.metadata.EntryPoint("toy-count", "harness_toy_kind:KIND", "harness.task_kinds")],
        "harness.methods": [importlib.metadata.EntryPoint("toy-counter", "harness_toy_kind", "harness.methods")],
    }
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps.get(group, []))
    for reg, group in ((TASK_KINDS, "harness.task_kinds"), (METHODS, "harness.methods")):
        reg.load()  # the built-ins first, as in a normal start
        for ep in eps[group]:
            reg._load_entry_point(ep)
    tasks_dir = tmp_path / "tasks"
    write(tasks_dir, "a.yaml", TOY_TASK.format(id="toy-a", n=4))
    write(tasks_dir, "b.yaml", TOY_TASK.format(id="toy-b", n=2))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks_dir))
    yield tmp_path
    TASK_KINDS.unregister("toy-count")
    METHODS.unregister("toy-counter")
    sys.modules.pop("harness_toy_kind", None)
    tasksmod._cache.pop(tasks_dir.resolve(), None)


def test_a_kind_from_another_package_runs_end_to_end_to_a_board(toy_kind, capsys):
    from harness.report import build_site

    results, site = toy_kind / "results", toy_kind / "site"
    assert get_kind("toy-count").track.title == "Toy counting"
    assert ("toy", "Toy counting", ("toy-count",)) in tracks()
    code = main(["run", "--method", "toy-counter", "--params", "step=3", "--task", "toy-a", "--task", "toy-b",
                 "--results", str(results), "--no-progress"])
    assert code == 0, capsys.readouterr()
    counter = sys.modules["harness_toy_kind"].Counter
    assert counter.setups == 1  # once per run, not once per task
    again = execute(RunRequest(method="toy-counter", params={"step": "3"}, tasks=["toy-a", "toy-b"],
                               results_dir=results))
    assert [o.status for o in again] == ["skipped", "skipped"] and counter.setups == 1
    docs = {o.task: o.doc for o in again}
    assert docs["toy-a"]["metrics"]["total"]["value"] == 3 * (0 + 1 + 2 + 3)
    assert docs["toy-a"]["task"]["protocol"] == {"n": 4, "limit": None}
    summary = build_site(results, site)
    boards = sorted(p.name for p in (site / "boards").glob("toy-a-v1*.html"))
    assert boards, summary.pages
    html = (site / "boards" / boards[0]).read_text()
    assert "toy-counter" in html and "18" in html

    # a misspelt key in a task of the new kind is refused by the kind's own protocol model
    bad = write(toy_kind / "tasks", "c.yaml", TOY_TASK.format(id="toy-c", n=2).replace("{n: 2}", "{m: 2}"))
    assert "'protocol.m'" in refused(bad)


def test_settings_follow_the_protocol_of_a_replaced_task():
    import dataclasses

    task = get_task("wikitext2")
    assert task.settings.seqlen == 2048
    assert dataclasses.replace(task, protocol={"seqlen": 64}).settings.seqlen == 64
    with pytest.raises(TaskDefinitionError, match="'protocol.seqlen'"):
        _ = dataclasses.replace(task, protocol={"seqlen": "long"}).settings


def test_zero_shot_only_is_checked_at_load(tmp_path):
    text = (Path(get_task("rte").path).read_text()).replace("num_fewshot: 0", "num_fewshot: 5")
    assert "num_fewshot: 5" in text
    msg = refused(write(tmp_path, "rte.yaml", text))
    assert "'protocol.num_fewshot'" in msg and "only 0-shot" in msg


def test_a_misspelt_data_option_is_refused_at_load_by_the_registered_format(tmp_path):
    bad = write(tmp_path, "bad.yaml", RETRIEVAL.format(sha=SHA).replace("    format: trec-docs\n",
                                                                          "    format: trec-docs\n    int_id: true\n"))
    message = refused(bad)
    assert f"{bad}: field 'data.corpus.int_id'" in message and "trec-docs" in message
    load_task_file(write(tmp_path, "good.yaml", RETRIEVAL.format(sha=SHA)))  # the same file without it loads
