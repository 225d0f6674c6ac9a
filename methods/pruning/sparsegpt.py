"""SparseGPT: one-shot pruning with approximate second-order weight reconstruction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from harness.errors import HarnessError, ParamError
from harness.llm.layerwise import calibration_input_ids, prune_sequentially
from harness.llm.pruning import (
    CalibratedSparsityParams,
    Calibration,
    MaskRuleParams,
    PruneReport,
    PruningMethod,
    build_report,
    check_nm_shapes,
    layer_mask,
    parse_pattern,
    prunable_linears,
)
from harness.registry import register_method


@dataclass(frozen=True)
class SparseGPTParams(CalibratedSparsityParams, MaskRuleParams):
    """Sparsity/pattern, calibration, the OBS solver's column block size and dampening, and the
    per-block mask rule (``mask_rule``: ``reference`` or ``exact``) with its inverse (below)."""

    blocksize: int = 128  # columns per lazy-update block (also the mask-selection block)
    percdamp: float = 0.01  # dampening added to diag(H), as a fraction of mean(diag(H))

    def check(self) -> None:
        super().check()
        MaskRuleParams.check(self)
        if self.blocksize < 1:
            raise ParamError(f"blocksize={self.blocksize} must be >= 1")
        if not (0.0 < self.percdamp <= 1.0):
            raise ParamError(f"percdamp={self.percdamp} must be in (0, 1]")
        nm = parse_pattern(self.pattern)
        if nm is not None and self.blocksize % nm[1]:
            raise ParamError(f"blocksize={self.blocksize} must be a multiple of M={nm[1]} for pattern {self.pattern}")


class Hessian:
    """H = 2/n sum_i X_i X_i^T over the calibration windows seen (reference ``add_batch``)."""

    def __init__(self, in_features: int, device: torch.device):
        self.H = torch.zeros(in_features, in_features, dtype=torch.float32, device=device)
        self.nsamples = 0
        self.tokens = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        if inp.ndim == 2:
            inp = inp.unsqueeze(0)
        batch = inp.shape[0]
        x = inp.reshape(-1, inp.shape[-1]).t().float()  # [in, tokens]
        self.H *= self.nsamples / (self.nsamples + batch)
        self.nsamples += batch
        self.tokens += x.shape[1]
        x = math.sqrt(2 / self.nsamples) * x
        self.H += x.matmul(x.t())


@torch.no_grad()
def upper_cholesky_of_inverse(H: torch.Tensor, rule: str) -> torch.Tensor:
    """The upper Cholesky factor U of H^-1 (H^-1 = U^T U), from the lower factor L of H.

    ``reference``: H^-1 by ``torch.cholesky_inverse(L)``, as the reference. ``exact``: H^-1 =
    L^-T L^-1 by a triangular solve (the same matrix in exact arithmetic, several times faster on
    CPU, but rounded differently: on SmolLM2 it moves perplexity by ~3%, within the noise band).
    """
    L = torch.linalg.cholesky(H)
    if rule == "reference":
        Hinv = torch.cholesky_inverse(L)
    else:
        Linv = torch.linalg.solve_triangular(L, torch.eye(L.shape[0], dtype=L.dtype, device=L.device), upper=False)
        Hinv = Linv.t() @ Linv
    return torch.linalg.cholesky(Hinv, upper=True)


def sparsegpt_prune_weight(weight: torch.Tensor, H: torch.Tensor, sparsity: float,
                           nm: tuple[int, int] | None = None, blocksize: int = 128,
                           percdamp: float = 0.01, name: str = "", rule: str = "reference") -> float:
    """Prune ``weight`` [out, in] in place with SparseGPT's blocked OBS update (``fasterprune``).

    ``H`` [in, in] is consumed (modified). Returns the reference's error estimate
    sum((w - q)^2 / d^2) / 2 summed over the layer. ``rule``: ``reference`` computes what the
    reference computes (``cholesky_inverse``; per column block, every score at or below the value
    at position ``int(numel * sparsity)`` of its sorted scores, so one weight more than the target,
    and one even at sparsity 0); ``exact`` uses a triangular solve for H^-1 and prunes exactly
    ``int(numel * sparsity)`` weights per block.
    """
    W = weight.detach().clone().float()
    rows, columns = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1  # inputs that are always zero: any weight there can go, with no error
    W[:, dead] = 0

    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns, device=H.device)
    H[diag, diag] += damp
    try:
        Hinv = upper_cholesky_of_inverse(H, rule)
    except torch.linalg.LinAlgError:
        raise HarnessError(
            f"sparsegpt: the Hessian of layer {name or '?'} is not positive definite even after dampening "
            f"(percdamp={percdamp}); try a larger percdamp or more calibration samples"
        ) from None

    losses = torch.zeros(rows, device=W.device)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        hdiag = torch.diag(Hinv1)

        if nm is None:
            # Mask chosen once per block on the partially updated weights: lowest w^2 / [H^-1]_jj^2.
            mask1 = layer_mask(W1 ** 2 / hdiag.reshape(1, -1) ** 2, sparsity, rule)
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if nm is not None and i % nm[1] == 0:
                # N:M: choose the group's mask when reaching its first column, on updated weights.
                n, m = nm
                tmp = W1[:, i : i + m] ** 2 / hdiag[i : i + m].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        losses += torch.sum(Losses1, 1) / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

    weight.copy_(W.reshape(weight.shape).to(weight.dtype))
    return float(losses.sum().item())


@register_method("sparsegpt", "pruning", SparseGPTParams)
class SparseGPT(PruningMethod):
    """SparseGPT: mask selection and weight reconstruction by a blocked second-order (OBS) update.

    Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
    ICML 2023 (IST-DASLab/sparsegpt, ``fasterprune``). Per linear layer, H = 2/n sum X X^T from
    the calibration inputs, dampened by percdamp * mean(diag H); with the upper Cholesky factor of
    H^-1, columns are processed in blocks of ``blocksize``: each block's mask keeps the largest
    w^2 / [H^-1]_jj^2 (N:M: chosen per group of M columns), and each pruned weight's error is
    compensated on the not yet processed columns. Blocks are pruned sequentially, each calibrated
    on the outputs of the already pruned blocks. By default (``mask_rule=reference``) the
    reference's two numerical choices: H^-1 by ``cholesky_inverse`` and, per column block, every
    score at or below the value at position ``int(numel * sparsity)`` (one weight more than the
    target); ``mask_rule=exact``: a triangular solve and exactly ``int(numel * sparsity)`` per
    block. Version 2: the reference choices became the default (version 1 was ``exact``).
    """

    needs_calibration = True
    version: ClassVar[int] = 2

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        ids = calibration_input_ids(calibration, "sparsegpt")
        nm = parse_pattern(p.pattern)
        check_nm_shapes(prunable_linears(model), nm)
        per_layer: dict[str, dict[str, float | int]] = {}

        def make_stat(_name: str, lin: nn.Linear) -> Hessian:
            return Hessian(lin.in_features, lin.weight.device)

        def prune_block(i: int, _block: nn.Module, linears: dict[str, nn.Linear], stats: dict) -> None:
            for name, lin in linears.items():
                full = f"layers.{i}.{name}"
                hess: Hessian = stats[name]
                err = sparsegpt_prune_weight(lin.weight, hess.H, p.sparsity, nm, p.blocksize, p.percdamp, full,
                                             rule=p.mask_rule)
                hess.H = None  # free as soon as used
                per_layer[full] = {"calibration_tokens": hess.tokens, "obs_error": err}

        info = prune_sequentially(model, ids, make_stat, prune_block, desc="sparsegpt")
        linears = prunable_linears(model)
        report = build_report(linears, p.sparsity, details={
            "pattern": p.pattern, "blocksize": p.blocksize, "percdamp": p.percdamp,
            "mask_rule": p.mask_rule, "method_version": self.version,
            **info, "calibration_source": calibration.source if calibration is not None else None,
        })
        for entry in report.layers:
            entry.update(per_layer.get(entry["name"], {}))
        return report
