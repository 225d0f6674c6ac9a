"""SemDeDup: semantic de-duplication with embeddings (Abbas et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import DataPruningMethod, Learner, Pool, kmeans
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class SemDeDupParams(MethodParams):
    clusters: int = 50  # k of k-means over the pool's embeddings
    threshold: float = 0.9  # cosine similarity above which a later item is a near-duplicate
    seed: int = 0  # k-means++ seeding and the random down-sampling of the de-duplicated set

    def check(self) -> None:
        if self.clusters < 1:
            raise ParamError(f"parameter clusters={self.clusters} must be >= 1")
        if not -1.0 < self.threshold < 1.0:
            raise ParamError(f"parameter threshold={self.threshold} must be in (-1, 1)")


def duplicate_similarity(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Per item, its largest cosine similarity to an item ranked before it in its k-means cluster
    (cluster items ranked farthest-from-centroid first, as SemDeDup keeps the one least similar to
    the centroid); -1 for the first of each cluster."""
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centroids, assign = kmeans(xn, k, seed)
    out = np.full(len(x), -1.0)
    for j in range(len(centroids)):
        members = np.flatnonzero(assign == j)
        if len(members) < 2:
            continue
        c = centroids[j] / max(np.linalg.norm(centroids[j]), 1e-12)
        members = members[np.argsort(xn[members] @ c, kind="stable")]  # least similar to centroid first
        sim = xn[members] @ xn[members].T
        earlier = np.triu(sim, k=1)  # sim[a, b] for a ranked before b
        earlier[np.tril_indices(len(members))] = -1.0
        out[members] = earlier.max(0)
        out[members[0]] = -1.0
    return out


@register_method("semdedup", "data-pruning", SemDeDupParams)
class SemDeDup(DataPruningMethod):
    """SemDeDup: drop semantic near-duplicates within k-means clusters, then fill to the fraction (Abbas et al. 2023).

    k-means over the embeddings; inside each cluster, items ranked least-similar-to-centroid first,
    and an item whose cosine similarity to any item ranked before it exceeds ``threshold`` is a
    duplicate (the paper's triangular similarity-matrix rule). The fraction is then filled: a seeded
    random sample of the non-duplicates when they are more than needed, else all of them plus the
    least redundant duplicates (lowest similarity first). The paper instead picks the threshold that
    reaches the target size; with a fixed threshold the two agree whenever duplicates alone are removed.
    """

    def prepare(self, pool: Pool, learner: Learner) -> None:
        p = self.params
        self.similarity = duplicate_similarity(pool.embeddings, p.clusters, p.seed)
        self.duplicate = self.similarity > p.threshold
        self.stats["duplicates"] = int(self.duplicate.sum())

    def select_count(self, pool: Pool, m: int, learner: Learner) -> np.ndarray:
        unique = np.flatnonzero(~self.duplicate)
        if len(unique) >= m:
            return np.random.default_rng([self.params.seed, m]).choice(unique, size=m, replace=False)
        dups = np.flatnonzero(self.duplicate)
        dups = dups[np.argsort(self.similarity[dups], kind="stable")]
        return np.concatenate([unique, dups[:m - len(unique)]])
