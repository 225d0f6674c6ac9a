"""How many items does each subset strategy need to rank a board as the full item set does?

For every task in the results directory whose board has enough entries with per-item scores, and for
each strategy (``random`` is the baseline, measured in the same run), the held-out Kendall tau of
``harness.subset.fidelity`` (each entry ranked on a subset chosen without it) is averaged over seeds
at a grid of subset sizes K. "Items needed" is the smallest K of the grid from which on the mean
held-out tau stays >= the target (0.9) at every larger K of the grid; the full item count when none.

    python benchmarks/subset_fidelity.py [--results results] [--seeds 5] [--target 0.9] [--task ID ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import HarnessError  # noqa: E402
from harness.subset import STRATEGIES, board_matrix, fidelity, smart_filter  # noqa: E402
from harness.subset_adaptive import sequential_rank  # noqa: E402

FRACTIONS = (0.04, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def grid(n: int) -> list[int]:
    return sorted({max(2, min(n, int(round(f * n)))) for f in FRACTIONS})


def needed(sizes: list[int], taus: list[float], target: float, n: int) -> int:
    """The smallest size from which on every mean tau reaches the target (n when none)."""
    for i, k in enumerate(sizes):
        if all(t >= target for t in taus[i:]):
            return k
    return n


def task_ids(results: Path) -> list[str]:
    return sorted(p.name for p in results.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.json")))


def run_task(results: Path, task: str, seeds: int, target: float) -> dict | None:
    try:
        m = board_matrix(results, task)
    except HarnessError as exc:
        print(f"  {task}: skipped ({exc})", file=sys.stderr)
        return None
    n = len(m.items)
    survivors = len(smart_filter(m.scores, m.hib)[0])
    row = {"task": task, "entries": len(m.run_ids), "items": n, "smart_survivors": survivors}
    sizes = grid(n)
    for strategy in STRATEGIES:
        t0 = time.perf_counter()
        taus = []
        for k in sizes:
            kk = min(k, survivors) if strategy == "smart" else k
            vals = [fidelity(m.scores, m.hib, strategy, kk, seed)["tau_held_out"] for seed in range(seeds)]
            taus.append(float(np.mean([v if v is not None else 0.0 for v in vals])))
        row[strategy] = needed(sizes, taus, target, n)
        row[f"{strategy}_curve"] = dict(zip(sizes, taus))
        row[f"{strategy}_seconds"] = time.perf_counter() - t0
    row |= adaptive(m.scores, m.hib)
    return row


def adaptive(scores: np.ndarray, hib: bool, alpha: float = 0.05, margin_share: float = 0.02) -> dict:
    """Simulated adaptive evaluation of each entry against the others (seed 0): mean items used and
    how many settled before the items ran out, with margin 0 and with a margin of 2% of the score range."""
    out = {}
    span = float(scores.max() - scores.min())
    for name, margin in (("adaptive", 0.0), ("adaptive_margin", margin_share * span)):
        runs = [sequential_rank(scores[e], np.delete(scores, e, axis=0), hib, alpha, 0, margin=margin)
                for e in range(len(scores))]
        out[name] = (float(np.mean([r.items_used for r in runs])), sum(r.settled for r in runs),
                     sum(not r.correct for r in runs))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--task", action="append")
    ap.add_argument("--curves", action="store_true", help="also print the mean held-out tau at each size")
    args = ap.parse_args(argv)
    results = Path(args.results)
    rows = [r for t in (args.task or task_ids(results)) if (r := run_task(results, t, args.seeds, args.target))]
    print(f"items needed for mean held-out Kendall tau >= {args.target} (leave one entry out, {args.seeds} seeds; "
          f"random is the baseline)")
    head = f"{'task':14s} {'entries':>7s} {'items':>6s} {'smart kept':>10s} " + " ".join(f"{s:>10s}" for s in STRATEGIES)
    print(head)
    for r in rows:
        print(f"{r['task']:14s} {r['entries']:7d} {r['items']:6d} {r['smart_survivors']:10d} "
              + " ".join(f"{r[s]:10d}" for s in STRATEGIES))
    print("\nadaptive evaluation (simulated on the stored per-item scores; each entry against the rest of its "
          "board, alpha=0.05, items in seeded random order): mean items used / entries settled early / wrong")
    print(f"{'task':14s} {'items':>6s} {'margin 0':>22s} {'margin 2% of range':>22s}")
    for r in rows:
        cells = [f"{a[0]:.0f} / {a[1]} of {r['entries']} / {a[2]}" for a in (r["adaptive"], r["adaptive_margin"])]
        print(f"{r['task']:14s} {r['items']:6d} {cells[0]:>22s} {cells[1]:>22s}")
    if args.curves:
        for r in rows:
            for s in STRATEGIES:
                curve = " ".join(f"{k}:{v:.2f}" for k, v in r[f"{s}_curve"].items())
                print(f"  {r['task']} {s} ({r[f'{s}_seconds']:.1f} s): {curve}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
