"""Evaluators: one per task kind. Each takes a task and a run context and returns an EvalOutput.

An evaluator registers itself with ``@register_evaluator("perplexity")``. It reads its data through
:func:`harness.data.resolve` (so the result records the source), honours ``ctx.limit`` and returns
aggregate metrics plus per-item scores for paired tests later.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.tasks import Task


@dataclass
class Metric:
    value: float
    n: int
    stderr: float | None = None

    def to_dict(self, higher_is_better: bool, primary: bool) -> dict[str, Any]:
        return {
            "value": float(self.value),
            "n": int(self.n),
            "stderr": None if self.stderr is None else float(self.stderr),
            "higher_is_better": higher_is_better,
            "primary": primary,
        }


@dataclass
class EvalOutput:
    metrics: dict[str, Metric]
    items: list[dict[str, Any]] | None = None  # per-item scores; each has the key ``item_key``
    item_key: str = "item"
    data: list[dict[str, Any]] = field(default_factory=list)  # ResolvedData.provenance() of what was read
    protocol_details: dict[str, Any] = field(default_factory=dict)  # e.g. windows actually evaluated
    efficiency: dict[str, Any] = field(default_factory=dict)  # e.g. latency percentiles
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (format, bytes)


@dataclass
class RunContext:
    """What an evaluator may use: the (possibly pruned) model, the method, the run's settings."""

    method: Any  # the method adapter instance
    model: Any | None  # harness.llm.models.LoadedModel for LLM tasks, None for IR-only runs
    device: str = "cpu"
    limit: int | None = None
    seed: int = 0
    batch_size: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


Evaluator = Callable[[Task, RunContext], EvalOutput]
_EVALUATORS: dict[str, Evaluator] = {}
# kind -> module that registers it (imported lazily: lm-eval and pyterrier are slow to import)
_MODULES = {
    "perplexity": "harness.llm.perplexity",
    "zeroshot": "harness.llm.zeroshot",
    "retrieval": "harness.ir.tasks",
    "reranking": "harness.ir.tasks",
    "latency": "harness.llm.latency_task",
}


def register_evaluator(kind: str) -> Callable[[Evaluator], Evaluator]:
    def decorate(fn: Evaluator) -> Evaluator:
        _EVALUATORS[kind] = fn
        return fn

    return decorate


def get_evaluator(kind: str) -> Evaluator:
    if kind not in _EVALUATORS and kind in _MODULES:
        try:
            importlib.import_module(_MODULES[kind])
        except ModuleNotFoundError as exc:
            raise HarnessError(f"tasks of kind {kind!r} are not available: {exc}") from None
    if kind not in _EVALUATORS:
        raise HarnessError(f"no evaluator for task kind {kind!r}")
    return _EVALUATORS[kind]


# Which method families a task kind accepts.
KIND_FAMILIES = {
    "perplexity": ("pruning",),
    "zeroshot": ("pruning",),
    "latency": ("pruning",),
    "retrieval": ("retrieval",),
    "reranking": ("reranking",),
}
