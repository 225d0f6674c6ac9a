"""Wanda: pruning by weights and activations (Sun et al., ICLR 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.llm.layerwise import calibration_input_ids, prune_sequentially
from harness.llm.pruning import (
    CalibratedSparsityParams,
    Calibration,
    PruneReport,
    PruningMethod,
    build_report,
    check_nm_shapes,
    nm_mask_from_scores,
    parse_pattern,
    prunable_linears,
    unstructured_mask_from_scores,
)
from harness.registry import register_method


@dataclass(frozen=True)
class WandaParams(CalibratedSparsityParams):
    """Target sparsity/pattern and the calibration windows Wanda measures activations on."""


class InputNorms:
    """Squared L2 norm of every input feature over all calibration tokens seen so far.

    The reference's ``WrappedGPT.scaler_row`` update, kept as is: a running mean over windows of
    the per-window squared norms, i.e. ||X_j||^2 / nsamples. The constant 1/nsamples does not
    change the order of scores within a layer.
    """

    def __init__(self, in_features: int, device: torch.device):
        self.scaler_row = torch.zeros(in_features, dtype=torch.float32, device=device)
        self.nsamples = 0
        self.tokens = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        if inp.ndim == 2:
            inp = inp.unsqueeze(0)
        batch = inp.shape[0]
        x = inp.reshape(-1, inp.shape[-1]).float()
        self.scaler_row *= self.nsamples / (self.nsamples + batch)
        self.nsamples += batch
        self.tokens += x.shape[0]
        self.scaler_row += torch.linalg.vector_norm(x, ord=2, dim=0) ** 2 / self.nsamples


def wanda_scores(weight: torch.Tensor, scaler_row: torch.Tensor) -> torch.Tensor:
    """|W_ij| * ||X_j||_2 (up to a per-layer constant)."""
    return weight.detach().abs().float() * torch.sqrt(scaler_row).reshape(1, -1)


def wanda_mask(scores: torch.Tensor, sparsity: float, nm: tuple[int, int] | None) -> torch.Tensor:
    """True = prune: the lowest ``int(in_features * sparsity)`` scores of each output row, or the N
    lowest of every M consecutive inputs of each row."""
    if nm is not None:
        return nm_mask_from_scores(scores, *nm)
    return unstructured_mask_from_scores(scores, sparsity, per_row=True)


@register_method("wanda", "pruning", WandaParams)
class Wanda(PruningMethod):
    """Wanda: prune the weights with the smallest |W| x input-activation norm, per output row.

    Sun, Liu, Bair & Kolter, "A Simple and Effective Pruning Approach for Large Language Models",
    ICLR 2024 (locuslab/wanda, ``prune_wanda``). Each weight is scored |W_ij| * ||X_j||_2, where
    ||X_j|| is the L2 norm of input feature j over all calibration tokens; within each output row
    the lowest ``int(in_features * sparsity)`` scores are zeroed (for N:M, the N lowest in every
    group of M inputs). Blocks are pruned one after another, each calibrated on the outputs of the
    already pruned blocks before it. No weight update.
    """

    needs_calibration = True

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        ids = calibration_input_ids(calibration, "wanda")
        nm = parse_pattern(p.pattern)
        check_nm_shapes(prunable_linears(model), nm)
        tokens_seen: dict[str, int] = {}

        def make_stat(_name: str, lin: nn.Linear) -> InputNorms:
            return InputNorms(lin.in_features, lin.weight.device)

        def prune_block(i: int, _block: nn.Module, linears: dict[str, nn.Linear], stats: dict) -> None:
            for name, lin in linears.items():
                stat: InputNorms = stats[name]
                mask = wanda_mask(wanda_scores(lin.weight, stat.scaler_row), p.sparsity, nm)
                lin.weight[mask] = 0
                tokens_seen[f"layers.{i}.{name}"] = stat.tokens

        info = prune_sequentially(model, ids, make_stat, prune_block, desc="wanda")
        linears = prunable_linears(model)
        report = build_report(linears, p.sparsity, details={
            "pattern": p.pattern, "comparison_group": "output row" if nm is None else "N:M group",
            **info, "calibration_source": calibration.source if calibration is not None else None,
        })
        for entry in report.layers:
            entry["calibration_tokens"] = tokens_seen.get(entry["name"])
        return report
