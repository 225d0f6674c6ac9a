"""Coverage-centric coreset selection (CCS; Zheng et al. 2023, ICLR)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import DataPruningMethod, Learner, Pool, early_training_scores
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method
from methods.data.el2n import score_seeds


@dataclass(frozen=True)
class CCSParams(MethodParams):
    beta: float = 0.1  # fraction of the pool removed first: the hardest (highest EL2N)
    strata: int = 50  # equal-width bins over the remaining score range
    seed: int = 0  # random sampling inside the strata
    epochs: int = 2  # EL2N importance score: epochs of the task's learner on the full pool
    seeds: int = 5  # EL2N training runs averaged

    def check(self) -> None:
        if not 0.0 <= self.beta < 1.0:
            raise ParamError(f"parameter beta={self.beta} must be in [0, 1)")
        if self.strata < 1:
            raise ParamError(f"parameter strata={self.strata} must be >= 1")
        if self.epochs < 0 or not 1 <= self.seeds <= 100:
            raise ParamError(f"parameters epochs={self.epochs} (>= 0), seeds={self.seeds} ([1, 100]) out of range")


def strata_of(scores: np.ndarray, k: int) -> np.ndarray:
    """Stratum (0..k-1) of each score: k equal-width bins over [min, max], the max in the last."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return np.zeros(len(scores), dtype=np.int64)
    return np.minimum(((scores - lo) / (hi - lo) * k).astype(np.int64), k - 1)


def ccs_select(scores: np.ndarray, m: int, beta: float, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CCS (Zheng et al. 2023, Algorithm 1): drop the ``beta`` hardest (at most ``n - m``, so ``m``
    can still be kept), cut the rest into ``k`` equal-width score strata, then repeatedly give the
    smallest non-empty stratum ``min(its size, budget // strata left)`` random picks.
    Returns (selected indices, stratum of every item; -1 for the pruned hardest)."""
    n = len(scores)
    cut = min(int(np.floor(beta * n)), n - m)
    order = np.argsort(-scores, kind="stable")
    keep = np.sort(order[cut:])
    stratum = np.full(n, -1, dtype=np.int64)
    stratum[keep] = strata_of(scores[keep], k)
    groups = [g for g in (keep[stratum[keep] == s] for s in range(k)) if len(g)]
    chosen: list[np.ndarray] = []
    budget = m
    while groups:
        sizes = [len(g) for g in groups]
        i = int(np.argmin(sizes))  # ties: the lowest stratum
        g = groups.pop(i)
        take = min(len(g), budget // (len(groups) + 1))
        chosen.append(rng.choice(g, size=take, replace=False))
        budget -= take
    out = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if budget > 0:  # floor division left some budget: fill at random from the kept items
        rest = np.setdiff1d(keep, out)
        out = np.concatenate([out, rng.choice(rest, size=budget, replace=False)])
    return out, stratum


@register_method("ccs", "data-pruning", CCSParams)
class CCS(DataPruningMethod):
    """CCS: stratified sampling over the EL2N score distribution after removing the hardest (Zheng et al. 2023).

    Coverage-centric coreset selection: remove the ``beta`` hardest fraction (highest EL2N, the
    task's learner after ``epochs`` epochs averaged over ``seeds`` runs, as in :mod:`el2n`), split
    the remaining score range into ``strata`` equal-width bins, and allocate the budget from the
    smallest bin up, each getting an equal share of what is left (Algorithm 1 of the paper). The
    paper tunes beta per pruning rate (0 at low rates, up to 0.4 at 90%); here one beta is used for
    every fraction, and the cut is capped at ``n - m`` so a large fraction can still be filled.
    """

    def prepare(self, pool: Pool, learner: Learner) -> None:
        p = self.params
        self.item_scores = early_training_scores(self, pool, learner, "el2n", p.epochs, score_seeds(p.seeds))

    def select_count(self, pool: Pool, m: int, learner: Learner) -> np.ndarray:
        rng = np.random.default_rng([self.params.seed, m])
        return ccs_select(self.item_scores, m, self.params.beta, self.params.strata, rng)[0]
