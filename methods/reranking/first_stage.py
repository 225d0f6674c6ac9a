"""The first stage itself, unchanged: the baseline row of a reranking board.

A reranking task pins its first stage (TREC DL: the BM25 top 100 shipped with the data). This
adapter returns that ranking as it is, so the board shows what each reranker adds over it, and
``harness compare`` can test a reranker against it on the same queries.
"""

from __future__ import annotations

import dataclasses

from harness.ir.base import RerankingMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.reranking._common import RerankTransformer

ALL = 1 << 30  # "every candidate": the order of all rows is kept


@dataclasses.dataclass(frozen=True)
class FirstStageParams(MethodParams):
    """No parameters: the pinned first stage's ranking is the result."""


@register_method("first-stage", "reranking", FirstStageParams)
class FirstStage(RerankingMethod):
    """The pinned first stage, not reranked (the baseline of every reranking board)."""

    def score(self, query: str, passages: list[str]) -> list[float]:
        # passages arrive in first-stage order (rank, else score then docno): keep it
        return [float(len(passages) - i) for i in range(len(passages))]

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, ALL, "first-stage")
