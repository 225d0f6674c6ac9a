"""Adaptive evaluation of a new entry: items in a seeded random order, stopped once its rank is settled.

The board's other entries are known on every item. The new entry is evaluated item by item in a
random order (seeded); after each item, one confidence sequence per other entry j bounds the mean
per-item difference between the new entry and j over *all* the task's items. The sequences are the
predictable plug-in empirical-Bernstein confidence sequences for sampling without replacement of
Waudby-Smith and Ramdas ("Confidence sequences for sampling without replacement", NeurIPS 2020,
Theorem 3, with the plug-in variance and lambda of "Estimating means of bounded random variables by
betting", JRSS-B 2024, eq. (13); the same bounds as the authors' ``confseq`` package,
``predmix_empbern_cs_wor``): they hold at every item count at once (anytime-valid), so stopping
whenever they allow keeps the error rate. Over the k comparisons a Bonferroni split (alpha / k each)
bounds the chance that *any* comparison is ever decided wrongly by alpha; running intersections
keep the sequences nested.

The pair with j is *decided* when its interval excludes 0 (the new entry is better or worse than j
on the full item set) or, with a margin epsilon > 0, lies inside [-epsilon, epsilon] (tied within
epsilon). The rank is settled when every pair is decided; evaluation stops there. The per-item scores
must lie in known bounds [lo, hi] (given, or taken from the stored scores).

Here the "new entry" is a stored result (``harness subset TASK --adaptive --run RUN_ID``): the run
is a simulation on its stored per-item scores, answering "how many items would it have taken".
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

LAMBDA_MAX = 0.5


@dataclass
class Adaptive:
    items_used: int
    n_items: int
    settled: bool  # every pair decided before the items ran out
    rank: int  # 1 + the entries decided better (with all items used: the exact rank); ties follow it
    true_rank: int  # the rank on the full item set
    better: list[int] = field(default_factory=list)  # board rows decided better than the new entry
    worse: list[int] = field(default_factory=list)
    tied: list[int] = field(default_factory=list)  # within the margin
    wrong: list[int] = field(default_factory=list)  # pairs decided against the full-set truth

    @property
    def correct(self) -> bool:
        return not self.wrong


def confidence_bounds(y: np.ndarray, n_total: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Running lower/upper bounds (t x k) on the population mean of each column of ``y`` (values in
    [0, 1], rows drawn without replacement from ``n_total``), two-sided at level ``alpha`` each."""
    t_max, _k = y.shape
    t = np.arange(1, t_max + 1, dtype=float)[:, None]
    csum = np.cumsum(y, axis=0)
    mu_hat = (0.5 + csum) / (t + 1)  # after t items
    dev = np.cumsum((y - mu_hat) ** 2, axis=0)
    var_hat = (0.25 + dev) / (t + 1)
    prev_mu = np.vstack([np.full((1, y.shape[1]), 0.5), mu_hat[:-1]])
    prev_var = np.vstack([np.full((1, y.shape[1]), 0.25), var_hat[:-1]])
    log_term = math.log(2.0 / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (prev_var * t * np.log1p(t))), LAMBDA_MAX)
    v = 4 * (y - prev_mu) ** 2
    psi = (-np.log1p(-lam) - lam) / 4
    prev_sum = np.vstack([np.zeros((1, y.shape[1])), csum[:-1]])
    remaining = n_total - t + 1  # items not yet seen before item t, it included
    a = n_total / remaining
    b = prev_sum / remaining
    big_a = np.cumsum(lam * a, axis=0)
    num = np.cumsum(lam * (y + b), axis=0)
    spread = log_term + np.cumsum(v * psi, axis=0)
    lower = np.maximum.accumulate(np.maximum((num - spread) / big_a, 0.0), axis=0)
    upper = np.minimum.accumulate(np.minimum((num + spread) / big_a, 1.0), axis=0)
    return lower, upper


def sequential_rank(new: np.ndarray, board: np.ndarray, hib: bool = True, alpha: float = 0.05, seed: int = 0,
                    bounds: tuple[float, float] | None = None, margin: float = 0.0) -> Adaptive:
    """Evaluate ``new`` (n per-item scores) item by item against ``board`` (k x n) until its rank is settled."""
    new = np.asarray(new, dtype=float)
    board = np.asarray(board, dtype=float)
    n = new.shape[0]
    if board.ndim != 2 or board.shape[1] != n or board.shape[0] < 1:
        raise HarnessError(f"the board needs at least one entry with {n} per-item scores, got shape {board.shape}")
    if not 0 < alpha < 1:
        raise HarnessError(f"--alpha {alpha}: must lie strictly between 0 and 1")
    lo, hi = bounds if bounds is not None else (min(new.min(), board.min()), max(new.max(), board.max()))
    if not hi > lo or new.min() < lo or new.max() > hi or board.min() < lo or board.max() > hi:
        raise HarnessError(f"--bounds {lo},{hi}: the per-item scores must lie within them (and lo < hi)")
    span = hi - lo
    order = np.random.default_rng(seed).permutation(n)
    diff = (new[order][:, None] - board[:, order].T) * (1 if hib else -1)  # > 0: the new entry is better
    y = (diff + span) / (2 * span)
    lower, upper = confidence_bounds(y, n, alpha / board.shape[0])
    half, eps = 0.5, margin / (2 * span)
    better_new = lower > half
    worse_new = upper < half
    tied = (lower > half - eps) & (upper < half + eps) if margin > 0 else np.zeros_like(better_new)
    decided = (better_new | worse_new | tied).all(axis=1)
    stop = int(np.argmax(decided)) if decided.any() else n - 1
    truth = (new.mean() - board.mean(axis=1)) * (1 if hib else -1)
    at = stop
    if decided.any():
        b, w, t = (np.flatnonzero(x[at]) for x in (worse_new, better_new, tied & ~better_new & ~worse_new))
    else:  # every item evaluated: the order is the full set's
        b, w, t = np.flatnonzero(truth < 0), np.flatnonzero(truth > 0), np.flatnonzero(truth == 0)
    wrong = [int(j) for j in b if truth[j] >= 0] + [int(j) for j in w if truth[j] <= 0] + \
            [int(j) for j in t if abs(truth[j]) > margin]
    return Adaptive(items_used=stop + 1, n_items=n, settled=bool(decided.any()), rank=1 + len(b),
                    true_rank=1 + int((truth < 0).sum()), better=b.tolist(), worse=w.tolist(), tied=t.tolist(),
                    wrong=sorted(wrong))


def main(args: argparse.Namespace) -> int:
    from harness.subset import board_matrix

    if not args.run:
        raise HarnessError("--adaptive needs --run RUN_ID: the stored entry to evaluate item by item")
    if not 0 < args.alpha < 1:
        raise HarnessError(f"--alpha {args.alpha}: must lie strictly between 0 and 1")
    bounds = _bounds(args.bounds)
    m = board_matrix(Path(args.results), args.task, args.model)
    hits = [i for i, r in enumerate(m.run_ids) if r.startswith(args.run)]
    if len(hits) != 1:
        raise HarnessError(f"--run {args.run}: {'no' if not hits else 'more than one'} ranked entry of the "
                           f"{m.task_id} board matches (its run ids: {', '.join(m.run_ids)})")
    (i,) = hits
    others = [j for j in range(len(m.run_ids)) if j != i]
    out = sequential_rank(m.scores[i], m.scores[others], m.hib, args.alpha, args.seed, bounds, args.margin)
    print(report(out, m, i, others, args))
    return 0


def _bounds(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise HarnessError(f"--bounds {text!r}: expected LO,HI (two numbers)") from None
    if not hi > lo:
        raise HarnessError(f"--bounds {text!r}: LO must be below HI")
    return lo, hi


def report(out: Adaptive, m: Any, i: int, others: list[int], args: argparse.Namespace) -> str:
    head = (f"simulation on the stored per-item scores of {m.run_ids[i]} ({m.labels[i]}) against the other "
            f"{len(others)} entries of the {m.task_id} board: items in random order (seed {args.seed}), "
            f"empirical-Bernstein confidence sequences without replacement, alpha={args.alpha} Bonferroni-split "
            f"over {len(others)} comparisons" + (f", margin {args.margin}" if args.margin else ""))
    shown = f"{out.rank}" if not out.tied else f"{out.rank}-{out.rank + len(out.tied)} (tied within the margin)"
    if out.settled:
        verdict = f"rank settled after {out.items_used} of {out.n_items} items: rank {shown}"
    else:
        verdict = f"rank not settled before the items ran out: all {out.n_items} items used, exact rank {out.rank}"
    lines = [head, verdict + f" (full-set rank {out.true_rank}; {'correct' if out.correct else 'WRONG'})"]
    for name, rows in (("better", out.better), ("worse", out.worse), ("tied", out.tied)):
        if rows:
            lines.append(f"  {name}: " + ", ".join(m.run_ids[others[j]] for j in rows))
    return "\n".join(lines)
