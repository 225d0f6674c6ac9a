"""Magnitude pruning: the data-free baseline of the SparseGPT and Wanda papers."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.llm.pruning import (
    Calibration,
    PruneReport,
    PruningMethod,
    SparsityParams,
    build_report,
    check_nm_shapes,
    nm_mask_from_scores,
    parse_pattern,
    prunable_linears,
    unstructured_mask_from_scores,
)
from harness.registry import register_method


def magnitude_mask(weight: torch.Tensor, sparsity: float, nm: tuple[int, int] | None) -> torch.Tensor:
    """True where a weight is pruned: the ``sparsity`` fraction of smallest |W| over the whole
    matrix (layer-wise, as the Wanda repository's magnitude baseline), or the N smallest |W| in
    every group of M consecutive inputs of each row."""
    scores = weight.detach().abs().float()
    if nm is not None:
        return nm_mask_from_scores(scores, *nm)
    return unstructured_mask_from_scores(scores, sparsity, per_row=False)


@register_method("magnitude", "pruning", SparsityParams)
class Magnitude(PruningMethod):
    """Magnitude pruning: zero the smallest-|W| weights of every block linear, layer by layer.

    The baseline of SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
    Accurately Pruned in One-Shot", ICML 2023) and Wanda (Sun et al., "A Simple and Effective
    Pruning Approach for Large Language Models", ICLR 2024), following ``prune_magnitude`` in
    locuslab/wanda: unstructured sparsity compares weights within each whole matrix; N:M sparsity
    zeroes the N smallest of every M consecutive input weights of each row. Needs no data. The
    reference's ``<=`` threshold prunes one extra weight per matrix (more on ties); here exactly
    ``int(numel * sparsity)`` weights are pruned.
    """

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        nm = parse_pattern(p.pattern)
        check_nm_shapes(prunable_linears(model), nm)
        linears = prunable_linears(model)
        for _name, lin in tqdm(linears.items(), desc="magnitude", unit="layer", disable=None):
            lin.weight[magnitude_mask(lin.weight, p.sparsity, nm)] = 0
        return build_report(linears, p.sparsity, details={
            "pattern": p.pattern, "comparison_group": "layer" if nm is None else "N:M group",
        })
