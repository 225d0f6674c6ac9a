"""Prefill throughput: the harness's timer vs a bare PyTorch loop, and dense vs pruned shapes.

1. Overhead check: the same prefill measured by harness.llm.latency (Timer/CudaEventTimer + prefill_fn)
   and by a bare loop written here, timed the same way (perf_counter_ns on CPU, CUDA events after
   synchronize on GPU), alternating call by call in one process. Target: ratio within 3%.
2. Speed of shapes: dense vs FLAP (MLP width -20%) vs ShortGPT (25% of blocks removed) vs 2:4
   semi-structured kernels (CUDA + fp16/bf16 only; reported as unavailable elsewhere). Config
   models have random weights: latency does not depend on weight values, and the pruning methods
   run on a few random-token calibration windows only to produce the shapes.

    python benchmarks/bench_prefill.py --model config:smollm2-135m --batch 1 --seqlen 128
    python benchmarks/bench_prefill.py --device cuda --dtype float16 --batch 8 --seqlen 512
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from harness.llm.latency import (
    make_timer,
    prefill_fn,
    random_input_ids,
    semi_structured_unavailable,
    summarize,
    to_semi_structured,
)
from harness.llm.models import load_model
from harness.llm.pruning import Calibration, prunable_linears
from harness.params import build_params
from methods.pruning.flap import FLAP
from methods.pruning.magnitude import Magnitude
from methods.pruning.shortgpt import ShortGPT


def bare_once(model: torch.nn.Module, ids: torch.Tensor, cuda: bool) -> int:
    """One prefill timed by a plain loop body, no harness code: the reference for the harness timer."""
    with torch.inference_mode():
        if cuda:
            torch.cuda.synchronize()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
            e.record()
            e.synchronize()
            return int(s.elapsed_time(e) * 1e6)
        t0 = time.perf_counter_ns()
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
        return time.perf_counter_ns() - t0


def harness_p50(model: torch.nn.Module, ids: torch.Tensor, device: str, warmup: int, repeats: int) -> dict:
    return summarize(make_timer(device).measure(prefill_fn(model, ids), warmup=warmup, repeats=repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="config:smollm2-135m")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="timed pairs = rounds x repeats")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    model = loaded.model
    ids = random_input_ids(model.config.vocab_size, args.batch, args.seqlen, 0, args.device)
    tokens = args.batch * args.seqlen
    dev_name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"model {args.model} ({'random weights' if loaded.random_weights else 'trained'}), device {args.device} "
          f"[{dev_name}], dtype {args.dtype}, threads {torch.get_num_threads()}, batch {args.batch} x seqlen "
          f"{args.seqlen}, warmup {args.warmup}, repeats {args.repeats} x {args.rounds} rounds")

    # 1. harness timer vs bare loop, alternating call by call so drift hits both alike
    timer, fn = make_timer(args.device), prefill_fn(model, ids)
    timer.measure(fn, warmup=args.warmup, repeats=1)
    for _ in range(args.warmup):
        bare_once(model, ids, cuda)
    h_all, b_all = [], []
    for _ in range(args.rounds * args.repeats):
        h_all.append(timer.time_once(fn))
        b_all.append(bare_once(model, ids, cuda))
    h, b = summarize(h_all), summarize(b_all)
    h_tps, b_tps = tokens / (h["p50"] / 1e3), tokens / (b["p50"] / 1e3)
    print(f"harness prefill : p50 {h['p50']:.3f} ms  p95 {h['p95']:.3f}  ({h_tps:,.0f} tokens/s, n={h['n']})")
    print(f"bare loop       : p50 {b['p50']:.3f} ms  p95 {b['p95']:.3f}  ({b_tps:,.0f} tokens/s, n={b['n']})")
    ratio = h_tps / b_tps
    paired = float(np.median(np.asarray(b_all) / np.asarray(h_all)))
    print(f"harness / bare throughput ratio: {ratio:.4f} (median of paired ratios {paired:.4f}); "
          f"{'within' if abs(ratio - 1) <= 0.03 else 'OUTSIDE'} 3%")

    # 2. dense vs structured vs 2:4: the shapes are built first, then timed in interleaved rounds
    # (each round: every variant `repeats` times) so that drift of the machine hits all alike
    cal = Calibration(random_input_ids(model.config.vocab_size, 4, 32, 1, "cpu"), {"set": "random tokens"})
    variants = [("dense", model)]
    for label, cls, params in (
        ("flap mlp -20%", FLAP, {"fraction": 0.2, "scope": "mlp", "nsamples": 4, "seqlen": 32}),
        ("shortgpt -25% blocks", ShortGPT, {"fraction": 0.25, "nsamples": 4, "seqlen": 32}),
    ):
        pruned = copy.deepcopy(model)
        cls(build_params(cls.Params, params)).prune(pruned, cal)
        variants.append((label, pruned))
    fns = {label: prefill_fn(m, ids) for label, m in variants}
    for fn in fns.values():
        timer.measure(fn, warmup=args.warmup, repeats=1)
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(args.rounds):
        for label, fn in fns.items():
            times[label].extend(timer.time_once(fn) for _ in range(args.repeats))
    rows = [(label, summarize(times[label])["p50"], sum(p.numel() for p in m.parameters())) for label, m in variants]
    dense = rows[0][1]
    del variants, fns
    reason = semi_structured_unavailable(args.device, next(model.parameters()).dtype)
    if reason is None:
        sparse = copy.deepcopy(model)
        Magnitude(build_params(Magnitude.Params, {"sparsity": 0.5, "pattern": "2:4"})).prune(sparse, None)
        masked = harness_p50(sparse, ids, args.device, args.warmup, args.repeats)["p50"]
        rows.append(("2:4 masked, dense kernels", masked, sum(int(torch.count_nonzero(p)) for p in sparse.parameters())))
        info = to_semi_structured(sparse, prunable_linears(sparse))
        rows.append((f"2:4 semi-structured ({info['converted']}/{info['total']} linears)",
                     harness_p50(sparse, ids, args.device, args.warmup, args.repeats)["p50"], rows[-1][2]))
    print(f"\n{'variant':<44} {'p50 ms':>10} {'speedup':>8} {'params':>12}")
    for label, p50, n in rows:
        print(f"{label:<44} {p50:>10.3f} {dense / p50:>7.3f}x {n:>12,}")
    if reason is not None:
        print(f"2:4 semi-structured: not measured ({reason})")


if __name__ == "__main__":
    main()
