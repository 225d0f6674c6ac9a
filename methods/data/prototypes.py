"""Self-supervised prototype pruning (Sorscher et al. 2022, "Beyond neural scaling laws")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import Keep, Learner, Pool, ScoreMethod, kmeans
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class PrototypeParams(MethodParams):
    clusters: int = 50  # k of k-means over the pool's embeddings
    seed: int = 0  # k-means++ seeding
    keep: Keep = "hard"  # hard: farthest from their prototype kept; easy: nearest; middle

    def check(self) -> None:
        if self.clusters < 1:
            raise ParamError(f"parameter clusters={self.clusters} must be >= 1")


def prototype_distances(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cosine distance of each row to the centroid of its k-means cluster."""
    centroids, assign = kmeans(x, k, seed)
    c = centroids[assign]
    x = np.asarray(x, dtype=np.float64)
    cos = (x * c).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(c, axis=1), 1e-12)
    return 1.0 - cos


@register_method("prototypes", "data-pruning", PrototypeParams)
class Prototypes(ScoreMethod):
    """Self-supervised prototypes: keep the items farthest from their k-means centroid (Sorscher et al. 2022).

    Labels are not used: k-means (``clusters``, k-means++ from ``seed``) over the pool's frozen
    embeddings, difficulty = cosine distance to the item's own centroid, the hardest (farthest)
    kept. The paper clusters SwAV ImageNet embeddings and finds keeping hard examples best when
    data is plentiful and easy ones at aggressive pruning (``keep=easy``); here the embeddings are
    the task's frozen MiniLM sentence embeddings.
    """

    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        return prototype_distances(pool.embeddings, self.params.clusters, self.params.seed)
