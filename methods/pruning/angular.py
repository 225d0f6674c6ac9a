"""Contiguous block removal by angular distance (Gromov et al. 2024)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.llm.pruning import Calibration, PruneReport, PruningMethod
from harness.registry import register_method
from methods.pruning._layer_removal import (
    LayerRemovalParams,
    block_linear_counts,
    block_list,
    block_parameter_counts,
    for_each_block_io,
    removal_report,
    remove_blocks,
    require_calibration,
)


@dataclass(frozen=True)
class AngularParams(LayerRemovalParams):
    """Blocks to remove (``blocks`` = n, or ``fraction``) and the calibration windows."""


@torch.inference_mode()
def last_token_states(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """x^(l)_T for l = 0..L: the residual stream at the last position entering block 0 (l=0) and
    leaving every block, per calibration window: float64 [nsamples, L+1, hidden]."""
    _, _, blocks = block_list(model)
    states: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(blocks) + 1)}

    def record(i: int, h_in: torch.Tensor, h_out: torch.Tensor) -> None:
        if i == 0:
            states[0].append(h_in[:, -1, :].double().cpu())
        states[i + 1].append(h_out[:, -1, :].double().cpu())

    for_each_block_io(model, input_ids, batch_size, record, desc="angular distances")
    return torch.stack([torch.cat(states[i]) for i in range(len(blocks) + 1)], dim=1)


def angular_distances(states: torch.Tensor, n: int) -> torch.Tensor:
    """d(x^(l), x^(l+n)) = arccos(cos(x^(l)_T, x^(l+n)_T)) / pi averaged over windows, for every
    start l = 0..L-n. ``states``: [nsamples, L+1, hidden]."""
    a, b = states[:, : states.shape[1] - n, :], states[:, n:, :]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0)
    return (torch.arccos(cos) / math.pi).mean(dim=0)


@register_method("angular", "pruning", AngularParams)
class Angular(PruningMethod):
    """Angular-distance layer pruning: delete the n contiguous blocks that change the last token least.

    Gromov et al., "The Unreasonable Ineffectiveness of the Deeper Layers" (2024). With x^(l)_T the
    residual stream of the last token entering block l, the start l* = argmin_l of
    arccos(cos(x^(l)_T, x^(l+n)_T)) / pi averaged over the calibration windows, and blocks
    l*..l*+n-1 are deleted; no healing (the paper's QLoRA healing step is not applied). Ties go to
    the smallest l. Defaults: 32 windows of 1,024 tokens from the harness's calibration set.
    """

    needs_calibration = True
    removes_weights = True

    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        ids = require_calibration(calibration, "angular")
        num_blocks = len(block_list(model)[2])
        n = p.count(num_blocks)
        linear_counts, block_params = block_linear_counts(model), block_parameter_counts(model)
        dist = angular_distances(last_token_states(model, ids, p.batch_size), n)
        start = int(torch.argmin(dist))  # first minimum on ties
        removed = list(range(start, start + n))
        remove_blocks(model, removed)
        return removal_report(
            "angular", removed, {"angular_distance_by_start": dist.tolist()}, linear_counts, block_params, num_blocks,
            {"start": start, "n": n, "token": "last", "healing": None},
        )
