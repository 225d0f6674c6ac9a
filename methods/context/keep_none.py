"""Keep no sentence: the reader answers from the question alone (the closed-book floor)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.context.base import ContextPruningMethod
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class KeepNoneParams(MethodParams):
    pass


@register_method("keep-none", "context-pruning", KeepNoneParams)
class KeepNone(ContextPruningMethod):
    """Drop the whole passage: the reader answers closed-book (the floor a pruner must beat)."""

    def select(self, question: str, sentences: list[str], item: str) -> list[int]:
        return []
