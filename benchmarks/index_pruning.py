"""Static index pruning: index size vs per-query latency vs nDCG@10, against the unpruned index, in one run.

Usage: HARNESS_DATA_DIR=... python benchmarks/index_pruning.py [--task vaswani] [--fractions 0.1,0.3,0.5]
       [--rounds 5] [--k 1000]

The unpruned PISA BM25 index (``bm25``, block_max_wand) and, at each fraction, the document-pruned
index (``static-pruning``, length score) and the postings-pruned index (``postings-pruning``,
Carmel top-10 epsilon) of the same collection answer every topic alone, single-threaded, after a
warm-up; in each round every configuration times all queries and the order of the configurations
rotates between rounds, so load drifts hit all of them alike; a query's latency on an index is its
fastest round (as the methods' own latency comparison does). Size: bytes of the compressed index
and its WAND data (what a query reads) and postings of queryable (non-stop) terms.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.ir.collections import load_collection  # noqa: E402
from harness.ir.evaluate import normalize_run, per_query_scores, resolve_measures  # noqa: E402
from harness.ir.latency import latency_stats  # noqa: E402
from harness.registry import instantiate  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from harness.timing import single_thread, time_each  # noqa: E402


def main() -> None:
    from methods.retrieval._index_pruning import index_size, open_retriever

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="vaswani")
    ap.add_argument("--fractions", default="0.1,0.3,0.5")
    ap.add_argument("--k", type=int, default=1000, help="results per query")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()

    task = get_task(args.task)
    coll = load_collection(task)
    topics = coll.topics[["qid", "query"]].astype(str).reset_index(drop=True)
    rows = [topics.iloc[i : i + 1].reset_index(drop=True) for i in range(len(topics))]
    measures = resolve_measures(["nDCG@10"])

    configs = []  # (label, transformer, size)
    base = instantiate("bm25", {})
    base.set_depth(args.k)
    base.index(coll.corpus)
    configs.append(("unpruned bm25", base.transformer(), None))
    configs[0] = (configs[0][0], configs[0][1], index_size(base.stats["index_path"], "terrier"))
    for f in [float(x) for x in args.fractions.split(",")]:
        for name, params, label in (("static-pruning", {"fraction": f, "score": "length"}, f"documents -{f:.0%} (length)"),
                                    ("postings-pruning", {"fraction": f}, f"postings -{f:.0%} (Carmel k=10)")):
            m = instantiate(name, params)
            m.set_depth(args.k)
            m.index(coll.corpus)
            t = open_retriever(m._pruned_path, m.params, args.k)
            configs.append((label, t, index_size(m._pruned_path, "terrier")))

    quality = {}
    for label, t, _ in configs:
        run = normalize_run(t(topics), args.k)
        quality[label] = per_query_scores(run, coll.qrels, list(topics["qid"]), measures)["nDCG@10"].mean()
    per_round: dict[str, list[list[float]]] = {label: [] for label, _, _ in configs}
    with single_thread():
        for r in range(args.rounds):
            shift = r % len(configs)
            for label, t, _ in configs[shift:] + configs[:shift]:
                per_round[label].append(time_each(t, rows, warmup=args.warmup))
    # a query's latency on an index: its fastest round (load on a shared machine only adds time)
    durations = {label: np.min(np.asarray(v), axis=0) for label, v in per_round.items()}

    print(f"task {task.id}: {len(coll.corpus):,} documents, {len(topics)} queries, k={args.k}, {args.rounds} rounds, "
          f"single thread, batch 1; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    b = configs[0][2]
    base_p50 = latency_stats(durations[configs[0][0]])["p50"]
    print(f"{'index':<30} {'KiB':>8} {'postings':>9} {'size':>6} {'p50 ms':>7} {'mean ms':>8} {'p50 x':>6} {'nDCG@10':>8}")
    for label, _, size in configs:
        s = latency_stats(durations[label])
        print(f"{label:<30} {size['bytes_query_structures'] / 1024:8.0f} {size['postings_queryable']:9,d} "
              f"{size['bytes_query_structures'] / b['bytes_query_structures']:6.2f} {s['p50']:7.3f} {s['mean']:8.3f} "
              f"{s['p50'] / base_p50:6.2f} {quality[label]:8.4f}", flush=True)


if __name__ == "__main__":
    main()
