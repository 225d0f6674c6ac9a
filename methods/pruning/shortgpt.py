"""ShortGPT: remove the transformer blocks with the lowest Block Influence."""

from __future__ import annotations

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
class ShortGPTParams(LayerRemovalParams):
    """Blocks to remove (``blocks`` or ``fraction``) and the calibration windows for Block Influence."""


@torch.inference_mode()
def block_influence(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 4) -> list[float]:
    """BI_i = 1 - mean over all calibration tokens t of cos(X_{i,t}, X_{i+1,t}), where X_i is the
    hidden state entering block i and X_{i+1} the one leaving it (Men et al. 2024, eq. 1)."""
    _, _, blocks = block_list(model)
    sums = torch.zeros(len(blocks), dtype=torch.float64)
    counts = torch.zeros(len(blocks), dtype=torch.float64)

    def accumulate(i: int, h_in: torch.Tensor, h_out: torch.Tensor) -> None:
        cos = torch.nn.functional.cosine_similarity(h_in.float(), h_out.float(), dim=-1)  # [batch, seq]
        sums[i] += cos.double().sum().cpu()
        counts[i] += cos.numel()

    for_each_block_io(model, input_ids, batch_size, accumulate, desc="shortgpt block influence")
    return (1.0 - sums / counts).tolist()


@register_method("shortgpt", "pruning", ShortGPTParams)
class ShortGPT(PruningMethod):
    """ShortGPT: delete the blocks whose output is most similar to their input (lowest Block Influence).

    Men et al., "ShortGPT: Layers in Large Language Models are More Redundant Than You Expect"
    (2024). Block Influence BI_i = 1 - E_{X,t}[cos(X_{i,t}, X_{i+1,t})] over the tokens of the
    calibration windows, computed once on the unpruned model; the ``blocks`` blocks with the lowest
    BI are deleted in one shot (no retraining). The blocks really go: the model has L-k blocks
    afterwards. Defaults: 32 windows of 1,024 tokens (small, the BI ranking is stable early);
    the calibration set is the harness's ('auto': C4 sample, or the declared offline fallback),
    not the paper's PG19.
    """

    needs_calibration = True
    removes_weights = True

    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        ids = require_calibration(calibration, "shortgpt")
        num_blocks = len(block_list(model)[2])
        k = p.count(num_blocks)
        linear_counts, block_params = block_linear_counts(model), block_parameter_counts(model)
        bi = block_influence(model, ids, p.batch_size)
        # lowest BI first; ties broken by the lower index (stable sort)
        order = sorted(range(num_blocks), key=lambda i: (bi[i], i))
        removed = sorted(order[:k])
        remove_blocks(model, removed)
        return removal_report(
            "shortgpt", removed, {"block_influence": bi}, linear_counts, block_params, num_blocks,
            {"removal_order": order[:k]},
        )
