"""Random subset: the baseline every data-pruning paper compares with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import DataPruningMethod, Learner, Pool
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class RandomParams(MethodParams):
    seed: int = 0  # the permutation of the pool; selections are nested (a fraction's prefix)


@register_method("random", "data-pruning", RandomParams)
class RandomSubset(DataPruningMethod):
    """Random subset of the pool (uniform, without replacement), the baseline of every data-pruning paper.

    One seeded permutation of the pool; a fraction keeps its first m items, so smaller selections
    are subsets of larger ones. Labels and embeddings are not looked at.
    """

    def prepare(self, pool: Pool, learner: Learner) -> None:
        self.permutation = np.random.default_rng(self.params.seed).permutation(len(pool))

    def select_count(self, pool: Pool, m: int, learner: Learner) -> np.ndarray:
        return self.permutation[:m]
