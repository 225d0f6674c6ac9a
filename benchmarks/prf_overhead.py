"""Latency overhead of pseudo-relevance feedback: bm25 vs rm3 vs bo1, dense-retrieval vs dense-prf.

Usage: HARNESS_DATA_DIR=... python benchmarks/prf_overhead.py [--task vaswani] [--k 1000] [--rounds 3]

Each method indexes the same corpus (BM25 index and dense encodings cached; rm3/bo1 read the BM25
index's term statistics, dense-prf the dense encodings), then answers every topic alone, single
threaded, batch 1, after a warm-up. Rounds are interleaved across the methods (round r times every
method before round r+1), so load from other processes falls on all of them alike; the figures pool
all rounds. PRF rows print the overhead over their first stage (ratio of means, extra ms per query)
and nDCG@10 / AP@1000, so an overhead is never shown without what it buys.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.ir.collections import load_collection  # noqa: E402
from harness.ir.evaluate import normalize_run, per_query_scores, resolve_measures  # noqa: E402
from harness.ir.latency import latency_stats  # noqa: E402
from harness.registry import instantiate  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from harness.timing import single_thread, time_each  # noqa: E402

CONFIGS = [("bm25", None), ("rm3", "bm25"), ("bo1", "bm25"), ("dense-retrieval", None), ("dense-prf", "dense-retrieval")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="vaswani")
    ap.add_argument("--k", type=int, default=1000, help="results per query")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--methods", default=",".join(n for n, _ in CONFIGS), help="comma-separated subset")
    args = ap.parse_args()

    task = get_task(args.task)
    coll = load_collection(task)
    topics = coll.topics[["qid", "query"]].reset_index(drop=True)
    rows = [topics.iloc[i: i + 1].reset_index(drop=True) for i in range(len(topics))]
    measures = resolve_measures(["nDCG@10", "AP@1000"])
    wanted = args.methods.split(",")
    configs = [(n, base) for n, base in CONFIGS if n in wanted]
    print(f"task {task.id}: {len(coll.corpus):,} documents, {len(topics)} queries, k={args.k}, {args.rounds} "
          f"interleaved rounds, single thread, batch 1; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    transformers, quality, durations = {}, {}, {}
    for name, _ in configs:
        m = instantiate(name, {})
        m.set_depth(args.k)
        m.index(coll.corpus)
        t = m.transformer()
        run = normalize_run(t(topics), args.k)
        table = per_query_scores(run, coll.qrels, list(topics["qid"]), measures)
        transformers[name], quality[name], durations[name] = t, table.mean(), []
    with single_thread():
        for r in range(args.rounds):
            for name, _ in configs:
                durations[name] += time_each(transformers[name], rows, warmup=args.warmup if r == 0 else 0)
    stats = {name: latency_stats(d) for name, d in durations.items()}
    print(f"{'method':<16} {'p50 ms':>8} {'mean ms':>8} {'p95 ms':>8} {'overhead (mean)':>22} {'nDCG@10':>8} {'AP@1000':>8}")
    for name, base in configs:
        s = stats[name]
        over = ""
        if base in stats:
            b = stats[base]
            over = f"x{s['mean'] / b['mean']:.2f} (+{s['mean'] - b['mean']:.2f} ms)"
        q = quality[name]
        print(f"{name:<16} {s['p50']:8.3f} {s['mean']:8.3f} {s['p95']:8.3f} {over:>22} "
              f"{q['nDCG@10']:8.4f} {q['AP@1000']:8.4f}", flush=True)


if __name__ == "__main__":
    main()
