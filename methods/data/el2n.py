"""EL2N (Paul et al. 2021, "Deep Learning on a Data Diet")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import Keep, Learner, Pool, ScoreMethod, early_training_scores
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class EarlyScoreParams(MethodParams):
    epochs: int = 2  # epochs of the task's learner on the full pool before scoring (0: at initialisation)
    seeds: int = 5  # training runs averaged (seeds 1000, 1001, ...: never the task's evaluation seed)
    keep: Keep = "hard"  # hard: highest scores kept (the paper); easy: lowest; middle: nearest the median

    def check(self) -> None:
        if self.epochs < 0:
            raise ParamError(f"parameter epochs={self.epochs} must be >= 0")
        if not 1 <= self.seeds <= 100:
            raise ParamError(f"parameter seeds={self.seeds} must be in [1, 100]")


def score_seeds(n: int) -> list[int]:
    return [1000 + i for i in range(n)]


@register_method("el2n", "data-pruning", EarlyScoreParams)
class EL2N(ScoreMethod):
    """EL2N: keep the examples with the largest error L2 norm early in training (Paul et al. 2021).

    Score of (x, y): ``||softmax(f(x)) - onehot(y)||_2`` under the task's own learner after
    ``epochs`` epochs on the full pool, averaged over ``seeds`` training runs; the hardest (highest)
    are kept. The paper scores a ResNet after ~10% of training (20 of 200 epochs) averaged over 10
    runs; here the learner is the task's head (2 of its 20 epochs by default, 5 runs). The scoring
    runs' cost is stored as ``scoring_examples_seen``.
    """

    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        p = self.params
        return early_training_scores(self, pool, learner, "el2n", p.epochs, score_seeds(p.seeds))
