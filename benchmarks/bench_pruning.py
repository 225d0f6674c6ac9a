"""Pruning wall time per method on the embedded SmolLM2-135M (same calibration for all).

    python benchmarks/bench_pruning.py [--nsamples 16] [--seqlen 512]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from harness.llm.calibration import load_calibration, resolve_calibration_name
from harness.llm.models import load_model
from harness.registry import instantiate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=512)
    args = ap.parse_args()
    base = load_model("smollm2-135m")
    name = resolve_calibration_name("auto")
    calib = load_calibration(base.tokenizer, name=name, nsamples=args.nsamples, seqlen=args.seqlen, seed=0)
    print(f"SmolLM2-135M fp32 on CPU, {torch.get_num_threads()} threads; calibration {name} "
          f"{args.nsamples} x {args.seqlen}")
    cal = {"nsamples": str(args.nsamples), "seqlen": str(args.seqlen), "calibration": name}
    for method, params in [
        ("magnitude", {"sparsity": "0.5"}),
        ("magnitude", {"sparsity": "0.5", "pattern": "2:4"}),
        ("wanda", {"sparsity": "0.5", **cal}),
        ("wanda", {"sparsity": "0.5", "pattern": "2:4", **cal}),
        ("sparsegpt", {"sparsity": "0.5", **cal}),
        ("sparsegpt", {"sparsity": "0.5", "pattern": "2:4", **cal}),
    ]:
        loaded = load_model("smollm2-135m")
        adapter = instantiate(method, params)
        t0 = time.perf_counter()
        report = adapter.prune(loaded.model, calib if adapter.needs_calibration else None)
        dt = time.perf_counter() - t0
        pattern = params.get("pattern", "unstructured")
        print(f"  {method:10s} {pattern:12s} {dt:7.2f} s   measured sparsity {report.measured_sparsity:.4f}")


if __name__ == "__main__":
    main()
