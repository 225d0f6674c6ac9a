"""Keep every sentence: the unpruned context (the accuracy and cost reference)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.context.base import ContextPruningMethod
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class KeepAllParams(MethodParams):
    pass


@register_method("keep-all", "context-pruning", KeepAllParams)
class KeepAll(ContextPruningMethod):
    """Keep the whole passage (no pruning): the reference every pruner is measured against."""

    def select(self, question: str, sentences: list[str], item: str) -> list[int]:
        return list(range(len(sentences)))
