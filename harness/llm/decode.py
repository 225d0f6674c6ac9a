"""Static-cache greedy decoding (gpt-fast style) and the memory-bandwidth bound of a decode figure.

**Why.** Decoding one token at batch 1 reads every weight once, so its speed is bounded by the
device's memory bandwidth: ``tokens/s <= bandwidth / bytes read per step``. An eager Python loop
over a Hugging Face model with a growing (dynamic) KV cache spends most of each step launching
kernels and allocating (issue 13 measured about 12% of the bound on an H100), and then removing a
quarter of the blocks barely shows. gpt-fast reaches about 72% of the bound on an A100 with a
preallocated KV cache and the per-token step captured as a CUDA graph.

**Static decode** (:class:`StaticDecoder`): the prompt is prefilled (eagerly) into a
``transformers.StaticCache`` allocated once for ``prompt_len + new_tokens`` positions; each new
token is then one call of a fixed-shape step (one token id ``[batch, 1]``, one position ``[1]``)
that returns the greedy argmax. On CUDA the step is compiled with
``torch.compile(mode="reduce-overhead", fullgraph=True)`` (Inductor kernels replayed as CUDA
graphs); on a CPU it runs uncompiled unless asked (``compile: default``). ``compile: cuda-graph``
captures the eager step as one ``torch.cuda.CUDAGraph`` instead (no compilation, no fusion). The cache object and its
tensors are the same for every repeat (``cache.reset()`` between repeats), so captured graphs stay
valid. The tokens are those of ``model.generate(do_sample=False)`` (tested on a tiny Llama).
:func:`compile_counters` lets the result say whether the step compiled once and ran as CUDA graphs.

The transformers API differs between 4.x and 5.x (the cache keyword is ``cache`` in 5.x, with
``past_key_values`` deprecated; 4.x needs ``cache_position`` and a ``StaticCache`` built with
``max_batch_size``/``device``/``dtype``); both are handled by looking at the signatures, not at
version numbers (checked on a CPU with transformers 4.51.3, 4.57.1 and 5.24.0).

**The bound** (:func:`bandwidth_bound`): bytes read per decoded step = the weight bytes a step
reads (every parameter once; of the input embedding only the ``batch`` rows looked up, unless it is
tied to the output projection, which reads it whole) + the KV-cache bytes at the average context
length of the timed steps (``prompt_len + (new_tokens + 1) / 2``: step k attends to
``prompt_len + k + 1`` positions). Bound tokens/s = ``batch * bandwidth / bytes per step``; the
achieved figure is reported as a percentage of it. The bandwidth is the datasheet figure of the
GPU (:data:`MEMORY_BANDWIDTH`) or a protocol override; unknown (any CPU, an unlisted GPU) means no
bound is reported, never an invented one. A static cache attends over all its allocated positions
(masked), so it reads somewhat more than this ideal; the bound is the ideal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from harness.llm.latency import cache_keyword, forward_params

# none: eager; default / reduce-overhead: torch.compile modes (reduce-overhead: Inductor + CUDA graphs);
# cuda-graph: the eager step captured as one torch.cuda.CUDAGraph (no compilation; CUDA only)
COMPILE_MODES = ("none", "default", "reduce-overhead", "cuda-graph")

# Peak memory bandwidth (bytes/s) by GPU, from NVIDIA's datasheets:
# - H100: "NVIDIA H100 Tensor Core GPU" datasheet: H100 SXM 3.35 TB/s, H100 NVL 3.9 TB/s,
#   H100 PCIe 2 TB/s (nvidia.com/en-us/data-center/h100/).
# - H200: "NVIDIA H200 Tensor Core GPU" datasheet: H200 SXM and H200 NVL 4.8 TB/s
#   (nvidia.com/en-us/data-center/h200/).
# - A100: "NVIDIA A100 Tensor Core GPU" datasheet: A100 80GB SXM 2,039 GB/s, A100 80GB PCIe
#   1,935 GB/s, A100 40GB (SXM and PCIe) 1,555 GB/s (nvidia.com/en-us/data-center/a100/).
# Matched on torch.cuda.get_device_name() (e.g. "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
# "NVIDIA H200", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-40GB").
# Rules are tried in order; every listed substring must occur in the lower-cased name.
MEMORY_BANDWIDTH: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("h200",), 4.8e12, "NVIDIA H200 datasheet: 4.8 TB/s"),
    (("h100", "pcie"), 2.0e12, "NVIDIA H100 datasheet: H100 PCIe 2 TB/s"),
    (("h100", "nvl"), 3.9e12, "NVIDIA H100 datasheet: H100 NVL 3.9 TB/s"),
    (("h100",), 3.35e12, "NVIDIA H100 datasheet: H100 SXM 3.35 TB/s"),
    (("a100", "80gb", "pcie"), 1.935e12, "NVIDIA A100 datasheet: A100 80GB PCIe 1,935 GB/s"),
    (("a100", "80gb"), 2.039e12, "NVIDIA A100 datasheet: A100 80GB SXM 2,039 GB/s"),
    (("a100", "40gb"), 1.555e12, "NVIDIA A100 datasheet: A100 40GB 1,555 GB/s"),
)


def memory_bandwidth(device_type: str, device_name: str,
                     override_gb_s: float | None = None) -> tuple[float | None, str]:
    """(bytes/s, where the figure comes from), or (None, why it is not known)."""
    if override_gb_s is not None:
        return float(override_gb_s) * 1e9, f"protocol override: {override_gb_s} GB/s"
    if device_type != "cuda":
        return None, f"memory bandwidth of device type {device_type!r} is not known: no bound reported"
    name = device_name.lower()
    for needles, bw, source in MEMORY_BANDWIDTH:
        if all(n in name for n in needles):
            return bw, source
    return None, f"memory bandwidth of GPU {device_name!r} is not in the table: no bound reported"


# ---------------------------------------------------------------------------------------------
# bytes read per decoded step


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's storage; a semi-structured sparse weight counts its packed values and
    metadata (what its kernels read), not its dense shape."""
    packed = getattr(t, "packed", None)
    if isinstance(packed, torch.Tensor):
        meta = getattr(t, "meta", None)
        return tensor_bytes(packed) + (tensor_bytes(meta) if isinstance(meta, torch.Tensor) else 0)
    return t.numel() * t.element_size()


def weight_bytes_per_step(model: nn.Module, batch_size: int) -> int:
    """Weight bytes one decode step reads: every parameter once (shared ones once), except that an
    input embedding not tied to the output projection contributes only the ``batch_size`` rows it
    looks up."""
    total = sum(tensor_bytes(p) for p in model.parameters())
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    emb = get_in() if callable(get_in) else None
    out = get_out() if callable(get_out) else None
    if isinstance(emb, nn.Embedding):
        tied = out is not None and getattr(out, "weight", None) is emb.weight
        if not tied:
            w = emb.weight
            total -= tensor_bytes(w)
            total += batch_size * w.shape[1] * w.element_size()
    return int(total)


def _cache_tensors(cache: Any) -> Iterator[torch.Tensor]:
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers >= 4.56 / 5.x: one object per layer with .keys/.values
        for layer in layers:
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(t, torch.Tensor) and t.numel():
                    yield t
        return
    if hasattr(cache, "key_cache"):  # older transformers: lists of tensors
        for t in [*cache.key_cache, *cache.value_cache]:
            if isinstance(t, torch.Tensor) and t.numel():
                yield t
        return
    for kv in cache:  # legacy tuple of (key, value) per layer
        for t in kv:
            if isinstance(t, torch.Tensor) and t.numel():
                yield t


def kv_bytes_per_position(cache: Any) -> int:
    """KV-cache bytes per sequence position (all layers, keys and values, the whole batch), read off
    a filled cache: each tensor is ``[batch, heads, positions, head_dim]``. Measured, so a pruned
    model (fewer layers or heads) counts what it really stores."""
    total = 0.0
    for t in _cache_tensors(cache):
        total += tensor_bytes(t) / t.shape[-2]
    return int(round(total))


def bandwidth_bound(*, weight_bytes: int, kv_bytes_per_pos: int, batch_size: int, prompt_len: int,
                    new_tokens: int, achieved_tokens_per_s: float, bandwidth_bytes_per_s: float | None,
                    bandwidth_source: str) -> dict[str, Any]:
    """The memory-bandwidth bound of a decode measurement and the achieved share of it (module doc).
    Without a bandwidth, the bytes are still reported and the bound and percentage are None."""
    avg_context = prompt_len + (new_tokens + 1) / 2
    bytes_per_step = weight_bytes + kv_bytes_per_pos * avg_context
    out: dict[str, Any] = {
        "weight_bytes_per_step": int(weight_bytes),
        "kv_bytes_per_position": int(kv_bytes_per_pos),
        "avg_context_len": avg_context,
        "bytes_per_step": bytes_per_step,
        "memory_bandwidth_bytes_per_s": bandwidth_bytes_per_s,
        "bandwidth_source": bandwidth_source,
        "bound_tokens_per_s": None,
        "pct_of_bound": None,
    }
    if bandwidth_bytes_per_s:
        bound = batch_size * bandwidth_bytes_per_s / bytes_per_step
        out["bound_tokens_per_s"] = bound
        out["pct_of_bound"] = 100.0 * achieved_tokens_per_s / bound
    return out


# ---------------------------------------------------------------------------------------------
# the static decode loop


def make_static_cache(model: nn.Module, batch_size: int, max_cache_len: int) -> Any:
    """A ``transformers.StaticCache`` for ``max_cache_len`` positions, built with the keywords this
    transformers version takes (5.x allocates lazily at the first update, 4.x up front)."""
    from transformers import StaticCache

    params = set(inspect.signature(StaticCache.__init__).parameters)
    p = next(model.parameters())
    kwargs: dict[str, Any] = {"config": model.config, "max_cache_len": max_cache_len}
    if "max_batch_size" in params:
        kwargs["max_batch_size"] = batch_size
    elif "batch_size" in params:
        kwargs["batch_size"] = batch_size
    if "device" in params:
        kwargs["device"] = p.device
    if "dtype" in params:
        kwargs["dtype"] = p.dtype
    return StaticCache(**kwargs)


def compile_step(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """``fn`` compiled with ``torch.compile`` in ``mode`` (``none``: unchanged). ``fullgraph=True``:
    a graph break would silently leave Python in the step, so it is an error instead."""
    if mode not in COMPILE_MODES or mode == "cuda-graph":
        raise ValueError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES[:3])}")
    if mode == "none":
        return fn
    return torch.compile(fn, mode=mode, fullgraph=True)


def capture_cuda_graph(fn: Callable[..., torch.Tensor], *static_args: torch.Tensor,
                       warmup: int = 3) -> tuple[Callable[[], None], torch.Tensor]:
    """``fn(*static_args)`` captured as a CUDA graph, after ``warmup`` eager calls on a side stream
    (PyTorch's recipe: torch.cuda.graphs). Returns (replay, the output tensor replay refills); to
    run it on new inputs, copy them into ``static_args`` first."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(*static_args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*static_args)
    return graph.replay, out


def compile_counters() -> dict[str, int]:
    """torch.compile's process-wide counters that tell whether the step ran as intended: graphs
    compiled (``unique_graphs``; one per decoder when shapes are static) and CUDA-graph skips
    (``cudagraph_skips``: the step then runs as plain Inductor kernels, launch overhead included)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - torch without dynamo
        return {}
    return {"unique_graphs": int(counters["stats"].get("unique_graphs", 0)),
            "cudagraph_skips": int(counters["inductor"].get("cudagraph_skips", 0))}


def counters_since(before: dict[str, int]) -> dict[str, int]:
    now = compile_counters()
    return {k: now[k] - before.get(k, 0) for k in now}


class StaticDecoder:
    """Greedy decoding with a static KV cache and a fixed-shape (optionally compiled) step.

    ``prefill(prompt)`` resets the cache, runs the prompt eagerly and returns the first new token
    ``[batch, 1]``; ``decode(first, new_tokens)`` runs ``new_tokens`` steps from there and returns
    the ``[batch, new_tokens]`` tokens they produce (each step feeds the previous token).
    ``generate(prompt, n)`` is both: the ``n`` tokens greedy ``generate`` would give.
    """

    def __init__(self, model: nn.Module, batch_size: int, max_cache_len: int, compile_mode: str = "none"):
        self.model = model
        self.batch_size = batch_size
        self.max_cache_len = max_cache_len
        self.compile_mode = compile_mode
        self.cache = make_static_cache(model, batch_size, max_cache_len)
        params = forward_params(model)
        self._cache_kw = cache_keyword(model)
        self._cache_position = "cache_position" in params  # transformers 4.x
        self._logits_to_keep = "logits_to_keep" in params
        self.device = next(model.parameters()).device
        self._prompt_len = 0
        self._graph: tuple[Callable[[], None], torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if compile_mode == "cuda-graph":
            if not torch.cuda.is_available():
                raise ValueError("compile mode 'cuda-graph' needs a CUDA GPU")
            self.step = self._graph_step
        else:
            self.step = compile_step(self._step, compile_mode)

    def _kwargs(self, positions: torch.Tensor) -> dict[str, Any]:
        kw: dict[str, Any] = {self._cache_kw: self.cache, "position_ids": positions.unsqueeze(0), "use_cache": True}
        if self._cache_position:
            kw["cache_position"] = positions
        return kw

    def _step(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """One fixed-shape step: token ``[batch, 1]`` at ``position`` ``[1]`` -> greedy next token."""
        logits = self.model(input_ids=token, **self._kwargs(position)).logits
        return logits[:, -1, :].argmax(dim=-1, keepdim=True)

    def _graph_step(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """The step replayed from a CUDA graph captured at its first call (after a prefill, so the
        cache is allocated). The capture's warm-up calls write the cache at the current position
        (overwritten by the real step) and, in transformers 5, advance each layer's position
        counter, which is put back; replays advance it in the graph."""
        if self._graph is None:
            tok, pos = token.clone(), position.clone()
            lengths = (getattr(layer, "cumulative_length", None) for layer in getattr(self.cache, "layers", []))
            counters = [t for t in lengths if isinstance(t, torch.Tensor)]
            saved = [t.clone() for t in counters]
            replay, out = capture_cuda_graph(self._step, tok, pos)
            for t, v in zip(counters, saved):
                t.copy_(v)
            self._graph = (replay, tok, pos, out)
        replay, tok, pos, out = self._graph
        tok.copy_(token)
        pos.copy_(position)
        replay()
        return out

    @torch.no_grad()
    def prefill(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        b, p = prompt_ids.shape
        if b != self.batch_size:
            raise ValueError(f"prompt batch {b} != the cache's batch size {self.batch_size}")
        if p >= self.max_cache_len:
            raise ValueError(f"prompt of {p} tokens leaves no room in a cache of {self.max_cache_len}")
        self.cache.reset()
        kw = self._kwargs(torch.arange(p, device=self.device))
        if self._logits_to_keep:
            kw["logits_to_keep"] = 1
        logits = self.model(input_ids=prompt_ids, **kw).logits
        self._prompt_len = p
        return logits[:, -1, :].argmax(dim=-1, keepdim=True)

    @torch.no_grad()
    def decode(self, first: torch.Tensor, new_tokens: int) -> torch.Tensor:
        p = self._prompt_len
        if p + new_tokens > self.max_cache_len:
            raise ValueError(f"{p} + {new_tokens} tokens do not fit a cache of {self.max_cache_len}")
        out = torch.empty((self.batch_size, new_tokens), dtype=first.dtype, device=first.device)
        position = torch.tensor([p], dtype=torch.long, device=self.device)
        nxt = first
        for k in range(new_tokens):
            # clone: under CUDA graphs a step's output buffer is overwritten by the next replay
            nxt = self.step(nxt.clone(), position).clone()
            out[:, k] = nxt[:, 0]
            position += 1
        self._prompt_len = p + new_tokens
        return out

    def generate(self, prompt_ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """The first ``new_tokens`` greedy tokens after the prompt (prefill's token first)."""
        first = self.prefill(prompt_ids)
        if new_tokens <= 1:
            return first[:, :new_tokens]
        return torch.cat([first, self.decode(first, new_tokens - 1)], dim=1)

    # the latency protocol's setup / timed pair (harness.llm.latency.Timer.measure)
    def setup_fn(self, prompt_ids: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: self.prefill(prompt_ids)

    def decode_fn(self, new_tokens: int) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda first: self.decode(first, new_tokens)
