"""Task kind ``context-pruning``: prune each question's passage, let a fixed reader answer.

Each item is a multiple-choice question with one passage (SciQ: the question's ``support``
paragraph; rows without one are skipped). The passage is cut into sentences
(:func:`harness.context.base.split_sentences`), the method keeps some of them
(:meth:`~harness.context.base.ContextPruningMethod.prune`), the kept sentences are joined with
single spaces in passage order, and the reader (the task's ``protocol.reader``, a causal LM)
scores every choice by its log-likelihood after lm-eval's SciQ prompt with that context
(:mod:`harness.context.reader`). Before the reader loads, the method checks its budget against
the evaluated passages (a ``k`` above the longest passage's sentence count is refused).

Per item: ``acc`` (argmax of the summed log-likelihood is the gold choice; a tie goes to the
earlier choice, and the gold is listed last, so a tie counts as wrong), ``acc_norm`` (the same
with the log-likelihood divided by the continuation's length in characters, as lm-eval),
``tokens_kept`` (reader tokens of the kept context, no special tokens), ``context_tokens`` (of
the whole passage), ``sentences_kept`` and ``sentences``. Metrics: the means of ``acc``,
``acc_norm``, ``tokens_kept`` and ``sentences_kept`` over the items, and ``compression`` = total
tokens kept / total passage tokens. The reader's seconds (and the pruner's) are efficiency
figures: they depend on the machine, so they are stored, never ranked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from harness.errors import HarnessError
from harness.kinds import BoardPlot, EvalOutput, Metric, Protocol, RunContext, TaskKind, Track, fixed_metrics, item_mean
from harness.tasks import Task

METRICS = ("acc", "acc_norm", "tokens_kept", "compression", "sentences_kept")
ANSWER_FIELDS = ("distractor1", "distractor2", "distractor3", "correct_answer")  # lm-eval's order; gold last


class ContextPruningProtocol(Protocol):
    reader: str = Field("smollm2-135m", min_length=1)  # the model that answers (harness.llm.models id)
    prompt: Literal["lm-eval-sciq"] = "lm-eval-sciq"  # the reader's prompt (the only one implemented)


@dataclass(frozen=True)
class QAItem:
    item: str
    question: str
    sentences: list[str]
    choices: list[str]
    gold: int


def sciq_items(rows: list[dict[str, Any]], where: str) -> tuple[list[QAItem], int]:
    """The questions with a non-empty support paragraph (item ``q<row>``, as the ``sciq-derived``
    retrieval task numbers them) and the number skipped for having none."""
    from harness.context.base import split_sentences

    items, skipped = [], 0
    for i, row in enumerate(rows):
        missing = [k for k in ("question", "support", *ANSWER_FIELDS) if k not in row]
        if missing:
            raise HarnessError(f"{where}: row {i} has no field(s) {missing}")
        sentences = split_sentences(row["support"] or "")
        if not sentences:
            skipped += 1
            continue
        items.append(QAItem(f"q{i}", " ".join(str(row["question"]).split()), sentences,
                            [str(row[k]).strip() for k in ANSWER_FIELDS], len(ANSWER_FIELDS) - 1))
    return items, skipped


def load_items(task: Task, limit: int | None) -> tuple[list[QAItem], dict[str, Any], list[dict[str, Any]]]:
    """The evaluated items (the first ``limit``), their counts and the data provenance."""
    from harness.formats import read_spec

    if set(task.data) != {"questions"}:
        raise HarnessError(f"{task.path or task.id}: field 'data': a context-pruning task reads one entry, 'questions'")
    spec = task.data["questions"]
    rows, files = read_spec(spec, task_file=task.path)
    where = f"{task.path or task.id}: data 'questions'"
    count = spec.options.get("count")
    if count is not None and len(rows) != count:
        raise HarnessError(f"{where}: {len(rows)} rows, the task declares count: {count}")
    items, skipped = sciq_items(rows, where)
    evaluated = items[:limit] if limit else items
    counts = {"rows": len(rows), "questions_without_support": skipped, "questions": len(items),
              "evaluated": len(evaluated)}
    return evaluated, counts, [f.provenance() for f in files]


def load_reader(model_id: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The reader (tests replace this function with a fake one)."""
    from harness.context.reader import load_reader as load

    return load(model_id, device)


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda j: (values[j], -j))


def answer(reader: Any, method: Any, it: QAItem) -> tuple[dict[str, Any], float]:
    """One item's scores, and the reader's seconds on it."""
    kept = method.prune(it.question, it.sentences, it.item)
    context = " ".join(it.sentences[i] for i in kept)
    t0 = time.perf_counter()
    res = reader.score(context, it.question, it.choices)
    seconds = time.perf_counter() - t0
    norm = [lp / max(n, 1) for lp, n in zip(res.logprobs, res.lengths)]
    return {
        "item": it.item,
        "acc": int(_argmax(res.logprobs) == it.gold),
        "acc_norm": int(_argmax(norm) == it.gold),
        "tokens_kept": reader.count_tokens(context),
        "context_tokens": reader.count_tokens(" ".join(it.sentences)),
        "sentences_kept": len(kept),
        "sentences": len(it.sentences),
    }, seconds


def aggregate(metric: str, items: list[dict[str, Any]]) -> float | None:
    """How each metric follows from the items: ``compression`` = sum of ``tokens_kept`` / sum of
    ``context_tokens``; the others are item means."""
    if metric == "compression":
        if not items or any("tokens_kept" not in i or "context_tokens" not in i for i in items):
            return None
        total = math.fsum(float(i["context_tokens"]) for i in items)
        return math.fsum(float(i["tokens_kept"]) for i in items) / total if total else None
    return item_mean(metric, items)


def _stderr(values: list[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1) / n)


def evaluate_context_pruning(task: Task, ctx: RunContext) -> EvalOutput:
    settings = task.settings
    items, counts, data = load_items(task, ctx.limit)
    if not items:
        raise HarnessError(f"task {task.id}: no question with a passage to evaluate")
    max_sentences = max(len(it.sentences) for it in items)
    ctx.method.check_budget(max_sentences)  # before the reader loads
    reader, reader_record = load_reader(settings.reader, ctx.device)
    rows, reader_seconds = [], 0.0
    for it in items:
        row, seconds = answer(reader, ctx.method, it)
        rows.append(row)
        reader_seconds += seconds
    declared = [m.name for m in task.metrics]
    metrics = {}
    for name in declared:
        value = aggregate(name, rows)
        if value is None:
            raise HarnessError(f"task {task.id}: metric {name} is undefined on these items")
        err = None if name == "compression" else _stderr([float(r[name]) for r in rows])
        metrics[name] = Metric(value, len(rows), err)
    return EvalOutput(
        metrics=metrics,
        items=rows,
        item_key="item",
        data=data,
        protocol_details={
            "reader": reader_record,
            "prompt": "lm-eval sciq.yaml doc_to_text with the kept sentences as the support; "
                      "choices ' ' + [distractor1, distractor2, distractor3, correct_answer]",
            "sentence_splitter": "harness.context.base.split_sentences (rule-based, deterministic)",
            "max_sentences": max_sentences,
            **counts,
        },
        efficiency={
            "reader_seconds": reader_seconds,
            "reader_seconds_per_question": reader_seconds / len(rows),
            "reader_prompt_tokens": int(getattr(reader, "stats", {}).get("prompt_tokens", 0)),
            "prune_seconds_total": float(ctx.method.stats.get("prune_seconds", 0.0)),
        },
    )


def accuracy_vs_tokens(result: Any) -> list[tuple[float, float]]:
    """One dot per entry: (mean context tokens kept per question, the board's primary metric)."""
    x, y = result.value("tokens_kept"), result.value(result.task.primary_metric)
    return [] if x is None or y is None else [(float(x), float(y))]


KIND = TaskKind(
    name="context-pruning",
    evaluator=evaluate_context_pruning,
    families=("context-pruning",),
    track=Track("context", "RAG context pruning", order=35),
    protocol=ContextPruningProtocol,
    metric_error=fixed_metrics(*METRICS),
    description="prune each question's passage to some of its sentences; a fixed LM reader answers from what is kept",
    aggregate=aggregate,
    plots=(
        BoardPlot("tokens", "context tokens kept per question (mean; lower is cheaper)",
                  "Reader accuracy against the context tokens each method keeps; red: the Pareto front "
                  "(no entry keeps fewer tokens and answers better).", accuracy_vs_tokens, pareto=True),
    ),
)
