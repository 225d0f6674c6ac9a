"""FLAP: retraining-free structured width pruning with bias compensation (An et al., AAAI 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.errors import HarnessError, ParamError
from harness.llm.latency import accepts_logits_to_keep
from harness.llm.pruning import (
    Calibration,
    CalibrationParams,
    PruneReport,
    PruningMethod,
    prunable_linears,
    transformer_blocks,
)
from harness.registry import register_method


@dataclass(frozen=True)
class FLAPParams(CalibrationParams):
    """Fraction of the prunable width removed in every block (MLP channels and/or KV groups), the
    scope, and the calibration windows for the fluctuation statistics."""

    fraction: float = 0.2
    scope: Literal["mlp", "attention", "both"] = "mlp"
    nsamples: int = 256
    seqlen: int = 128
    batch_size: int = 16  # calibration windows per forward; does not change the result

    NON_SEMANTIC = ("batch_size",)

    def check(self) -> None:
        CalibrationParams.check(self)
        if not (0.0 < self.fraction < 1.0):
            raise ParamError(f"fraction={self.fraction} must be in (0, 1)")
        if self.batch_size < 1:
            raise ParamError(f"batch_size={self.batch_size} must be >= 1")


class ChannelStats:
    """Per-input-channel mean and unbiased sample variance over every calibration token (float64,
    accumulated on the device the inputs arrive on)."""

    def __init__(self, dim: int):
        self.n = 0
        self.dim = dim
        self._sum: torch.Tensor | None = None
        self._sumsq: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).double()
        if self._sum is None:
            self._sum = torch.zeros(self.dim, dtype=torch.float64, device=x.device)
            self._sumsq = torch.zeros(self.dim, dtype=torch.float64, device=x.device)
        self.n += x.shape[0]
        self._sum += x.sum(dim=0)
        self._sumsq += (x * x).sum(dim=0)

    @property
    def sum(self) -> torch.Tensor:
        if self._sum is None:
            raise HarnessError("FLAP: no calibration input reached this projection")
        return self._sum.cpu()

    @property
    def sumsq(self) -> torch.Tensor:
        return self._sumsq.cpu()

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.n

    @property
    def variance(self) -> torch.Tensor:
        if self.n < 2:
            raise HarnessError("FLAP needs at least 2 calibration tokens")
        return ((self.sumsq - self.sum * self.sum / self.n) / (self.n - 1)).clamp_min(0.0)


def fluctuation_metric(stats: ChannelStats, weight: torch.Tensor) -> torch.Tensor:
    """FLAP's WIFV score of each input channel j of an output projection W [out, in]:
    sample variance of input j over the calibration tokens x ||W[:, j]||^2."""
    return stats.variance * weight.detach().double().cpu().pow(2).sum(dim=0)


def _new_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=True, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias.to(weight.dtype))
    return lin


def _bias_or_zeros(lin: nn.Linear) -> torch.Tensor:
    if lin.bias is not None:
        return lin.bias.detach()
    return torch.zeros(lin.out_features, dtype=lin.weight.dtype, device=lin.weight.device)


def compensated_output_bias(out_proj: nn.Linear, removed: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Bias of the shrunk output projection: its old bias (0 when it had none) plus the removed
    input channels' mean contribution, W[:, removed] @ mean[removed] (FLAP's bias compensation)."""
    w = out_proj.weight.detach().double()
    comp = w[:, removed] @ mean[removed].to(w.device)
    return _bias_or_zeros(out_proj).double() + comp


@torch.no_grad()
def shrink_mlp(mlp: nn.Module, keep: torch.Tensor, mean: torch.Tensor) -> None:
    """Keep intermediate channels ``keep`` of a gated MLP (gate/up rows, down columns) with bias
    compensation in down_proj. gate/up get zero biases so that ``mlp_bias=True`` reloads."""
    inter = mlp.down_proj.in_features
    removed = torch.tensor(sorted(set(range(inter)) - set(keep.tolist())), dtype=torch.long)
    down_bias = compensated_output_bias(mlp.down_proj, removed, mean)
    dev = mlp.down_proj.weight.device
    k = keep.to(dev)
    for name in ("gate_proj", "up_proj"):
        lin = getattr(mlp, name)
        setattr(mlp, name, _new_linear(lin.weight[k], _bias_or_zeros(lin)[k]))
    mlp.down_proj = _new_linear(mlp.down_proj.weight[:, k], down_bias)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = int(keep.numel())


@torch.no_grad()
def shrink_attention(attn: nn.Module, keep_groups: torch.Tensor, n_rep: int, head_dim: int, mean: torch.Tensor) -> None:
    """Keep whole KV groups ``keep_groups`` (each KV head with its ``n_rep`` query heads): k/v rows of
    the kept KV heads, q rows and o columns of their query heads, bias compensation in o_proj."""
    n_q = attn.o_proj.in_features // head_dim
    q_heads = [g * n_rep + r for g in keep_groups.tolist() for r in range(n_rep)]
    q_ch = torch.tensor([h * head_dim + d for h in q_heads for d in range(head_dim)], dtype=torch.long)
    kv_ch = torch.tensor([g * head_dim + d for g in keep_groups.tolist() for d in range(head_dim)], dtype=torch.long)
    removed = torch.tensor(sorted(set(range(n_q * head_dim)) - set(q_ch.tolist())), dtype=torch.long)
    o_bias = compensated_output_bias(attn.o_proj, removed, mean)
    dev = attn.o_proj.weight.device
    q_d, kv_d = q_ch.to(dev), kv_ch.to(dev)
    attn.q_proj = _new_linear(attn.q_proj.weight[q_d], _bias_or_zeros(attn.q_proj)[q_d])
    attn.k_proj = _new_linear(attn.k_proj.weight[kv_d], _bias_or_zeros(attn.k_proj)[kv_d])
    attn.v_proj = _new_linear(attn.v_proj.weight[kv_d], _bias_or_zeros(attn.v_proj)[kv_d])
    attn.o_proj = _new_linear(attn.o_proj.weight[:, q_d], o_bias)
    for attr, value in (("num_heads", len(q_heads)), ("num_key_value_heads", int(keep_groups.numel()))):
        if hasattr(attn, attr):
            setattr(attn, attr, value)


def _check_layout(block: nn.Module) -> None:
    mlp, attn = getattr(block, "mlp", None), getattr(block, "self_attn", None)
    ok = mlp is not None and attn is not None and all(
        isinstance(getattr(mlp, n, None), nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")
    ) and all(isinstance(getattr(attn, n, None), nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
    if not ok:
        raise HarnessError(
            f"flap supports Llama-style blocks (self_attn.q/k/v/o_proj, mlp.gate/up/down_proj); got {type(block).__name__}"
        )


def channel_statistics(model: nn.Module, blocks: Any, ids: torch.Tensor, batch_size: int, do_mlp: bool,
                       do_attn: bool) -> dict[tuple[int, str], ChannelStats]:
    """Per block, the statistics of the inputs of down_proj ("mlp") and o_proj ("attn"), from one
    pass of the unpruned model over all calibration tokens."""
    stats: dict[tuple[int, str], ChannelStats] = {}
    handles = []
    for i, b in enumerate(blocks):
        targets = ([("mlp", b.mlp.down_proj)] if do_mlp else []) + ([("attn", b.self_attn.o_proj)] if do_attn else [])
        for kind, lin in targets:
            st = stats[(i, kind)] = ChannelStats(lin.in_features)
            handles.append(lin.register_forward_pre_hook(lambda _m, args, st=st: st.add(args[0])))
    device = next(model.parameters()).device
    few_logits = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    try:
        for start in tqdm(range(0, ids.shape[0], batch_size), desc="flap statistics", unit="batch", disable=None):
            model(input_ids=ids[start : start + batch_size].to(device), use_cache=False, **few_logits)
    finally:
        for h in handles:
            h.remove()
    return stats


@register_method("flap", "pruning", FLAPParams)
class FLAP(PruningMethod):
    """FLAP: remove MLP channels and/or attention KV groups with the least fluctuating input, with bias compensation.

    An et al., "Fluctuation-based Adaptive Structured Pruning for Large Language Models" (AAAI
    2024). Score of input channel j of an output projection (down_proj for MLP channels, o_proj
    for attention): the sample variance of that input over the calibration tokens times the
    squared norm of column j (WIFV). The lowest-scoring channels are removed for real (smaller
    nn.Linear matrices) and their mean contribution W[:, removed] @ mean(x[removed]) is added to the
    output projection as a bias, so nothing needs retraining.

    Choices, stated: (1) uniform per layer -- FLAP's "UL-UM" structure, not its default adaptive
    "AL-AM" one -- so every block keeps the same width and ``config.intermediate_size`` /
    ``num_attention_heads`` / ``num_key_value_heads`` stay valid: the pruned model saves and
    reloads with plain ``from_pretrained``. (2) Attention is pruned by whole GQA groups (a KV head
    and all its query heads; score = sum of its channels' scores), so the grouping stays intact;
    with few KV heads the granularity is coarse (3 KV heads: 33% steps) and the report states the
    realised fraction. (3) Statistics come from one pass over the unpruned model (as FLAP's
    adaptive mode does), and the variance is the exact unbiased per-channel variance over all
    calibration tokens rather than the reference's running approximation. (4) The projections that
    get a bias force ``mlp_bias`` / ``attention_bias`` on in the config, so the sibling projections
    get zero biases (a few extra parameters, counted). Defaults: 256 windows of 128 tokens (the
    paper uses 1,024 windows of 128 tokens of WikiText-2) from the harness's calibration set.
    """

    needs_calibration = True
    removes_weights = True

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        p = self.params
        blocks = transformer_blocks(model)
        for b in blocks:
            _check_layout(b)
        cfg = model.config
        head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        n_q, n_kv = int(cfg.num_attention_heads), int(cfg.num_key_value_heads)
        n_rep = n_q // n_kv
        inter = int(blocks[0].mlp.down_proj.in_features)
        do_mlp, do_attn = p.scope in ("mlp", "both"), p.scope in ("attention", "both")
        remove_mlp = int(round(p.fraction * inter)) if do_mlp else 0
        remove_groups = int(round(p.fraction * n_kv)) if do_attn else 0
        if do_mlp and not (0 < remove_mlp < inter):
            raise ParamError(f"fraction={p.fraction} removes {remove_mlp} of {inter} MLP channels: need 1..{inter - 1}")
        if do_attn and not (0 < remove_groups < n_kv):
            raise ParamError(
                f"fraction={p.fraction} removes {remove_groups} of {n_kv} KV groups (rounded): need 1..{n_kv - 1}"
            )
        linear_weights_before = sum(m.weight.numel() for m in prunable_linears(model).values())

        # 1. statistics of the inputs of o_proj and down_proj over all calibration tokens
        ids = calibration.input_ids
        stats = channel_statistics(model, blocks, ids, p.batch_size, do_mlp, do_attn)

        # 2. score, choose and shrink, block by block (same count everywhere: uniform per layer)
        layers: list[dict[str, Any]] = []
        for i, b in enumerate(blocks):
            if do_mlp:
                st = stats[(i, "mlp")]
                score = fluctuation_metric(st, b.mlp.down_proj.weight)
                order = torch.sort(score, stable=True).indices  # ascending: lowest first
                keep = torch.sort(order[remove_mlp:]).values
                shrink_mlp(b.mlp, keep, st.mean)
                layers.append({"name": f"layers.{i}.mlp", "kept": int(keep.numel()), "of": inter,
                               "removed_channels": sorted(order[:remove_mlp].tolist())})
            if do_attn:
                st = stats[(i, "attn")]
                ch = fluctuation_metric(st, b.self_attn.o_proj.weight)
                group_score = ch.view(n_kv, n_rep * head_dim).sum(dim=1)  # query heads of a group are contiguous
                order = torch.sort(group_score, stable=True).indices
                keep = torch.sort(order[remove_groups:]).values
                shrink_attention(b.self_attn, keep, n_rep, head_dim, st.mean)
                layers.append({"name": f"layers.{i}.self_attn", "kept_kv_groups": keep.tolist(), "of": n_kv,
                               "group_scores": group_score.tolist()})

        # 3. the config describes the new (uniform) shapes, so save/from_pretrained round-trips
        if do_mlp:
            cfg.intermediate_size = inter - remove_mlp
            cfg.mlp_bias = True
        if do_attn:
            cfg.head_dim = head_dim  # otherwise derived from hidden_size // num_attention_heads
            cfg.num_attention_heads = (n_kv - remove_groups) * n_rep
            cfg.num_key_value_heads = n_kv - remove_groups
            cfg.attention_bias = True
        linear_weights_after = sum(m.weight.numel() for m in prunable_linears(model).values())
        removed_fraction = 1 - linear_weights_after / linear_weights_before
        return PruneReport(
            layers=layers,
            target_sparsity=p.fraction,
            measured_sparsity=removed_fraction,
            details={
                "structure": "width (uniform per layer, FLAP UL-UM)",
                "scope": p.scope,
                "metric": "WIFV: sample variance of input channel x squared column norm",
                "bias_compensation": True,
                "mlp_channels_removed_per_layer": remove_mlp,
                "kv_groups_removed_per_layer": remove_groups,
                "realised_mlp_fraction": remove_mlp / inter if do_mlp else 0.0,
                "realised_attention_fraction": remove_groups / n_kv if do_attn else 0.0,
                "target_sparsity_means": "fraction of the prunable width (per module type) requested",
                "measured_sparsity_means": "removed fraction of the transformer blocks' linear weights",
                "calibration_tokens": int(ids.numel()),
            },
        )
