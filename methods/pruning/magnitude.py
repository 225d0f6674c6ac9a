"""Magnitude pruning: the data-free baseline of the SparseGPT and Wanda papers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.llm.pruning import (
    Calibration,
    MaskRuleParams,
    PruneReport,
    PruningMethod,
    SparsityParams,
    build_report,
    check_nm_shapes,
    nm_mask_from_scores,
    layer_mask,
    parse_pattern,
    prunable_linears,
)
from harness.registry import register_method


@dataclass(frozen=True)
class MagnitudeParams(SparsityParams, MaskRuleParams):
    """Target sparsity/pattern and the mask rule of unstructured sparsity (``mask_rule``)."""

    def check(self) -> None:
        SparsityParams.check(self)
        MaskRuleParams.check(self)


def magnitude_mask(weight: torch.Tensor, sparsity: float, nm: tuple[int, int] | None,
                   rule: str = "reference") -> torch.Tensor:
    """True where a weight is pruned: the smallest |W| over the whole matrix (layer-wise, as the
    Wanda repository's magnitude baseline) under ``rule`` (``reference``: every |W| at or below
    sorted(|W|)[int(numel * sparsity)]; ``exact``: exactly int(numel * sparsity) of them), or the
    N smallest |W| in every group of M consecutive inputs of each row."""
    scores = weight.detach().abs().float()
    if nm is not None:
        return nm_mask_from_scores(scores, *nm)
    return layer_mask(scores, sparsity, rule)


@register_method("magnitude", "pruning", MagnitudeParams)
class Magnitude(PruningMethod):
    """Magnitude pruning: zero the smallest-|W| weights of every block linear, layer by layer.

    The baseline of SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
    Accurately Pruned in One-Shot", ICML 2023) and Wanda (Sun et al., "A Simple and Effective
    Pruning Approach for Large Language Models", ICLR 2024), following ``prune_magnitude`` in
    locuslab/wanda: unstructured sparsity compares weights within each whole matrix; N:M sparsity
    zeroes the N smallest of every M consecutive input weights of each row. Needs no data. By
    default (``mask_rule=reference``) the reference's rule: every weight with |W| at or below the
    value at position ``int(numel * sparsity)`` of the sorted |W| (one weight more than the target,
    plus every weight tied with it); ``mask_rule=exact`` prunes exactly ``int(numel * sparsity)``.
    Version 2: the reference rule became the default (version 1 pruned exactly).
    """

    version: ClassVar[int] = 2

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        nm = parse_pattern(p.pattern)
        check_nm_shapes(prunable_linears(model), nm)
        linears = prunable_linears(model)
        for _name, lin in tqdm(linears.items(), desc="magnitude", unit="layer", disable=None):
            lin.weight[magnitude_mask(lin.weight, p.sparsity, nm, p.mask_rule)] = 0
        return build_report(linears, p.sparsity, details={
            "pattern": p.pattern, "comparison_group": "layer" if nm is None else "N:M group",
            "mask_rule": p.mask_rule, "method_version": self.version,
        })
