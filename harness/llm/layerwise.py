"""Layer-by-layer calibration machinery shared by calibrated pruning methods.

This is the sequential scheme of the SparseGPT and Wanda reference code (``prune_sparsegpt`` /
``prune_wanda`` in locuslab/wanda ``lib/prune.py``):

1. run the calibration windows through the model up to the first transformer block and record
   the block's input hidden states together with the keyword arguments of the block call
   (attention mask, position ids, rotary position embeddings, cache settings) -- the "Catcher";
2. for each block in turn: hook its linear layers, push every calibration window through the
   block so the hooks see the inputs of each linear, let the method change the block (prune),
   then push the windows through the changed block again; those outputs feed the next block.

Each block therefore sees inputs produced by the already-pruned blocks before it, exactly as in
the references. The cache is off (``use_cache=False``) throughout. Windows go through a block one
at a time (batch 1), as in the references; calibration windows are unpadded and of equal length,
so the recorded block keyword arguments are the same for every window.

Besides the pruning driver :func:`prune_sequentially`, the pieces are public so that other
methods (e.g. layer removal by block input/output similarity) can reuse them:
:func:`capture_block_inputs`, :func:`forward_block`, :func:`record_linear_inputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.llm.pruning import block_linears, transformer_blocks


class InputStatistic(Protocol):
    """Accumulates something about the inputs of one linear layer (a Hessian, feature norms)."""

    def add_batch(self, inp: torch.Tensor) -> None:
        """``inp``: the linear's input for one forward call, shape [batch, seq, in_features]."""


@dataclass
class BlockInputs:
    """Hidden states entering a block for every calibration window, and the block's kwargs."""

    hidden: torch.Tensor  # [nsamples, seqlen, hidden_size], in the model's dtype
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return int(self.hidden.shape[0] * self.hidden.shape[1])


class _StopForward(Exception):
    """Raised by the capture hook to stop the model's forward at the first block."""


@contextmanager
def cache_disabled(model: nn.Module) -> Iterator[None]:
    """Set ``model.config.use_cache = False`` for the duration, restoring it afterwards."""
    cfg = getattr(model, "config", None)
    old = getattr(cfg, "use_cache", None)
    if cfg is not None and old is not None:
        cfg.use_cache = False
    try:
        yield
    finally:
        if cfg is not None and old is not None:
            cfg.use_cache = old


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def capture_block_inputs(model: nn.Module, input_ids: torch.Tensor, block_index: int = 0) -> BlockInputs:
    """Run each calibration window up to block ``block_index`` and record what the block receives.

    ``input_ids``: LongTensor [nsamples, seqlen]. The forward of the model is stopped by a
    pre-hook on the block (the references' ``Catcher``), so nothing after it is computed.
    """
    if input_ids.ndim != 2:
        raise HarnessError(f"calibration input_ids must be [nsamples, seqlen], got shape {list(input_ids.shape)}")
    blocks = transformer_blocks(model)
    block = blocks[block_index]
    device = model_device(model)
    captured: list[torch.Tensor] = []
    kwargs_box: dict[str, Any] = {}

    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Llama-style blocks get the hidden states positionally; some models pass them by name.
        if args:
            hidden, rest = args[0], args[1:]
            if rest:
                raise HarnessError(
                    f"{type(_module).__name__} received {len(rest)} extra positional arguments; "
                    "the layer-wise capture only replays keyword arguments"
                )
        else:
            hidden = kwargs.pop("hidden_states")
        captured.append(hidden.detach())
        kwargs_box.clear()
        kwargs_box.update(kwargs)
        raise _StopForward

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with cache_disabled(model):
            for j in range(input_ids.shape[0]):
                try:
                    model(input_ids=input_ids[j : j + 1].to(device), use_cache=False)
                except _StopForward:
                    pass
                else:  # pragma: no cover - the hook always fires for a block in the forward path
                    raise HarnessError(f"block {block_index} was never called during the forward pass")
    finally:
        handle.remove()
    kwargs = dict(kwargs_box)
    kwargs["use_cache"] = False
    if kwargs.get("past_key_values") is not None:
        kwargs["past_key_values"] = None
    return BlockInputs(hidden=torch.cat(captured, dim=0), kwargs=kwargs)


def _block_output(out: Any) -> torch.Tensor:
    # transformers 5 Llama blocks return a tensor; older layouts (and OPT) return a tuple.
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def forward_block(block: nn.Module, hidden: torch.Tensor, kwargs: Mapping[str, Any],
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Push every window in ``hidden`` [n, seq, d] through ``block`` one at a time; return outputs."""
    if out is None:
        out = torch.empty_like(hidden)
    for j in range(hidden.shape[0]):
        out[j] = _block_output(block(hidden[j : j + 1], **kwargs))[0]
    return out


@contextmanager
def record_linear_inputs(linears: Mapping[str, nn.Linear],
                         stats: Mapping[str, InputStatistic]) -> Iterator[None]:
    """Forward hooks feeding each linear's input to ``stats[name].add_batch`` while active."""
    handles = []
    for name, lin in linears.items():
        stat = stats[name]

        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor,
                 stat: InputStatistic = stat) -> None:
            stat.add_batch(inp[0].detach())

        handles.append(lin.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# A per-block pruning step: (block index, block, its linears by name, their input statistics).
BlockPruner = Callable[[int, nn.Module, dict[str, nn.Linear], dict[str, Any]], None]


@torch.no_grad()
def prune_sequentially(model: nn.Module, input_ids: torch.Tensor,
                       make_stat: Callable[[str, nn.Linear], InputStatistic],
                       prune_block: BlockPruner, desc: str = "pruning") -> dict[str, Any]:
    """The references' sequential loop: per block, collect input statistics of its linears over
    all calibration windows, prune the block, and feed the pruned block's outputs to the next.

    Returns details for the report: number of windows, sequence length and tokens seen per layer.
    """
    was_training = model.training
    model.eval()
    blocks = transformer_blocks(model)
    try:
        with cache_disabled(model):
            inputs = capture_block_inputs(model, input_ids)
            inps = inputs.hidden
            outs = torch.empty_like(inps)
            for i in tqdm(range(len(blocks)), desc=desc, unit="block", disable=None):
                block = blocks[i]
                linears = block_linears(block)
                stats = {name: make_stat(name, lin) for name, lin in linears.items()}
                with record_linear_inputs(linears, stats):
                    forward_block(block, inps, inputs.kwargs, out=outs)
                prune_block(i, block, linears, stats)
                del stats
                forward_block(block, inps, inputs.kwargs, out=outs)  # outputs of the pruned block
                inps, outs = outs, inps
    finally:
        model.train(was_training)
    return {
        "calibration_windows": int(input_ids.shape[0]),
        "calibration_seqlen": int(input_ids.shape[1]),
        "calibration_tokens": int(input_ids.numel()),
    }


def calibration_input_ids(calibration: Any, method: str) -> torch.Tensor:
    """The calibration windows of ``calibration`` (a :class:`harness.llm.pruning.Calibration`), or a
    clear error when a calibrated method was given none."""
    if calibration is None:
        raise HarnessError(f"method {method!r} needs calibration data but none was given")
    ids = calibration.input_ids
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] < 1:
        raise HarnessError(f"method {method!r}: calibration input_ids must be a [nsamples, seqlen] tensor")
    return ids
