"""Timing, statistics and memory measurement for latency tasks.

The protocol (DESIGN.md): warm-up calls first, then repeated timed calls; on a GPU each call is
timed with CUDA events after ``torch.cuda.synchronize()``, on the CPU with
``time.perf_counter_ns``. Every duration is kept (per-repeat values go into the result's items so
paired comparisons are possible); :func:`summarize` turns them into the one latency summary shape
of :mod:`harness.timing` (p50/p95/p99, mean, std, min, max, in ms).

Also here: LLM prefill and decode workloads (:func:`prefill_fn`, :func:`decode_setup`,
:func:`decode_fn`), peak memory (:class:`PeakMemory`) and the conversion of 2:4-masked linear
layers to PyTorch's semi-structured sparse tensors (:func:`to_semi_structured`, CUDA only), so the
same model can be timed dense and 2:4 in one run.
"""

from __future__ import annotations

import inspect
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import HarnessError
from harness.timing import latency_summary

Clock = Callable[[], int]  # monotonic nanoseconds


def summarize(durations_ns: Sequence[int | float]) -> dict[str, Any]:
    """The latency summary (:func:`harness.timing.latency_summary`: n, unit "ms", p50/p95/p99,
    mean, std, min, max) of durations given in nanoseconds, reported in **milliseconds**."""
    return latency_summary(np.asarray(durations_ns, dtype=np.float64) / 1e6, unit="ms")


class Timer:
    """Times a callable with a host clock (``time.perf_counter_ns`` unless another is injected).

    ``sync`` runs right before the start and right before the stop reading (a no-op on the CPU),
    so asynchronous work is inside the measured interval. Tests inject a fake clock.
    """

    kind = "host_clock"

    def __init__(self, clock: Clock = time.perf_counter_ns, sync: Callable[[], None] | None = None):
        self.clock = clock
        self.sync = sync or (lambda: None)

    def time_once(self, fn: Callable[..., Any], *args: Any) -> int:
        self.sync()
        start = self.clock()
        fn(*args)
        self.sync()
        return int(self.clock() - start)

    def measure(self, fn: Callable[..., Any], *, warmup: int, repeats: int,
                setup: Callable[[], Any] | None = None) -> list[int]:
        """Durations (ns) of ``repeats`` timed calls after ``warmup`` untimed ones. With ``setup``,
        each call is ``fn(setup())`` and only ``fn`` is timed (e.g. a fresh KV cache per decode)."""
        if warmup < 0 or repeats < 1:
            raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
        args: tuple[Any, ...]
        for _ in range(warmup):
            args = (setup(),) if setup is not None else ()
            fn(*args)
        out = []
        for _ in range(repeats):
            args = (setup(),) if setup is not None else ()
            out.append(self.time_once(fn, *args))
        return out


class CudaEventTimer(Timer):
    """Times a callable with CUDA events on the current stream, after synchronising the device."""

    kind = "cuda_events"

    def __init__(self) -> None:
        super().__init__(clock=time.perf_counter_ns, sync=torch.cuda.synchronize)

    def time_once(self, fn: Callable[..., Any], *args: Any) -> int:
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*args)
        end.record()
        end.synchronize()
        return int(round(start.elapsed_time(end) * 1e6))  # elapsed_time is in ms


def make_timer(device: str) -> Timer:
    return CudaEventTimer() if str(device).startswith("cuda") else Timer()


# ---------------------------------------------------------------------------------------------
# Peak memory


def _rss_peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB, macOS bytes


@dataclass
class PeakMemory:
    """Peak memory over a ``with`` block.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only, this
    block only). CPU: the process's peak resident set size (``getrusage`` ru_maxrss), which cannot be
    reset: it covers the whole process so far (interpreter, libraries, model, everything loaded
    before). The two are different quantities and are labelled by ``kind``.
    """

    device: str
    bytes: int = 0
    kind: str = ""

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.bytes = int(torch.cuda.max_memory_allocated())
            self.kind = "cuda_max_memory_allocated"
        else:
            self.bytes = _rss_peak_bytes()
            self.kind = "process_peak_rss (whole process, not resettable)"

    @property
    def mb(self) -> float:
        return self.bytes / 2**20

    def to_dict(self) -> dict[str, Any]:
        return {"mb": self.mb, "bytes": self.bytes, "kind": self.kind}


# ---------------------------------------------------------------------------------------------
# LLM workloads


def random_input_ids(vocab_size: int, batch: int, seqlen: int, seed: int, device: str) -> torch.Tensor:
    """Token ids drawn uniformly (seeded): latency does not depend on which tokens they are."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seqlen), generator=g).to(device)


def forward_params(model: nn.Module) -> set[str]:
    """The parameter names of ``model.forward`` (empty when its signature cannot be read): what a
    call may pass differs across transformers versions."""
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def accepts_logits_to_keep(model: nn.Module) -> bool:
    return "logits_to_keep" in forward_params(model)


def cache_keyword(model: nn.Module) -> str:
    """The forward keyword for the KV cache: ``cache`` (transformers 5.x) or ``past_key_values``."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def prefill_fn(model: nn.Module, input_ids: torch.Tensor) -> Callable[[], Any]:
    """One prefill: a forward over the prompt without a cache. Logits are computed for the last
    position only (``logits_to_keep=1``, what ``generate`` does) when the model supports it."""
    kwargs: dict[str, Any] = {"use_cache": False}
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1

    @torch.inference_mode()
    def run() -> Any:
        return model(input_ids=input_ids, **kwargs)

    return run


def returned_cache(out: Any) -> Any:
    """The KV cache a forward returned: ``out.cache`` (transformers 5) or ``out.past_key_values``."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def decode_setup(model: nn.Module, prompt_ids: torch.Tensor) -> Callable[[], tuple[Any, torch.Tensor]]:
    """Untimed part of a decode measurement: prefill the prompt into a fresh KV cache and pick the
    first new token greedily. Returns a callable giving (cache, next token ids [batch, 1])."""
    kwargs: dict[str, Any] = {"use_cache": True}
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1

    @torch.inference_mode()
    def setup() -> tuple[Any, torch.Tensor]:
        out = model(input_ids=prompt_ids, **kwargs)
        return returned_cache(out), out.logits[:, -1, :].argmax(dim=-1, keepdim=True)

    return setup


def decode_fn(model: nn.Module, new_tokens: int) -> Callable[[tuple[Any, torch.Tensor]], torch.Tensor]:
    """Timed part of a decode measurement: ``new_tokens`` greedy steps of one token each with the
    KV cache (``model(next, cache=cache, use_cache=True)``; ``past_key_values=`` before
    transformers 5); returns the tokens."""
    kw = cache_keyword(model)

    @torch.inference_mode()
    def run(state: tuple[Any, torch.Tensor]) -> torch.Tensor:
        cache, nxt = state
        produced = []
        for _ in range(new_tokens):
            out = model(input_ids=nxt, use_cache=True, **{kw: cache})
            cache = returned_cache(out)
            nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            produced.append(nxt)
        return torch.cat(produced, dim=1)

    return run


# ---------------------------------------------------------------------------------------------
# 2:4 semi-structured execution


def semi_structured_unavailable(device: str, dtype: torch.dtype) -> str | None:
    """Why 2:4 semi-structured kernels cannot run here, or None when they can."""
    if not str(device).startswith("cuda"):
        return (f"2:4 semi-structured sparse kernels need a CUDA GPU (torch.sparse.to_sparse_semi_structured "
                f"supports only CUDA tensors); device is {device!r}: nothing was measured for 2:4")
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"2:4 semi-structured kernels need float16 or bfloat16 weights; the model is {dtype}"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 0):
        return f"2:4 semi-structured kernels need compute capability >= 8.0; this GPU has {major}.{minor}"
    return None


def is_two_four(weight: torch.Tensor) -> bool:
    """True when every group of 4 consecutive inputs of every output row has at least 2 zeros."""
    rows, cols = weight.shape
    if cols % 4:
        return False
    zeros = (weight.detach().reshape(rows, cols // 4, 4) == 0).sum(dim=-1)
    return bool((zeros >= 2).all())


def to_semi_structured(model: nn.Module, linears: dict[str, nn.Linear]) -> dict[str, Any]:
    """Replace the weight of every 2:4-sparse linear in ``linears`` by a
    ``SparseSemiStructuredTensor`` (in place). Linears that are not 2:4, or whose shape the kernels
    refuse, stay dense and are listed with the reason. Raises on a device/dtype that cannot do it."""
    dtype = next(model.parameters()).dtype
    device = str(next(model.parameters()).device)
    reason = semi_structured_unavailable(device, dtype)
    if reason is not None:
        raise HarnessError(reason)
    from torch.sparse import to_sparse_semi_structured

    converted, skipped = [], {}
    for name, lin in linears.items():
        if not is_two_four(lin.weight):
            skipped[name] = "not 2:4 sparse"
            continue
        try:
            lin.weight = nn.Parameter(to_sparse_semi_structured(lin.weight.detach()), requires_grad=False)
        except (RuntimeError, ValueError) as exc:
            skipped[name] = f"refused by to_sparse_semi_structured: {exc}".splitlines()[0][:200]
            continue
        converted.append(name)
    if not converted:
        raise HarnessError(
            "sparse_kernels=semi_structured: no linear layer is 2:4 sparse (prune with pattern=2:4 first)"
        )
    return {"converted": len(converted), "skipped": skipped, "total": len(linears)}
