"""The context-pruning family and task kind: sentence splitting, budgets, the selections of each
method on constructed passages, and the kind end to end with a fake reader (one slow test with the
embedded SmolLM2 reader on two SciQ questions)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness import tasks as tasksmod
from harness.context.base import ContextPruningMethod, split_sentences, top_k_indices
from harness.context.reader import ChoiceScores, build_prompt
from harness.errors import HarnessError, ParamError
from harness.params import build_params
from harness.registry import get_method
from harness.runner import RunRequest, execute


def make(name: str, **params: Any) -> ContextPruningMethod:
    info = get_method(name)
    return info.cls(build_params(info.params_cls, {k: str(v) for k, v in params.items()}, method=name))


# ---------------------------------------------------------------------------------------------
# Sentence splitting


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Dr. Smith went home. He slept.", ["Dr. Smith went home.", "He slept."]),
        ("See Fig. 3 for details. E. coli lives in guts (e.g. ours). It is small.",
         ["See Fig. 3 for details.", "E. coli lives in guts (e.g. ours).", "It is small."]),
        ("Water boils at 100 C. Pi is 3.14 exactly? No! \"Really.\" Yes.",
         ["Water boils at 100 C.", "Pi is 3.14 exactly?", "No!", "\"Really.\"", "Yes."]),
        ("Visit http://classes. midlandstech. edu/x. htm. Next one.",
         ["Visit http://classes. midlandstech. edu/x. htm.", "Next one."]),
        ("Ca0.7[Si6.6Al1.4]O20(OH)4. (The content varies.) Done...  2 more.",
         ["Ca0.7[Si6.6Al1.4]O20(OH)4.", "(The content varies.)", "Done...", "2 more."]),
        ("  one line\n\n  next.  Third ", ["one line next.", "Third"]),
        ("No end punctuation", ["No end punctuation"]),
        ("", []),
        ("   \n ", []),
    ],
)
def test_sentence_splitting_on_tricky_text(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
    assert split_sentences(" ".join(sentences)) == sentences  # joining and re-splitting is stable


def test_top_k_keeps_k_in_passage_order_ties_to_the_earlier() -> None:
    assert top_k_indices([0.1, 0.9, 0.5, 0.9], 2) == [1, 3]
    assert top_k_indices([0.1, 0.9, 0.5, 0.9], 3) == [1, 2, 3]
    assert top_k_indices([1.0, 1.0, 1.0], 2) == [0, 1]
    assert top_k_indices([0.3, 0.2], 5) == [0, 1]
    assert top_k_indices([0.3, 0.2], 0) == []


# ---------------------------------------------------------------------------------------------
# Methods and their budgets

SENTENCES = [
    "The mitochondria is the powerhouse of the cell.",
    "Plants make glucose by photosynthesis in chloroplasts.",
    "Cells divide by mitosis.",
    "Photosynthesis needs light, water and carbon dioxide.",
    "Water freezes at zero degrees.",
]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_bm25_topk_keeps_exactly_k_in_passage_order(k: int) -> None:
    m = make("bm25-topk", k=k)
    kept = m.prune("What process in chloroplasts makes glucose from light?", SENTENCES, "q1")
    assert len(kept) == k and kept == sorted(kept)
    assert 1 in kept  # the only sentence naming chloroplasts and glucose
    assert m.stats["sentences_kept"] == k and m.stats["passages"] == 1


def test_bm25_topk_picks_the_sentences_sharing_rare_terms() -> None:
    m = make("bm25-topk", k=2)
    kept = m.prune("Which gas does photosynthesis need besides water?", SENTENCES, "q1")
    assert kept == [3, 4]  # 3: photosynthesis, need (stemmed: needs) and water; 4: water, in a short sentence
    scores = m.score("Which gas does photosynthesis need besides water?", SENTENCES)
    assert scores[3] > scores[4] > scores[1] > 0 and scores[0] == scores[2] == 0
    assert m.prune("Where does photosynthesis happen?", SENTENCES, "q2") == [1, 3]  # the two naming it


def test_bm25_topk_score_is_bm25_by_hand() -> None:
    """stemmer=none, words that are no stopwords, Lucene's BM25: idf = log(1 + (N - df + .5) / (df + .5)),
    tf part = tf / (tf + k1 (1 - b + b dl / avgdl)) (no (k1 + 1) factor, as Lucene)."""
    sents = ["alpha beta.", "alpha alpha gamma delta.", "epsilon."]
    m = make("bm25-topk", k=1, stemmer="none", k1=1.2, b=0.75)
    got = m.score("alpha gamma", sents)
    lengths = [2, 4, 1]
    avgdl = sum(lengths) / 3

    def idf(df: int) -> float:
        return math.log(1 + (3 - df + 0.5) / (df + 0.5))

    def part(tf: int, dl: int) -> float:
        return tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    want = [idf(2) * part(1, 2), idf(2) * part(2, 4) + idf(1) * part(1, 4), 0.0]
    assert got == pytest.approx(want, rel=1e-5)


def test_embedding_topk_picks_by_cosine_with_injected_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    vectors = {"q?": [1.0, 0.0], "a.": [0.0, 1.0], "b.": [0.8, 0.6], "c.": [0.6, 0.8], "d.": [-1.0, 0.0]}
    m = make("embedding-topk", k=2)
    seen: list[list[str]] = []

    def encode(texts: list[str]) -> Any:
        seen.append(list(texts))
        return np.array([vectors[t] for t in texts])

    monkeypatch.setattr(m, "encode", encode)
    assert m.prune("q?", ["a.", "b.", "c.", "d."], "q1") == [1, 2]  # cosines 0, .8, .6, -1
    assert m.score("q?", ["a.", "b.", "c.", "d."]) == pytest.approx([0.0, 0.8, 0.6, -1.0])
    assert seen[0] == ["q?", "a.", "b.", "c.", "d."]
    assert make("embedding-topk", k=1).prune("q?", ["a."], "q2") == [0]  # nothing to rank: no encoder needed


def test_lm_topk_scores_by_mean_question_likelihood(monkeypatch: pytest.MonkeyPatch) -> None:
    from methods.context import lm_topk
    from methods.reranking._llm_scoring import ScoredBatch

    calls: list[tuple[list[str], list[str]]] = []

    def fake(model: Any, tok: Any, prefixes: list[str], conts: list[str], batch_size: int = 16) -> ScoredBatch:
        calls.append((list(prefixes), list(conts)))
        # sums and token counts: means -1.0, -0.5, -2.0 (the second is best though its sum is not)
        return ScoredBatch([(-3.0, 3), (-2.0, 4), (-2.0, 1)], len(prefixes), 1)

    monkeypatch.setattr(lm_topk, "continuation_logprobs", fake)
    m = lm_topk.LMTopK(lm_topk.LMTopKParams(k=1), loaded=object())
    m._loaded = type("L", (), {"model": None, "tokenizer": None})()
    assert m.prune("Why?", ["s0.", "s1.", "s2."], "q1") == [1]
    prefixes, conts = calls[0]
    assert prefixes[1] == "Passage: s1.\nPlease write a question based on this passage.\nQuestion:"
    assert conts == [" Why?"] * 3


def test_random_drop_is_seeded_per_item_and_drops_at_its_rate() -> None:
    sents = [f"Sentence {i}." for i in range(10)]
    a, b = make("random-drop", rate=0.3, seed=0), make("random-drop", rate=0.3, seed=0)
    first = [a.prune("q", sents, f"q{i}") for i in range(20)]
    assert all(len(k) == 7 and k == sorted(k) for k in first)  # exactly round(0.3 x 10) dropped
    assert [b.prune("q", sents, f"q{i}") for i in reversed(range(20))] == first[::-1]  # order-independent
    other = [make("random-drop", rate=0.3, seed=1).prune("q", sents, f"q{i}") for i in range(20)]
    assert other != first and len({tuple(k) for k in first}) > 5  # the seed and the item matter
    rates = make("random-drop", rate=0.5)
    for n, dropped in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]:  # round half up
        assert len(rates.prune("q", sents[:n], "x")) == n - dropped
    # over many passages the measured drop rate is the stated one
    m = make("random-drop", rate=0.25)
    kept = sum(len(m.prune("q", sents[:8], f"q{i}")) for i in range(100))
    assert kept == 100 * 6


def test_keep_all_and_keep_none() -> None:
    assert make("keep-all").prune("q", SENTENCES, "q1") == [0, 1, 2, 3, 4]
    assert make("keep-none").prune("q", SENTENCES, "q1") == []


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("bm25-topk", {"k": "0"}, "k=0 must be >= 1"),
        ("embedding-topk", {"k": "-2"}, "k=-2 must be >= 1"),
        ("random-drop", {"rate": "-0.1"}, "rate=-0.1 must be in (0, 1)"),
        ("random-drop", {"rate": "1.0"}, "rate=1.0 must be in (0, 1)"),
        ("bm25-topk", {"b": "1.5"}, "b=1.5 must be in [0, 1]"),
        ("lm-topk", {"kk": "2"}, "kk"),
    ],
)
def test_bad_parameters_are_refused_at_resolve_time(method: str, params: dict[str, str], message: str,
                                                    tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        execute(RunRequest(method=method, params=params, tasks=["sciq-context"], results_dir=tmp_path))
    assert not any(tmp_path.rglob("*.json"))


def test_a_budget_above_the_longest_passage_is_refused() -> None:
    m = make("bm25-topk", k=4)
    m.check_budget(4)
    with pytest.raises(ParamError, match="k=4 exceeds the longest evaluated passage \\(3 sentences\\)"):
        m.check_budget(3)


def test_a_selection_out_of_range_is_refused() -> None:
    class Bad(ContextPruningMethod):
        method_name = "bad"

        def select(self, question: str, sentences: list[str], item: str) -> list[int]:
            return [0, 0]

    with pytest.raises(HarnessError, match="selected"):
        Bad(build_params(get_method("keep-all").params_cls, {}, method="bad")).prune("q", ["a.", "b."], "q1")


# ---------------------------------------------------------------------------------------------
# The kind end to end, with a constructed SciQ-like file and a fake reader

ROWS = [
    {"question": "What do plants make?", "support": "Plants make glucose. The sky is blue. Cats purr.",
     "correct_answer": "glucose", "distractor1": "salt", "distractor2": "iron", "distractor3": "gold"},
    {"question": "Who has no passage?", "support": "", "correct_answer": "x", "distractor1": "y",
     "distractor2": "z", "distractor3": "w"},
    {"question": "What gas do plants need?", "support": "Dogs bark. Plants need carbon dioxide gas.",
     "correct_answer": "carbon dioxide", "distractor1": "helium", "distractor2": "neon", "distractor3": "argon"},
    {"question": "What melts ice?", "support": "Heat melts ice.", "correct_answer": "heat",
     "distractor1": "cold", "distractor2": "dark", "distractor3": "salt water"},
]

TASK = """\
id: toy-context
version: 1
kind: context-pruning
title: toy context pruning (derived)
data:
  questions:
    format: hf-arrow-stream
    count: {count}
    sources:
      - data_dir: sciq.arrow
        sha256: {sha}
protocol: {{reader: fake-reader}}
metrics:
  - {{name: acc, higher_is_better: true, primary: true}}
  - {{name: tokens_kept, higher_is_better: false}}
  - {{name: compression, higher_is_better: false}}
  - {{name: sentences_kept, higher_is_better: false}}
"""


class FakeReader:
    """Answers right exactly when the gold answer's words are in the context; a token = a word."""

    loads = 0

    def __init__(self) -> None:
        FakeReader.loads += 1
        self.stats = {"prompt_tokens": 0}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def score(self, context: str, question: str, choices: list[str]) -> ChoiceScores:
        self.stats["prompt_tokens"] += len(build_prompt(context, question).split())
        return ChoiceScores([0.0 if c.lower() in context.lower() else -1.0 for c in choices],
                            [len(c) + 1 for c in choices], 0)


@pytest.fixture
def toy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    data = tmp_path / "data"
    data.mkdir()
    table = pa.Table.from_pylist(ROWS)
    with ipc.new_stream(str(data / "sciq.arrow"), table.schema) as writer:
        writer.write_table(table)
    sha = hashlib.sha256((data / "sciq.arrow").read_bytes()).hexdigest()
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "toy.yaml").write_text(TASK.format(sha=sha, count=len(ROWS)))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks_dir))
    from harness.context import context_pruning_task

    FakeReader.loads = 0
    monkeypatch.setattr(context_pruning_task, "load_reader",
                        lambda model_id, device: (FakeReader(), {"id": model_id, "digest": "fake"}))
    yield tmp_path
    tasksmod._cache.pop(tasks_dir.resolve(), None)


def _items(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.with_suffix(".items.jsonl").read_text().splitlines()]


def test_the_kind_end_to_end_with_a_fake_reader(toy_task: Path) -> None:
    from harness.results import ResultStore

    results = toy_task / "results"
    (full,) = execute(RunRequest(method="keep-all", tasks=["toy-context"], results_dir=results, progress=False))
    (none,) = execute(RunRequest(method="keep-none", tasks=["toy-context"], results_dir=results, progress=False))
    (bm25,) = execute(RunRequest(method="bm25-topk", params={"k": "1"}, tasks=["toy-context"],
                                 results_dir=results, progress=False))
    assert [o.status for o in (full, none, bm25)] == ["ok"] * 3
    m = {o.doc["method"]["name"]: {k: v["value"] for k, v in o.doc["metrics"].items()} for o in (full, none, bm25)}
    # three questions with a passage (the empty one is skipped): 9 + 7 + 3 words
    assert m["keep-all"] == {"acc": 1.0, "tokens_kept": 19 / 3, "compression": 1.0, "sentences_kept": 2.0}
    assert m["keep-none"] == {"acc": 0.0, "tokens_kept": 0.0, "compression": 0.0, "sentences_kept": 0.0}
    # BM25 keeps "Plants make glucose." (3 words), "Plants need carbon dioxide gas." (5) and "Heat melts ice." (3)
    assert m["bm25-topk"] == {"acc": 1.0, "tokens_kept": 11 / 3, "compression": pytest.approx(11 / 19),
                              "sentences_kept": 1.0}
    rows = _items(bm25.path)
    assert [r["item"] for r in rows] == ["q0", "q2", "q3"]
    assert [(r["tokens_kept"], r["context_tokens"], r["sentences_kept"], r["sentences"]) for r in rows] == [
        (3, 9, 1, 3), (5, 7, 1, 2), (3, 3, 1, 1)]
    details = full.doc["task"]["protocol_details"]
    assert details["questions_without_support"] == 1 and details["evaluated"] == 3 and details["max_sentences"] == 3
    assert full.doc["efficiency"]["reader_seconds"] >= 0
    store = ResultStore(results)
    for o in (full, none, bm25):
        store.check(o.path)  # what validate checks, aggregates re-derived from the items included

    # the board's plot: one dot per entry at (tokens kept, accuracy)
    from harness.context.context_pruning_task import KIND, accuracy_vs_tokens

    (plot,) = KIND.plots
    assert plot.pareto
    assert accuracy_vs_tokens(store.load(bm25.path)) == [(pytest.approx(11 / 3), 1.0)]


def test_limit_and_a_budget_refused_before_the_reader_loads(toy_task: Path) -> None:
    results = toy_task / "results"
    (o,) = execute(RunRequest(method="random-drop", params={"rate": "0.5"}, tasks=["toy-context"], limit=2,
                              results_dir=results, progress=False))
    assert o.status == "ok" and [r["item"] for r in _items(o.path)] == ["q0", "q2"]
    loads = FakeReader.loads
    (fits,) = execute(RunRequest(method="bm25-topk", params={"k": "3"}, tasks=["toy-context"], limit=2,
                                 results_dir=results, progress=False))
    assert fits.status == "ok"  # k=3: the longest of the first two passages has 3 sentences
    assert FakeReader.loads == loads + 1
    stored = sorted(results.rglob("*.json"))
    with pytest.raises(ParamError, match=r"k=4 exceeds the longest evaluated passage \(3 sentences\)"):
        execute(RunRequest(method="bm25-topk", params={"k": "4"}, tasks=["toy-context"], limit=2,
                           results_dir=results, progress=False))
    assert FakeReader.loads == loads + 1  # refused before the reader was loaded
    assert sorted(results.rglob("*.json")) == stored  # by check_request: no failed result stored


def test_a_misspelt_protocol_key_is_refused_at_load(toy_task: Path) -> None:
    from harness.errors import TaskDefinitionError

    path = toy_task / "tasks" / "toy.yaml"
    path.write_text(path.read_text().replace("{reader: fake-reader}", "{reeder: fake-reader}"))
    with pytest.raises(TaskDefinitionError, match="protocol.reeder"):
        tasksmod.load_task_file(path)
    path.write_text(path.read_text().replace("{reeder: fake-reader}", "{prompt: other}"))
    with pytest.raises(TaskDefinitionError, match="protocol.prompt"):
        tasksmod.load_task_file(path)


# ---------------------------------------------------------------------------------------------
# The real reader


@pytest.mark.slow
def test_the_real_reader_on_two_sciq_questions(smollm2: Any, tmp_path: Path) -> None:
    """The cached-prompt scoring equals scoring each (prompt, choice) whole; keep-all and keep-none
    run end to end on the first two SciQ questions with a passage."""
    from harness.context.reader import LMReader
    from methods.reranking._llm_scoring import continuation_logprobs

    reader = LMReader(smollm2.model, smollm2.tokenizer)
    context, question = "Plants make glucose by photosynthesis.", "What do plants make?"
    choices = ["glucose", "table salt", "iron oxide powder", "gold"]
    got = reader.score(context, question, choices)
    ref = continuation_logprobs(smollm2.model, smollm2.tokenizer, [build_prompt(context, question)] * 4,
                                [" " + c for c in choices])
    assert got.logprobs == pytest.approx([v[0] for v in ref.values], abs=1e-3)
    assert got.lengths == [len(c) + 1 for c in choices]

    out = {}
    for method in ("keep-all", "keep-none"):
        (o,) = execute(RunRequest(method=method, tasks=["sciq-context"], limit=2, results_dir=tmp_path, progress=False))
        assert o.status == "ok", o.doc.get("error")
        out[method] = o.doc
    assert out["keep-all"]["metrics"]["compression"]["value"] == 1.0
    assert out["keep-none"]["metrics"]["tokens_kept"]["value"] == 0.0
    assert out["keep-all"]["metrics"]["tokens_kept"]["value"] > 10
    assert out["keep-all"]["task"]["protocol_details"]["reader"]["digest"].startswith("sha256:")
