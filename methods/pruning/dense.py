"""The unpruned baseline."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from harness.params import MethodParams
from harness.llm.pruning import Calibration, PruneReport, PruningMethod, build_report, prunable_linears
from harness.registry import register_method


@dataclass(frozen=True)
class DenseParams(MethodParams):
    """The dense baseline has no parameters."""


@register_method("dense", "pruning", DenseParams)
class Dense(PruningMethod):
    """Dense baseline: the model as loaded, nothing pruned.

    The reference point of every pruning leaderboard (the "Dense" row of the SparseGPT and Wanda
    tables: Frantar & Alistarh, ICML 2023; Sun et al., ICLR 2024). The report measures the zero
    fraction of the block linears, which is 0 for a trained model.
    """

    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        return build_report(prunable_linears(model), 0.0)
