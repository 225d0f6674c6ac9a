"""PISA through the harness vs PISA called directly through pyterrier-pisa: same index, same
queries, same settings, at k = 10 and k = 1000, side by side in one run.

Usage: HARNESS_DATA_DIR=... python benchmarks/pisa_direct.py [--task vaswani] [--rounds 3] [--algorithms ...]

"harness": the transformer the harness's latency pass times (``RetrievalMethod.timing_transformer(k)``
of ``bm25``: pyterrier-pisa under the adapter's per-call fd silencing of PISA's C++ log). "direct":
``pyterrier_pisa.PisaIndex(<the same index>).bm25(...)`` with the same k1, b, stemmer, stopwords,
query algorithm, query weighting and one thread, called on the same one-query frames; its log is
silenced once around the whole loop, not per call. After a warm-up, each round times every query
alone through both paths back to back (alternating which goes first), so drifts in machine load hit
both alike; p50 pools all rounds. A third column, "direct+redirect", is the direct call inside the
adapter's per-call fd redirect (``silenced``): what of the difference that redirect explains. The
"cpu" columns are the same calls' process CPU time (``time.process_time``): on a loaded machine
wall time includes waiting for a core, CPU time does not. The
rankings of both paths are checked to be identical. Target: the harness within 10% of direct.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.ir.collections import load_collection  # noqa: E402
from harness.ir.evaluate import normalize_run  # noqa: E402
from harness.registry import instantiate  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from harness.timing import single_thread  # noqa: E402
from methods.retrieval._common import silenced  # noqa: E402
from methods.retrieval.bm25 import QUERY_ALGORITHMS  # noqa: E402


def direct_transformer(m, k: int):  # noqa: ANN001, ANN201 - a bm25 adapter after index()
    import pyterrier_pisa

    p = m.params
    idx = pyterrier_pisa.PisaIndex(str(m._index.path), stemmer=p.stemmer, stops=p.stops, threads=1)
    with silenced():
        return idx.bm25(k1=p.k1, b=p.b, num_results=k, threads=1, query_algorithm=p.query_algorithm,
                        query_weighted=p.query_weighted, verbose=False)


def same_rankings(a, b, k: int) -> bool:  # noqa: ANN001
    ra, rb = normalize_run(a, k), normalize_run(b, k)
    return ra[["qid", "docno"]].reset_index(drop=True).equals(rb[["qid", "docno"]].reset_index(drop=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="vaswani")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--algorithms", nargs="*", default=list(QUERY_ALGORITHMS))
    ap.add_argument("--ks", type=int, nargs="*", default=[10, 1000])
    args = ap.parse_args()

    task = get_task(args.task)
    coll = load_collection(task)
    topics = coll.topics[["qid", "query"]].astype(str).reset_index(drop=True)
    rows = [topics.iloc[i : i + 1].reset_index(drop=True) for i in range(len(topics))]
    print(f"task {task.id}: {len(coll.corpus):,} documents, {len(topics)} queries, {args.rounds} rounds, "
          f"single thread, batch 1; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'algorithm':<20} {'k':>5} {'harness p50 ms':>15} {'direct p50 ms':>14} {'ratio':>7} "
          f"{'direct+redirect':>17} {'cpu harn':>9} {'cpu dir':>9} {'ratio':>7} {'same ranking':>13}")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for algo in args.algorithms:
        m = instantiate("bm25", {"query_algorithm": algo})
        m.index(coll.corpus)
        for k in args.ks:
            harness, direct = m.timing_transformer(k), direct_transformer(m, k)
            with silenced():
                same = same_rankings(harness(topics), direct(topics), k)
            def direct_silenced(x, direct=direct):  # noqa: ANN001, ANN202 - attribution: direct + the per-call redirect
                with silenced():
                    return direct(x)

            fns = {"harness": harness, "direct": direct, "direct+redirect": direct_silenced}
            times: dict[str, list[float]] = {name: [] for name in fns}
            cpu: dict[str, list[float]] = {name: [] for name in fns}
            with single_thread(), silenced():  # direct's log silenced once, around the whole loop
                for x in rows[: args.warmup]:
                    for fn in fns.values():
                        fn(x)
                for r in range(args.rounds):  # each query through both paths back to back, order alternating
                    for i, x in enumerate(rows):
                        names = list(fns)
                        for name in names[(i + r) % 3:] + names[: (i + r) % 3]:
                            fn = fns[name]
                            c0, t0 = time.process_time(), time.perf_counter()
                            fn(x)
                            times[name].append(time.perf_counter() - t0)
                            cpu[name].append(time.process_time() - c0)
            h, d, dr = (float(np.percentile(np.asarray(times[n]) * 1000, 50)) for n in fns)
            ch, cd, _cdr = (float(np.percentile(np.asarray(cpu[n]) * 1000, 50)) for n in fns)
            ratios.append(h / d)
            cpu_ratios.append(ch / cd)
            print(f"{algo:<20} {k:>5} {h:>15.3f} {d:>14.3f} {h / d:>7.3f} {dr:>17.3f} {ch:>9.3f} {cd:>9.3f} "
                  f"{ch / cd:>7.3f} {'yes' if same else 'NO':>13}")
    print(f"harness / direct p50, wall: median {np.median(ratios):.3f}, max {max(ratios):.3f}; process CPU: "
          f"median {np.median(cpu_ratios):.3f}, max {max(cpu_ratios):.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
