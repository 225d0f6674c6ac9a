"""Per-query latency of BM25 engines: PISA (each query algorithm) vs bm25s, in one run.

Usage: HARNESS_DATA_DIR=... python benchmarks/bench_retrieval.py [--task vaswani] [--k 1000] [--rounds 3]

Every engine indexes the same corpus (cached), then answers every topic alone, single-threaded,
after a warm-up; each round times all queries and the reported figures pool all rounds. The default
task is the largest collection with a corpus in the data directory (Vaswani, 11,429 documents).
nDCG@10 of each configuration is printed too, so a speed-up is never shown without its quality.
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
from harness.timing import single_thread, time_each  # noqa: E402
from harness.registry import instantiate  # noqa: E402
from harness.tasks import get_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="vaswani")
    ap.add_argument("--k", type=int, default=1000, help="results per query")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()

    task = get_task(args.task)
    coll = load_collection(task)
    topics = coll.topics[["qid", "query"]].reset_index(drop=True)
    rows = [topics.iloc[i : i + 1].reset_index(drop=True) for i in range(len(topics))]
    measures = resolve_measures(["nDCG@10"])
    from methods.retrieval.bm25 import QUERY_ALGORITHMS

    configs = [("bm25", {"query_algorithm": a}) for a in QUERY_ALGORITHMS] + [("bm25s", {})]
    print(f"task {task.id}: {len(coll.corpus):,} documents, {len(topics)} queries, k={args.k}, "
          f"{args.rounds} rounds, single thread, batch 1; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'engine':<8} {'params':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'nDCG@10':>8}")
    for name, params in configs:
        m = instantiate(name, params)
        m.num_results = args.k
        m.index(coll.corpus)
        t = m.transformer()
        run = normalize_run(t(topics), args.k)
        ndcg = per_query_scores(run, coll.qrels, list(topics["qid"]), measures)["nDCG@10"].mean()
        durations: list[float] = []
        with single_thread():
            for r in range(args.rounds):
                durations += time_each(t, rows, warmup=args.warmup if r == 0 else 0)
        s = latency_stats(durations)
        label = ",".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"
        print(f"{name:<8} {label:<34} {s['p50']:8.3f} {s['p95']:8.3f} {s['p99']:8.3f} "
              f"{s['mean']:8.3f} {ndcg:8.4f}", flush=True)


if __name__ == "__main__":
    main()
