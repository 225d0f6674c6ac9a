"""Perplexity evaluation: the harness's evaluator vs a bare PyTorch loop on the same windows.

Prints seconds per window for both, interleaved (A B A B ...) so that machine noise hits both
alike, and their ratio (target: harness within 5% of the bare loop). Also checks they agree.

    python benchmarks/bench_perplexity.py [--windows 3] [--seqlen 2048] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from harness.data import resolve
from harness.kinds import RunContext
from harness.llm.perplexity import evaluate_perplexity, tokenize_windows
from harness.llm.models import load_model
from harness.tasks import get_task
from harness.llm.textdata import read_text


def bare_loop(model, windows: torch.Tensor) -> float:
    """What a paper's eval script does: model(ids, labels=ids).loss per window."""
    nlls = []
    with torch.no_grad():
        for i in range(windows.shape[0]):
            ids = windows[i : i + 1]
            loss = model(ids, labels=ids).loss
            nlls.append(loss.float() * (ids.shape[1] - 1))
    return math.exp(torch.stack(nlls).sum().item() / (windows.shape[0] * (windows.shape[1] - 1)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    task_id = "wikitext2" if os.environ.get("HARNESS_DATA_DIR") else "wikipedia-gensim-ppl"
    task = get_task(task_id)
    loaded = load_model("smollm2-135m")
    seqlen = task.protocol["seqlen"]
    windows = tokenize_windows(loaded.tokenizer, read_text(resolve(task.data["text"])), seqlen)[: args.windows]
    ctx = RunContext(method=None, model=loaded, limit=args.windows, progress=False)
    bare_model = loaded.model
    bare_model(windows[:1, :64])  # warm-up
    harness_s, bare_s = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = evaluate_perplexity(task, ctx)
        harness_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ppl_bare = bare_loop(bare_model, windows)
        bare_s.append(time.perf_counter() - t0)
    h, b = statistics.median(harness_s), statistics.median(bare_s)
    print(f"task {task_id}, {args.windows} windows x {seqlen} tokens, torch threads {torch.get_num_threads()}")
    print(f"  harness evaluator: {h / args.windows:7.3f} s/window  ppl {out.metrics['ppl'].value:.4f}")
    print(f"  bare PyTorch loop: {b / args.windows:7.3f} s/window  ppl {ppl_bare:.4f}")
    print(f"  ratio harness/bare: {h / b:.3f}  (target <= 1.05; the harness reads, checks and (cached) tokenises the text each time)")


if __name__ == "__main__":
    main()
