"""Shared machinery of the layer-removal methods (ShortGPT, SLEB, angular distance).

Removal really shrinks the model: the blocks leave the ``nn.ModuleList``, ``config.num_hidden_layers``
(and ``config.layer_types`` where present) are updated, and every remaining module's ``layer_idx``
is renumbered, since transformers 5 indexes the KV cache by it. The result generates and
round-trips through ``save_pretrained``/``from_pretrained`` as an (L-k)-block model.

Hidden states are captured with hooks on the blocks themselves (input and output of block i are
the residual stream before and after it, never the final-normed output that ``output_hidden_states``
reports as its last element).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from harness.errors import HarnessError, ParamError
from harness.llm.latency import accepts_logits_to_keep
from harness.llm.pruning import CalibrationParams, PruneReport, block_linears

_BLOCK_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers")


@dataclass(frozen=True)
class LayerRemovalParams(CalibrationParams):
    """How many blocks to remove: ``blocks`` (a count) or ``fraction`` (of the blocks, rounded to
    the nearest count) -- exactly one of them -- and the calibration windows used to choose."""

    blocks: int | None = None
    fraction: float | None = None
    nsamples: int = 32
    seqlen: int = 1024
    batch_size: int = 4  # calibration windows per forward; does not change the result

    NON_SEMANTIC = ("batch_size",)

    def check(self) -> None:
        CalibrationParams.check(self)
        if (self.blocks is None) == (self.fraction is None):
            raise ParamError("give exactly one of blocks=K (a count) or fraction=F (of the blocks), e.g. blocks=4")
        if self.blocks is not None and self.blocks < 1:
            raise ParamError(f"blocks={self.blocks} must be >= 1")
        if self.fraction is not None and not (0.0 < self.fraction < 1.0):
            raise ParamError(f"fraction={self.fraction} must be in (0, 1)")
        if self.batch_size < 1:
            raise ParamError(f"batch_size={self.batch_size} must be >= 1")

    def check_block_count(self, num_blocks: int) -> None:
        """Called with the block count read from the model's config, before its weights load."""
        self.count(num_blocks)

    def count(self, num_blocks: int) -> int:
        k = self.blocks if self.blocks is not None else int(round(self.fraction * num_blocks))
        if not (1 <= k < num_blocks):
            asked = f"blocks={self.blocks}" if self.blocks is not None else f"fraction={self.fraction} -> {k} blocks"
            raise ParamError(f"{asked}: must remove between 1 and {num_blocks - 1} of the model's {num_blocks} blocks")
        return k


def block_list(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent module, attribute name, ModuleList) of the decoder blocks."""
    for path in _BLOCK_PATHS:
        parent: Any = model
        parts = path.split(".")
        try:
            for part in parts[:-1]:
                parent = getattr(parent, part)
            blocks = getattr(parent, parts[-1])
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return parent, parts[-1], blocks
    raise HarnessError(f"cannot find the transformer blocks of {type(model).__name__}")


def _set_blocks(model: nn.Module, blocks: list[nn.Module]) -> None:
    parent, attr, _ = block_list(model)
    setattr(parent, attr, nn.ModuleList(blocks))


@contextmanager
def without_blocks(model: nn.Module, removed: set[int] | list[int]) -> Iterator[None]:
    """Temporarily run ``model`` without some blocks (no cache: layer indices are left alone)."""
    parent, attr, original = block_list(model)
    cfg = model.config
    n_layers = cfg.num_hidden_layers
    setattr(parent, attr, nn.ModuleList([b for i, b in enumerate(original) if i not in set(removed)]))
    cfg.num_hidden_layers = len(original) - len(set(removed))  # Llama's forward slices layers by it
    try:
        yield
    finally:
        setattr(parent, attr, original)
        cfg.num_hidden_layers = n_layers


def remove_blocks(model: nn.Module, indices: list[int]) -> None:
    """Delete blocks ``indices`` for good and fix everything that counts blocks."""
    _, _, blocks = block_list(model)
    n = len(blocks)
    drop = set(indices)
    if not drop or min(drop) < 0 or max(drop) >= n or len(drop) >= n:
        raise HarnessError(f"cannot remove blocks {sorted(drop)} from a model with {n} blocks")
    kept = [b for i, b in enumerate(blocks) if i not in drop]
    for new_idx, block in enumerate(kept):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx  # the KV cache is indexed by it
    _set_blocks(model, kept)
    cfg = model.config
    cfg.num_hidden_layers = len(kept)
    layer_types = getattr(cfg, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == n:
        cfg.layer_types = [t for i, t in enumerate(layer_types) if i not in drop]


def _hidden(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


@torch.inference_mode()
def for_each_block_io(model: nn.Module, input_ids: torch.Tensor, batch_size: int,
                      fn: Callable[[int, torch.Tensor, torch.Tensor], None], desc: str = "calibration") -> None:
    """Run the calibration windows through the model and call ``fn(i, h_in, h_out)`` for every block
    i and batch, with the residual stream entering and leaving the block ([batch, seq, hidden])."""
    _, _, blocks = block_list(model)
    device = next(model.parameters()).device
    inputs: dict[int, torch.Tensor] = {}
    handles = []
    # only the hooks matter: ask for as few logits as the model allows
    few_logits = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    for i, block in enumerate(blocks):
        def pre(_mod: nn.Module, args: tuple, kwargs: dict, i: int = i) -> None:
            inputs[i] = args[0] if args else kwargs["hidden_states"]

        def post(_mod: nn.Module, _args: tuple, _kwargs: dict, out: Any, i: int = i) -> None:
            fn(i, inputs.pop(i), _hidden(out))

        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(post, with_kwargs=True))
    try:
        for start in tqdm(range(0, input_ids.shape[0], batch_size), desc=desc, unit="batch", disable=None):
            batch = input_ids[start : start + batch_size].to(device)
            model(input_ids=batch, use_cache=False, **few_logits)
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def calibration_nll(model: nn.Module, input_ids: torch.Tensor, batch_size: int) -> tuple[float, int]:
    """Total token NLL (nats) of the calibration windows and the number of predicted tokens."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, input_ids.shape[0], batch_size):
        batch = input_ids[start : start + batch_size].to(device)
        logits = model(input_ids=batch, use_cache=False).logits
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1),
                              reduction="sum")
        total += float(nll)
        count += batch[:, 1:].numel()
    return total, count


def block_parameter_counts(model: nn.Module) -> list[int]:
    _, _, blocks = block_list(model)
    return [sum(p.numel() for p in b.parameters()) for b in blocks]


def block_linear_counts(model: nn.Module) -> list[int]:
    _, _, blocks = block_list(model)
    return [sum(m.weight.numel() for m in block_linears(b).values()) for b in blocks]


def removal_report(method: str, removed: list[int], scores: dict[str, Any], linear_counts: list[int],
                   block_params: list[int], num_blocks: int, extra: dict[str, Any]) -> PruneReport:
    """PruneReport of a removal (call after :func:`remove_blocks`). ``measured_sparsity`` is the
    removed fraction of the transformer blocks' linear weights (the weights the other methods
    sparsify); ``target_sparsity`` the removed fraction of blocks."""
    removed = sorted(removed)
    measured = sum(linear_counts[i] for i in removed) / sum(linear_counts)
    return PruneReport(
        layers=[{"name": f"layers.{i}", "removed": True, "parameters": block_params[i],
                 "linear_weights": linear_counts[i]} for i in removed],
        target_sparsity=len(removed) / num_blocks,
        measured_sparsity=measured,
        details={
            "method": method,
            "structure": "block removal",
            "removed_blocks": removed,
            "num_blocks_before": num_blocks,
            "num_blocks_after": num_blocks - len(removed),
            "scores": scores,
            "target_sparsity_means": "removed fraction of transformer blocks",
            "measured_sparsity_means": "removed fraction of the transformer blocks' linear weights",
            "removed_block_parameters": sum(block_params[i] for i in removed),
            **extra,
        },
    )


def perplexity(total_nll: float, tokens: int) -> float:
    return math.exp(total_nll / tokens)


def require_calibration(calibration: Any, method: str) -> torch.Tensor:
    if calibration is None:
        raise HarnessError(f"{method} needs calibration data")
    return calibration.input_ids
