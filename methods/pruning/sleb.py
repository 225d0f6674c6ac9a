"""SLEB: remove transformer blocks one at a time by calibration perplexity."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from tqdm.auto import tqdm

from harness.llm.pruning import Calibration, PruneReport, PruningMethod
from harness.registry import register_method
from methods.pruning._layer_removal import (
    LayerRemovalParams,
    block_linear_counts,
    block_list,
    block_parameter_counts,
    calibration_nll,
    perplexity,
    removal_report,
    remove_blocks,
    require_calibration,
    without_blocks,
)


@dataclass(frozen=True)
class SLEBParams(LayerRemovalParams):
    """Blocks to remove (``blocks`` or ``fraction``) and the calibration windows scored each round."""

    nsamples: int = 16


@register_method("sleb", "pruning", SLEBParams)
class SLEB(PruningMethod):
    """SLEB: greedily delete the block whose removal raises calibration perplexity least, re-scoring after each.

    Song et al., "SLEB: Streamlining LLMs through Redundancy Verification and Elimination of
    Transformer Blocks" (ICML 2024), Algorithm 1: in each of k rounds, every remaining block is
    tentatively removed, the calibration perplexity of the model without it is measured, and the
    block with the lowest perplexity is removed for good before the next round. Cost: about
    k*L full forward passes over the calibration windows. The paper calibrates on 128 windows of
    2,048 tokens of WikiText-2 train; the default here is 16 windows of 1,024 tokens of the
    harness's calibration set ('auto'), because each round costs L passes.
    """

    needs_calibration = True
    removes_weights = True

    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        ids = require_calibration(calibration, "sleb")
        num_blocks = len(block_list(model)[2])
        k = p.count(num_blocks)
        linear_counts, block_params = block_linear_counts(model), block_parameter_counts(model)
        nll, tokens = calibration_nll(model, ids, p.batch_size)
        rounds = []
        removed: list[int] = []  # original indices, in removal order
        bar = tqdm(total=k * num_blocks - k * (k - 1) // 2, desc="sleb candidates", unit="pass", disable=None)
        for _ in range(k):
            candidates = {}
            for c in range(num_blocks):
                if c in removed:
                    continue
                with without_blocks(model, removed + [c]):
                    candidates[c] = perplexity(*calibration_nll(model, ids, p.batch_size))
                bar.update(1)
            best = min(candidates, key=lambda c: (candidates[c], c))
            removed.append(best)
            rounds.append({"removed": best, "ppl": candidates[best],
                           "candidates": {str(c): v for c, v in candidates.items()}})
        bar.close()
        remove_blocks(model, removed)
        return removal_report(
            "sleb", removed, {"rounds": rounds}, linear_counts, block_params, num_blocks,
            {"removal_order": removed, "calibration_ppl_before": perplexity(nll, tokens),
             "calibration_ppl_after": rounds[-1]["ppl"]},
        )
