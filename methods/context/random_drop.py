"""Random sentence dropping at a fixed rate, seeded per question."""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.context.base import ContextPruningMethod
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class RandomDropParams(MethodParams):
    rate: float = 0.5  # share of each passage's sentences dropped
    seed: int = 0

    def check(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ParamError(f"parameter rate={self.rate} must be in (0, 1) (keep-all: 0, keep-none: 1)")


def dropped_count(rate: float, n: int) -> int:
    """Sentences dropped from a passage of ``n``: ``rate * n`` rounded half up."""
    return min(n, int(rate * n + 0.5))


@register_method("random-drop", "context-pruning", RandomDropParams)
class RandomDrop(ContextPruningMethod):
    """Drop round(rate x n) of a passage's n sentences uniformly at random (seeded per question).

    The random generator of each question is seeded with ``"<seed>:<item>"`` (Python's
    ``random.Random`` on a string is deterministic across runs and platforms), so the choice for
    one question does not depend on which other questions are evaluated, or in what order. The
    count is exact (``rate * n`` rounded half up), not a coin per sentence: the measured drop
    rate is the stated one up to rounding. The baseline any relevance-based pruner must beat at
    the same number of sentences.
    """

    params: RandomDropParams

    def select(self, question: str, sentences: list[str], item: str) -> list[int]:
        n = len(sentences)
        rng = random.Random(f"{self.params.seed}:{item}")
        drop = set(rng.sample(range(n), dropped_count(self.params.rate, n)))
        return [i for i in range(n) if i not in drop]
