"""Reranker throughput on a few TREC DL 2019 queries: pairs/s (qlm, bi-encoder), inferences/s (prp).

    HARNESS_DATA_DIR=/path/to/data HF_HUB_OFFLINE=1 python benchmarks/bench_rerankers.py \
        [--queries 2] [--depth 20] [--prp-depth 10] [--methods qlm,bi-encoder,prp]

Each method's model is loaded and warmed up on one query first (not timed); then the first
``--queries`` queries are reranked at ``--depth`` and timed with ``time.perf_counter``. Prints one
line per method with the device, threads, batch size and figures. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    import torch

    from harness.ir.trecdl import load_collection
    from harness.registry import instantiate
    from harness.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--prp-depth", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--methods", default="qlm,bi-encoder,prp")
    args = ap.parse_args()

    fs = load_collection(get_task("trec-dl-2019")).first_stage
    qids = list(dict.fromkeys(fs["qid"]))
    warm, timed = fs[fs["qid"] == qids[0]], fs[fs["qid"].isin(qids[1 : 1 + args.queries])]
    print(f"device=cpu threads={torch.get_num_threads()} queries={args.queries} (DL19, after 1 warm-up query)")
    for name in args.methods.split(","):
        depth = args.prp_depth if name == "prp" else args.depth
        params = {"depth": str(depth), "batch_size": str(args.batch_size)}
        if name == "prp":
            params |= {"variant": "sliding", "passes": "10"}
        method = instantiate(name, params)
        t = method.transformer()
        t.progress = False
        t(warm)
        before = {k: v for k, v in method.stats.items() if isinstance(v, int)}
        t0 = time.perf_counter()
        t(timed)
        dt = time.perf_counter() - t0
        pairs = args.queries * depth
        line = f"{name:12s} depth={depth:<3d} batch={args.batch_size:<3d} {dt:7.2f} s  {pairs / dt:7.1f} pairs/s"
        if name == "prp":
            inf = method.stats["inferences_total"] - before["inferences_total"]
            line += f"  {inf} inferences, {inf / dt:.1f} inferences/s ({inf / args.queries:.0f} per query)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
