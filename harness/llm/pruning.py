"""The pruning family's interface and the helpers its adapters share.

A pruning adapter receives a causal LM (in place) and, when it asks for it, calibration data; it
changes the model and returns a :class:`PruneReport` of what it did. Adapters prune the linear
layers inside the transformer blocks and leave embeddings and the LM head dense, as the papers do.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from harness.errors import ParamError
from harness.params import MethodParams

# ---------------------------------------------------------------------------------------------
# Parameters shared by pruning methods


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """'unstructured' -> None; 'N:M' -> (N, M): N zeros in every group of M consecutive inputs."""
    if pattern == "unstructured":
        return None
    try:
        n_str, m_str = pattern.split(":")
        n, m = int(n_str), int(m_str)
    except ValueError:
        raise ParamError(f"pattern {pattern!r} must be 'unstructured' or 'N:M' (e.g. 2:4)") from None
    if not (0 < n < m):
        raise ParamError(f"pattern {pattern!r}: need 0 < N < M (N zeros in every group of M weights)")
    return n, m


@dataclass(frozen=True)
class SparsityParams(MethodParams):
    """Target sparsity and pattern. For N:M patterns the sparsity is N/M and must agree."""

    sparsity: float = 0.5
    pattern: str = "unstructured"

    def check(self) -> None:
        if not (0.0 <= self.sparsity < 1.0):
            raise ParamError(f"sparsity={self.sparsity} must be in [0, 1)")
        nm = parse_pattern(self.pattern)
        if nm is not None and abs(self.sparsity - nm[0] / nm[1]) > 1e-9:
            raise ParamError(
                f"pattern {self.pattern} fixes sparsity at {nm[0] / nm[1]:g}; got sparsity={self.sparsity}"
            )


@dataclass(frozen=True)
class CalibrationParams(MethodParams):
    """How many calibration windows of which length, from which source, with which seed."""

    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0
    calibration: str = "auto"  # a calibration set id (tasks/calibration/*.yaml) or 'auto'

    def check(self) -> None:
        if self.nsamples < 1:
            raise ParamError(f"nsamples={self.nsamples} must be >= 1")
        if self.seqlen < 8:
            raise ParamError(f"seqlen={self.seqlen} must be >= 8")


@dataclass(frozen=True)
class CalibratedSparsityParams(SparsityParams, CalibrationParams):
    def check(self) -> None:
        SparsityParams.check(self)
        CalibrationParams.check(self)


# ---------------------------------------------------------------------------------------------
# What an adapter receives and returns


@dataclass
class Calibration:
    """Calibration windows (``input_ids``: LongTensor [nsamples, seqlen]) and where they came from."""

    input_ids: torch.Tensor
    source: dict[str, Any]


@dataclass
class PruneReport:
    """What a pruning adapter did. ``layers`` has one entry per pruned module."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0  # parameters that remain (non-zero for masks; count for removals)
    target_sparsity: float | None = None
    measured_sparsity: float | None = None  # zero fraction over the pruned linear layers
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PruningMethod(ABC):
    """Base class of pruning adapters. Subclasses are registered with ``register_method``."""

    method_name: ClassVar[str]
    family: ClassVar[str] = "pruning"
    Params: ClassVar[type[MethodParams]]
    needs_calibration: ClassVar[bool] = False

    def __init__(self, params: MethodParams):
        self.params = params

    @abstractmethod
    def prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        """Change ``model`` in place and report what was done."""


# ---------------------------------------------------------------------------------------------
# Shared helpers


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM (Llama/Mistral/Qwen/Gemma/OPT/GPT-2 layouts)."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers inside one block, by their name within the block."""
    return {name: mod for name, mod in block.named_modules() if isinstance(mod, nn.Linear)}


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every linear layer inside the transformer blocks, by full name (embeddings/LM head excluded)."""
    out = {}
    for i, block in enumerate(transformer_blocks(model)):
        for name, mod in block_linears(block).items():
            out[f"layers.{i}.{name}"] = mod
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_parameters(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p).item()) for p in model.parameters())


def measured_sparsity(linears: dict[str, nn.Linear]) -> float:
    zeros = sum(int((m.weight == 0).sum().item()) for m in linears.values())
    total = sum(m.weight.numel() for m in linears.values())
    return zeros / total if total else 0.0


def layer_entry(name: str, module: nn.Linear, target: float) -> dict[str, Any]:
    w = module.weight
    return {
        "name": name,
        "shape": list(w.shape),
        "target_sparsity": target,
        "measured_sparsity": float((w == 0).sum().item()) / w.numel(),
    }


def nm_mask_from_scores(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask (True = prune) with exactly n lowest-score entries in every group of m
    consecutive inputs of each output row. ``scores``: [out, in], in % m == 0."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"input dimension {cols} is not a multiple of M={m}")
    groups = scores.reshape(rows, cols // m, m)
    idx = torch.topk(groups, n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, idx, True)
    return mask.reshape(rows, cols)


def build_report(model: nn.Module, linears: dict[str, nn.Linear], target: float, params_before: int,
                 details: dict[str, Any] | None = None) -> PruneReport:
    return PruneReport(
        layers=[layer_entry(name, mod, target) for name, mod in linears.items()],
        params_before=params_before,
        params_after=count_nonzero_parameters(model),
        target_sparsity=target,
        measured_sparsity=measured_sparsity(linears),
        details=details or {},
    )


def unstructured_mask_from_scores(scores: torch.Tensor, sparsity: float, per_row: bool) -> torch.Tensor:
    """Boolean mask (True = prune) of exactly ``int(n * sparsity)`` lowest-score entries, where the
    comparison group is each output row (``per_row``, n = in_features, as Wanda) or the whole
    matrix (n = numel, as the magnitude baseline). Ties at the threshold go to the lower index,
    as a stable sort would order them, so the count is exact."""
    flat = scores.reshape(scores.shape[0], -1) if per_row else scores.reshape(1, -1)
    k = int(flat.shape[1] * sparsity)
    if k == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    # k-th smallest per group (a selection, several times faster than sorting a large matrix)
    thr = torch.kthvalue(flat, k, dim=1, keepdim=True).values
    mask = flat < thr
    at_thr = flat == thr
    missing = k - mask.sum(dim=1, keepdim=True)
    mask |= at_thr & (torch.cumsum(at_thr, dim=1) <= missing)
    return mask.reshape(scores.shape)


def check_nm_shapes(linears: dict[str, nn.Linear], nm: tuple[int, int] | None) -> None:
    """Refuse an N:M pattern up front when some layer's input dimension is not a multiple of M."""
    if nm is None:
        return
    bad = [f"{name} (in_features={mod.in_features})" for name, mod in linears.items() if mod.in_features % nm[1]]
    if bad:
        raise ParamError(f"pattern {nm[0]}:{nm[1]} needs in_features divisible by {nm[1]}; not so for {', '.join(bad[:3])}")
