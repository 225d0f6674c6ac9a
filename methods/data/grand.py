"""GraNd (Paul et al. 2021, "Deep Learning on a Data Diet")."""

from __future__ import annotations

import numpy as np

from harness.datapruning.base import Learner, Pool, ScoreMethod, early_training_scores
from harness.registry import register_method
from methods.data.el2n import EarlyScoreParams, score_seeds


@register_method("grand", "data-pruning", EarlyScoreParams)
class GraNd(ScoreMethod):
    """GraNd: keep the examples with the largest per-example loss-gradient norm (Paul et al. 2021).

    Score of (x, y): ``||grad_theta CE(f(x), y)||_2`` over every parameter of the task's learner
    (per-sample gradients with ``torch.func``), after ``epochs`` epochs on the full pool, averaged
    over ``seeds`` runs; the highest are kept. The paper's GraNd is taken at initialisation
    (``epochs=0``); the default here scores after the same 2 early epochs as EL2N, because at
    initialisation a linear head on L2-normalised embeddings gives nearly the same norm to every
    item (the gradient factorises into ``||p - y|| * sqrt(||x||^2 + 1)`` with p nearly uniform).
    """

    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        p = self.params
        return early_training_scores(self, pool, learner, "grand", p.epochs, score_seeds(p.seeds))
