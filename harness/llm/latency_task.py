"""LLM latency: prefill latency over a batch x sequence-length grid, decode throughput with a KV
cache, and peak memory, timed as DESIGN.md prescribes (warm-up, repeats, CUDA events on a GPU).

The grid depends on the device (a CPU cannot run the GPU grid in reasonable time), so the task
declares one grid per device type (``protocol.grids.cpu`` / ``protocol.grids.cuda``) and the device,
its name, dtype, threads and library versions are recorded with the figures: results from
different devices are different protocols. Random-weight ``config:`` models are fine here (latency
does not depend on weight values); the runner labels such results.

With ``protocol.sparse_kernels: semi_structured`` the model is timed dense first, then its 2:4
linears are switched to ``torch.sparse.to_sparse_semi_structured`` weights and timed again (the
metrics are the 2:4 figures; the dense ones and the measured ratios go to ``efficiency``). That
needs a CUDA GPU and fp16/bf16 weights; elsewhere the task fails with the reason instead of
reporting numbers it did not measure.

Decode modes (``grids.<device>.decode.mode``): ``dynamic`` (the default) is an eager forward per
token with the model's growing KV cache (:func:`harness.llm.latency.decode_fn`); ``static`` is the
gpt-fast style loop of :mod:`harness.llm.decode` (StaticCache, fixed-shape step compiled with
``torch.compile(mode="reduce-overhead")`` on CUDA per ``decode.compile``). Either way the decode
cell carries ``bandwidth_bound``: the memory-bandwidth bound of that figure from the weight and
KV-cache bytes a step reads and the GPU's datasheet bandwidth (or ``grids.<device>.
memory_bandwidth_gb_s``), and the achieved percentage; absent (None) where the bandwidth is unknown.
"""

from __future__ import annotations

import platform
from typing import Annotated, Any, Literal, Union

from typing import TYPE_CHECKING

from pydantic import Field

from harness.errors import HarnessError, TaskDefinitionError
from harness.kinds import EvalOutput, Metric, Protocol, RunContext, TaskKind, Track, device_and_dtype, fixed_metrics
from harness.tasks import Task

if TYPE_CHECKING:
    import torch

    from harness.llm.latency import PeakMemory

# torch and the timing helpers are imported where they are used: loading the task files (this
# kind's record) must not pay for torch.


def prunable_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    from harness.llm.pruning import prunable_linears as linears

    return linears(model)


def semi_structured_unavailable(device: str, dtype: Any) -> str | None:
    from harness.llm.latency import semi_structured_unavailable as why

    return why(device, dtype)


def to_semi_structured(model: torch.nn.Module, linears: dict[str, torch.nn.Linear]) -> dict[str, Any]:
    from harness.llm.latency import to_semi_structured as convert

    return convert(model, linears)

SPARSE_KERNELS = ("none", "semi_structured")
DECODE_MODES = ("dynamic", "static")
METRICS = ("prefill_tokens_per_s", "prefill_ms_p50", "decode_tokens_per_s", "peak_memory_mb")

_Pos = Annotated[int, Field(ge=1)]
_Ints = Union[_Pos, list[_Pos]]


class PrefillGrid(Protocol):
    batch_sizes: _Ints
    seqlens: _Ints


class DecodeGrid(Protocol):
    batch_size: _Ints
    prompt_len: _Ints
    new_tokens: _Ints
    # dynamic (default): eager forward per token with the model's growing KV cache;
    # static: StaticCache + fixed-shape step, compiled (CUDA graphs) per `compile` (harness.llm.decode)
    mode: Literal["dynamic", "static"] = "dynamic"
    # static mode only; unset: reduce-overhead on CUDA, none (uncompiled) on a CPU
    compile: Literal["none", "default", "reduce-overhead", "cuda-graph"] | None = None


class LatencyGrid(Protocol):
    prefill: PrefillGrid
    decode: DecodeGrid
    warmup: Union[Annotated[int, Field(ge=0)], list[Annotated[int, Field(ge=0)]]]
    repeats: _Ints
    decode_repeats: _Ints
    threads: _Ints | None = None  # pin the intra-op thread count (CPU); unset: the process's
    # the device's memory bandwidth (GB/s) for the decode bound; unset: NVIDIA's datasheet figure
    # for a listed GPU (harness.llm.decode.MEMORY_BANDWIDTH), else no bound is reported
    memory_bandwidth_gb_s: Annotated[float, Field(gt=0)] | None = None


class LatencyProtocol(Protocol):
    sparse_kernels: Literal["none", "semi_structured"] = "none"
    grids: dict[Literal["cpu", "cuda"], LatencyGrid]


def device_type(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def device_name(device: str) -> str:
    import torch

    if device_type(device) == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _grid(task: Task, device: str) -> dict[str, Any]:
    """The protocol for this device type, checked; errors name the task file and field."""
    where = task.path or task.id
    grids = task.protocol.get("grids")
    dtype = device_type(device)
    if not isinstance(grids, dict) or dtype not in grids:
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}': no latency grid for device {device!r}")
    g = grids[dtype]

    def ints(path: str, value: Any, minimum: int = 1) -> list[int]:
        vals = value if isinstance(value, list) else [value]
        if not vals or not all(isinstance(v, int) and v >= minimum for v in vals):
            raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.{path}': integers >= {minimum} expected")
        return vals

    try:
        prefill, decode = g["prefill"], g["decode"]
        out = {
            "batch_sizes": ints("prefill.batch_sizes", prefill["batch_sizes"]),
            "seqlens": ints("prefill.seqlens", prefill["seqlens"]),
            "decode_batch_size": ints("decode.batch_size", decode["batch_size"])[0],
            "decode_prompt_len": ints("decode.prompt_len", decode["prompt_len"])[0],
            "decode_new_tokens": ints("decode.new_tokens", decode["new_tokens"])[0],
            "warmup": ints("warmup", g["warmup"], minimum=0)[0],
            "repeats": ints("repeats", g["repeats"])[0],
            "decode_repeats": ints("decode_repeats", g["decode_repeats"])[0],
        }
    except (KeyError, TypeError) as exc:
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}': missing {exc}") from None
    # optional: pin the intra-op thread count (CPU); unset = the process's setting, recorded either way
    out["threads"] = ints("threads", g["threads"])[0] if g.get("threads") is not None else None
    mode = decode.get("mode", "dynamic")
    if mode not in DECODE_MODES:
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.decode.mode': {mode!r} is not one of "
                                  f"{', '.join(DECODE_MODES)}")
    from harness.llm.decode import COMPILE_MODES

    comp = decode.get("compile")
    if comp is not None and mode != "static":
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.decode.compile': only for mode: static")
    if comp is None:
        comp = "reduce-overhead" if (mode == "static" and dtype == "cuda") else "none"
    if comp not in COMPILE_MODES:
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.decode.compile': {comp!r} is not one of "
                                  f"{', '.join(COMPILE_MODES)}")
    if comp == "cuda-graph" and dtype != "cuda":
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.decode.compile': cuda-graph needs "
                                  "a CUDA GPU")
    if comp != "none" and out["warmup"] < 1:
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.warmup': a compiled decode step needs "
                                  "warmup >= 1 (compilation and graph capture happen in the warm-up calls)")
    out["decode_mode"], out["decode_compile"] = mode, comp
    bw = g.get("memory_bandwidth_gb_s")
    if bw is not None and (isinstance(bw, bool) or not isinstance(bw, (int, float)) or bw <= 0):
        raise TaskDefinitionError(f"{where}: field 'protocol.grids.{dtype}.memory_bandwidth_gb_s': a positive "
                                  "number (GB/s) expected")
    out["memory_bandwidth_gb_s"] = bw
    return out


def _measure(model: torch.nn.Module, grid: dict[str, Any], device: str, seed: int, vocab: int,
             progress: bool, bandwidth: tuple[float | None, str] = (None, "")) -> dict[str, dict[str, Any]]:
    """Every prefill cell and the decode measurement: item name -> {config, durations, stats}."""
    from tqdm.auto import tqdm

    from harness.llm.latency import decode_fn, decode_setup, make_timer, prefill_fn, random_input_ids, summarize

    timer = make_timer(device)
    cells: dict[str, dict[str, Any]] = {}
    plan = [(b, s) for b in grid["batch_sizes"] for s in grid["seqlens"]]
    bar = tqdm(total=len(plan) + 1, desc="latency cells", unit="cell", disable=not progress)
    for b, s in plan:
        ids = random_input_ids(vocab, b, s, seed, device)
        durations = timer.measure(prefill_fn(model, ids), warmup=grid["warmup"], repeats=grid["repeats"])
        stats = summarize(durations)
        cells[f"prefill/b{b}/s{s}"] = {
            "phase": "prefill", "batch_size": b, "seqlen": s, "tokens": b * s,
            "durations_ms": [d / 1e6 for d in durations], "stats_ms": stats,
            "tokens_per_s_p50": b * s / (stats["p50"] / 1e3),
        }
        bar.update(1)
    b, p, n = grid["decode_batch_size"], grid["decode_prompt_len"], grid["decode_new_tokens"]
    prompt = random_input_ids(vocab, b, p, seed + 1, device)
    if grid.get("decode_mode", "dynamic") == "static":
        from harness.llm.decode import StaticDecoder, compile_counters, counters_since

        before = compile_counters()
        decoder = StaticDecoder(model, b, p + n, compile_mode=grid["decode_compile"])
        run, setup = decoder.decode_fn(n), decoder.setup_fn(prompt)
    else:
        decoder = None
        run, setup = decode_fn(model, n), decode_setup(model, prompt)
    durations = timer.measure(run, warmup=grid["warmup"], repeats=grid["decode_repeats"], setup=setup)
    # compiled step: graphs compiled (1 when shapes are static) and CUDA-graph skips (0 expected)
    compiled = (counters_since(before) if decoder is not None and decoder.compile_mode in ("default", "reduce-overhead")
                else None)
    stats = summarize(durations)
    tokens_per_s = b * n / (stats["p50"] / 1e3)
    cells[f"decode/b{b}/p{p}/n{n}"] = {
        "phase": "decode", "batch_size": b, "prompt_len": p, "new_tokens": n, "tokens": b * n,
        "decode_mode": grid.get("decode_mode", "dynamic"), "compile": grid.get("decode_compile", "none"),
        **({"compile_counters": compiled} if compiled is not None else {}),
        "durations_ms": [d / 1e6 for d in durations], "stats_ms": stats,
        "tokens_per_s_p50": tokens_per_s,
        "bandwidth_bound": _decode_bound(model, decoder.cache if decoder is not None else setup()[0],
                                         b, p, n, tokens_per_s, bandwidth),
    }
    bar.update(1)
    bar.close()
    return cells


def _decode_bound(model: torch.nn.Module, cache: Any, b: int, p: int, n: int, tokens_per_s: float,
                  bandwidth: tuple[float | None, str]) -> dict[str, Any]:
    """The memory-bandwidth bound beside a decode figure (harness.llm.decode.bandwidth_bound); the
    KV bytes per position are read off the cache the decode filled (dynamic: a fresh prefill)."""
    from harness.llm.decode import bandwidth_bound, kv_bytes_per_position, weight_bytes_per_step

    return bandwidth_bound(weight_bytes=weight_bytes_per_step(model, b), kv_bytes_per_pos=kv_bytes_per_position(cache),
                           batch_size=b, prompt_len=p, new_tokens=n, achieved_tokens_per_s=tokens_per_s,
                           bandwidth_bytes_per_s=bandwidth[0], bandwidth_source=bandwidth[1])


def _metrics(cells: dict[str, dict[str, Any]], grid: dict[str, Any], peak: PeakMemory) -> dict[str, Metric]:
    prefill = [c for c in cells.values() if c["phase"] == "prefill"]
    largest = max(prefill, key=lambda c: (c["tokens"], c["seqlen"]))
    first = cells[f"prefill/b1/s{grid['seqlens'][0]}"] if 1 in grid["batch_sizes"] else min(
        prefill, key=lambda c: (c["batch_size"], c["seqlen"]))
    decode = next(c for c in cells.values() if c["phase"] == "decode")
    return {
        "prefill_tokens_per_s": Metric(largest["tokens_per_s_p50"], largest["stats_ms"]["n"]),
        "prefill_ms_p50": Metric(first["stats_ms"]["p50"], first["stats_ms"]["n"]),
        "decode_tokens_per_s": Metric(decode["tokens_per_s_p50"], decode["stats_ms"]["n"]),
        "peak_memory_mb": Metric(peak.mb, 1),
    }


def _environment(device: str, model: torch.nn.Module) -> dict[str, Any]:
    import torch

    return {
        "device": device,
        "device_type": device_type(device),
        "device_name": device_name(device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device_type(device) == "cuda" else None,
    }


def evaluate_latency(task: Task, ctx: RunContext) -> EvalOutput:
    import torch

    from harness.llm.latency import PeakMemory, make_timer

    if ctx.model is None:
        raise HarnessError(f"task {task.id} needs a causal LM")
    model = ctx.model.model
    device = str(ctx.device)
    if device_type(device) == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"task {task.id}: device {device!r} requested but CUDA is not available")
    model.to(device)
    model.eval()
    sparse = task.protocol.get("sparse_kernels", "none")
    if sparse not in SPARSE_KERNELS:
        raise TaskDefinitionError(
            f"{task.path or task.id}: field 'protocol.sparse_kernels': {sparse!r} is not one of {', '.join(SPARSE_KERNELS)}"
        )
    if sparse == "semi_structured":  # before the grid check: the reason is the device, not the file
        reason = semi_structured_unavailable(device, next(model.parameters()).dtype)
        if reason is not None:
            raise HarnessError(f"task {task.id}: sparse_kernels=semi_structured is unavailable: {reason}")
    grid = _grid(task, device)
    if ctx.limit is not None:  # a quick run: fewer timed repeats, stored in protocol_details
        grid["repeats"] = max(1, min(grid["repeats"], ctx.limit))
        grid["decode_repeats"] = max(1, min(grid["decode_repeats"], ctx.limit))
    vocab = int(model.config.vocab_size)
    process_threads = None
    if grid["threads"] is not None and device_type(device) == "cpu":
        process_threads = torch.get_num_threads()
        torch.set_num_threads(grid["threads"])
    env = _environment(device, model)
    efficiency: dict[str, Any] = {"environment": env, "sparse_kernels": sparse}
    from harness.llm.decode import memory_bandwidth

    bandwidth = memory_bandwidth(device_type(device), env["device_name"], grid["memory_bandwidth_gb_s"])

    dense_cells = None
    restore: dict[str, torch.nn.Parameter] = {}
    if sparse == "semi_structured":
        dense_cells = _measure(model, grid, device, ctx.seed, vocab, ctx.progress, bandwidth)
        linears = prunable_linears(model)
        restore = {name: lin.weight for name, lin in linears.items()}
        efficiency["semi_structured"] = to_semi_structured(model, linears)

    try:
        with PeakMemory(device) as peak:
            cells = _measure(model, grid, device, ctx.seed, vocab, ctx.progress, bandwidth)
    finally:
        for name, lin in prunable_linears(model).items():  # back to dense weights for later tasks
            if name in restore:
                lin.weight = restore[name]
        if process_threads is not None:
            torch.set_num_threads(process_threads)

    efficiency["peak_memory"] = peak.to_dict()
    efficiency["cells"] = {k: {kk: vv for kk, vv in v.items() if kk != "durations_ms"} for k, v in cells.items()}
    dec = next(c for c in cells.values() if c["phase"] == "decode")
    efficiency["decode"] = {"mode": dec["decode_mode"], "compile": dec["compile"],
                            "compile_counters": dec.get("compile_counters"),
                            "tokens_per_s_p50": dec["tokens_per_s_p50"],
                            "bound_tokens_per_s": dec["bandwidth_bound"]["bound_tokens_per_s"],
                            "pct_of_bound": dec["bandwidth_bound"]["pct_of_bound"],
                            "bandwidth_source": dec["bandwidth_bound"]["bandwidth_source"]}
    items = [{"item": k, "execution": "semi_structured" if dense_cells else "dense", **v} for k, v in cells.items()]
    if dense_cells is not None:
        efficiency["dense_cells"] = {k: {kk: vv for kk, vv in v.items() if kk != "durations_ms"}
                                     for k, v in dense_cells.items()}
        # speedup = dense p50 / 2:4 p50, both measured in this run on this device
        efficiency["semi_structured_speedup_p50"] = {
            k: dense_cells[k]["stats_ms"]["p50"] / cells[k]["stats_ms"]["p50"] for k in cells
        }
        items += [{"item": f"dense/{k}", "execution": "dense", **v} for k, v in dense_cells.items()]

    return EvalOutput(
        metrics=_metrics(cells, grid, peak),
        items=items,
        data=[],
        protocol_details={**grid, **{k: env[k] for k in ("device", "device_type", "device_name", "dtype", "threads")},
                          "sparse_kernels": sparse, "timer": make_timer(device).kind,
                          "prefill_logits": "last position only (logits_to_keep=1)"},
        efficiency={"latency": efficiency},
    )


KIND = TaskKind(
    name="latency",
    evaluator=evaluate_latency,
    families=("pruning",),
    track=Track("latency", "Latency", order=40),
    protocol=LatencyProtocol,
    metric_error=fixed_metrics(*METRICS),
    run_protocol=device_and_dtype,  # figures depend on the machine: device and dtype are protocol
    description="prefill latency, decode throughput (dynamic or static KV cache, beside its memory-bandwidth bound) "
                "and peak memory of the (pruned) model",
)
