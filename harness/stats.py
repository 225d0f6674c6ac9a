"""Paired significance tests for comparing two systems on the same items, and p-value corrections.

Every procedure takes two aligned per-item score vectors ``x`` (the candidate) and ``y`` (the
baseline) — item i of both comes from the same query / example / window — and tests the null
hypothesis that the two systems are exchangeable on every item. All randomised procedures are
seeded (seed 0 by default), so the same inputs give the same p-values and intervals everywhere.

Conventions shared by all tests:

- the observed difference is ``transform(mean(x)) - transform(mean(y))`` (``transform`` is the
  identity except for metrics whose aggregate is a monotone function of a per-item mean, e.g.
  perplexity = exp(mean NLL));
- two-sided p-values; Monte Carlo p-values use the (count + 1) / (B + 1) estimator of Phipson &
  Smyth (2010), which is never 0 and is exact-valid;
- identical inputs give difference 0 and p = 1 in every test.

References: Efron & Tibshirani (1993) for the percentile bootstrap; Koehn (2004) and
Berg-Kirkpatrick et al. (2012) for the paired bootstrap test in NLP; Smucker, Allan & Carterette
(2007) for the randomisation (sign-flip) test in IR; McNemar (1947) with the exact binomial form
for binary outcomes; Holm (1979) for the step-down correction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
# Sign-flip tests enumerate all 2**n sign vectors up to this n (65,536 patterns), else Monte Carlo.
EXACT_MAX_N = 16
# scipy's Wilcoxon zero handling: Pratt (1959) ranks the zero differences with the others and then
# drops them from the statistic; unlike the default "wilcox" it does not throw information away
# before ranking and is the recommended choice when ties at zero are common (binary/graded metrics).
WILCOXON_ZERO_METHOD = "pratt"

TESTS = ("paired-bootstrap", "randomization", "t", "wilcoxon", "mcnemar")
CORRECTIONS = ("holm", "bonferroni", "none")

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairedResult:
    """Outcome of one paired test of x (candidate) against y (baseline)."""

    test: str
    n: int
    mean_x: float
    mean_y: float
    diff: float  # transform(mean x) - transform(mean y)
    p_value: float
    ci_low: float | None = None
    ci_high: float | None = None
    statistic: float | None = None
    detail: str = ""  # e.g. "exact over 2^10 sign vectors" or "Monte Carlo, 10000 resamples, seed 0"


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _pair(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or ya.ndim != 1:
        raise ValueError("paired tests need two 1-D score vectors")
    if xa.shape != ya.shape:
        raise ValueError(f"paired tests need equally long vectors, got {xa.size} and {ya.size}")
    if xa.size == 0:
        raise ValueError("paired tests need at least one item")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("per-item scores contain NaN or inf")
    return xa, ya


def _chunks(total: int, n: int, budget: int = 4_000_000) -> list[tuple[int, int]]:
    """Row ranges of a (total x n) resample matrix that keep each block under ``budget`` cells."""
    step = max(1, budget // max(n, 1))
    return [(s, min(total, s + step)) for s in range(0, total, step)]


def _tol(scale: float) -> float:
    # Resampled statistics equal to the observed one in exact arithmetic can differ in the last bits;
    # count them as ties (>=), which is what the exact test does.
    return 1e-9 * max(scale, 1e-300)


# ---------------------------------------------------------------------------------------------
# Individual tests


def paired_bootstrap(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
    transform: Transform | None = None,
) -> PairedResult:
    """Paired bootstrap: resample items with replacement (the same items for both systems).

    CI: percentile interval of the resampled differences. p-value: the shifted-null test of
    Berg-Kirkpatrick et al. (2012): the bootstrap distribution re-centred on 0 stands in for the
    null, p = (1 + #{|d*_b - d| >= |d|}) / (B + 1).
    """
    xa, ya = _pair(x, y)
    f = transform or _identity
    n = xa.size
    d_obs = float(f(np.array(xa.mean())) - f(np.array(ya.mean())))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples, dtype=np.float64)
    for lo, hi in _chunks(n_resamples, n):
        idx = rng.integers(0, n, size=(hi - lo, n))
        diffs[lo:hi] = f(xa[idx].mean(axis=1)) - f(ya[idx].mean(axis=1))
    alpha = 1.0 - confidence
    ci_low, ci_high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    scale = abs(d_obs) + float(np.abs(diffs).max(initial=0.0))
    count = int(np.count_nonzero(np.abs(diffs - d_obs) >= abs(d_obs) - _tol(scale)))
    p = (count + 1) / (n_resamples + 1)
    return PairedResult(
        test="paired-bootstrap",
        n=n,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=d_obs,
        p_value=min(1.0, p),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        detail=f"paired bootstrap, {n_resamples} resamples, seed {seed}, {confidence:.0%} percentile CI",
    )


def paired_randomization(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    exact_max_n: int = EXACT_MAX_N,
) -> PairedResult:
    """Paired randomisation (permutation) test: under H0 the two labels of each item are
    exchangeable, i.e. the sign of every difference d_i = x_i - y_i may be flipped.
    Statistic: mean difference, two-sided. Exact over all 2**n sign vectors when
    n <= ``exact_max_n``; otherwise Monte Carlo with ``n_resamples`` random sign vectors.

    For a monotone transform of the mean (perplexity) the test on the per-item means is the same
    test: the ordering, and hence the null, is unchanged.
    """
    xa, ya = _pair(x, y)
    d = xa - ya
    n = d.size
    obs = float(d.sum())
    scale = float(np.abs(d).sum())
    tol = _tol(scale)
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)), dtype=np.float64)
        stats = signs @ d
        count = int(np.count_nonzero(np.abs(stats) >= abs(obs) - tol))
        p = count / signs.shape[0]
        detail = f"paired randomization (sign-flip), exact over 2^{n} sign vectors"
    else:
        rng = np.random.default_rng(seed)
        count = 0
        for lo, hi in _chunks(n_resamples, n):
            signs = rng.choice(np.array([1.0, -1.0]), size=(hi - lo, n))
            count += int(np.count_nonzero(np.abs(signs @ d) >= abs(obs) - tol))
        p = (count + 1) / (n_resamples + 1)
        detail = f"paired randomization (sign-flip), Monte Carlo, {n_resamples} resamples, seed {seed}"
    return PairedResult(
        test="randomization",
        n=n,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=float(xa.mean() - ya.mean()),
        p_value=min(1.0, p),
        statistic=obs / n,
        detail=detail,
    )


def paired_ttest(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PairedResult:
    """Paired t-test (scipy.stats.ttest_rel), two-sided. Degenerate cases scipy leaves as NaN are
    resolved explicitly: all differences 0 -> p = 1; constant non-zero differences -> p = 0."""
    from scipy import stats as sps

    xa, ya = _pair(x, y)
    d = xa - ya
    n = d.size
    if n < 2:
        raise ValueError("the paired t-test needs at least 2 items")
    if np.all(d == 0):
        t, p = 0.0, 1.0
    elif np.all(d == d[0]):
        t, p = math.copysign(math.inf, float(d[0])), 0.0
    else:
        res = sps.ttest_rel(xa, ya)
        t, p = float(res.statistic), float(res.pvalue)
    return PairedResult(
        test="t",
        n=n,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=float(xa.mean() - ya.mean()),
        p_value=p,
        statistic=t,
        detail=f"paired t-test, df={n - 1}",
    )


def wilcoxon_signed_rank(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PairedResult:
    """Wilcoxon signed-rank test (scipy.stats.wilcoxon), two-sided, zero_method
    ``WILCOXON_ZERO_METHOD`` ("pratt"); scipy picks the exact null distribution for small samples
    without ties/zeros and the normal approximation otherwise. All differences 0 -> p = 1."""
    from scipy import stats as sps

    xa, ya = _pair(x, y)
    d = xa - ya
    n = d.size
    if np.all(d == 0):
        w, p = 0.0, 1.0
    else:
        res = sps.wilcoxon(xa, ya, zero_method=WILCOXON_ZERO_METHOD, alternative="two-sided")
        w, p = float(res.statistic), float(res.pvalue)
    return PairedResult(
        test="wilcoxon",
        n=n,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=float(xa.mean() - ya.mean()),
        p_value=p,
        statistic=w,
        detail=f"Wilcoxon signed-rank, zero_method={WILCOXON_ZERO_METHOD}",
    )


def is_binary(a: np.ndarray | Sequence[float]) -> bool:
    arr = np.asarray(a, dtype=np.float64)
    return bool(np.all((arr == 0.0) | (arr == 1.0)))


def mcnemar(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PairedResult:
    """Exact McNemar test for binary per-item outcomes (e.g. acc): only discordant items count;
    with b = #(x=1, y=0) and c = #(x=0, y=1), p = two-sided exact binomial test of b out of b + c
    at 1/2 (p = 1 when there are no discordant items)."""
    from scipy import stats as sps

    xa, ya = _pair(x, y)
    if not (is_binary(xa) and is_binary(ya)):
        raise ValueError("McNemar's test needs binary (0/1) per-item scores")
    b = int(np.count_nonzero((xa == 1) & (ya == 0)))
    c = int(np.count_nonzero((xa == 0) & (ya == 1)))
    p = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
    return PairedResult(
        test="mcnemar",
        n=xa.size,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=float(xa.mean() - ya.mean()),
        p_value=min(1.0, p),
        statistic=float(b),
        detail=f"exact McNemar (binomial on {b + c} discordant items: {b} vs {c})",
    )


def run_test(
    test: str,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    if test == "paired-bootstrap":
        return paired_bootstrap(x, y, n_resamples=n_resamples, seed=seed)
    if test == "randomization":
        return paired_randomization(x, y, n_resamples=n_resamples, seed=seed)
    if test == "t":
        return paired_ttest(x, y)
    if test == "wilcoxon":
        return wilcoxon_signed_rank(x, y)
    if test == "mcnemar":
        return mcnemar(x, y)
    raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")


# ---------------------------------------------------------------------------------------------
# Multiple comparisons


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values: sort ascending, p_(i) * (m - i + 1), running max,
    capped at 1; returned in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    return [min(1.0, m * p) for p in p_values]


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    if correction == "holm":
        return holm(p_values)
    if correction == "bonferroni":
        return bonferroni(p_values)
    if correction == "none":
        return [float(p) for p in p_values]
    raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")


# ---------------------------------------------------------------------------------------------
# All pairs at once (leaderboard ranks)


def pairwise_randomization(
    scores: np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    exact_max_n: int = EXACT_MAX_N,
) -> np.ndarray:
    """Two-sided paired randomisation p-values for every pair of rows of ``scores`` (k systems x
    n items), as a symmetric k x k matrix (diagonal 1).

    The same test as :func:`paired_randomization` on each pair (exact enumeration for small n, else
    one shared set of B random sign vectors for all pairs), but it costs one (k x n) @ (n x B) product: under a sign vector s the statistic of pair (i, j) is
    s . (x_i - x_j) = s . x_i - s . x_j.
    """
    k, n = scores.shape
    pmat = np.ones((k, k), dtype=np.float64)
    if k < 2:
        return pmat
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)), dtype=np.float64)
        exact = True
    else:
        signs = np.random.default_rng(seed).choice(np.array([1.0, -1.0]), size=(n_resamples, n))
        exact = False
    proj = scores @ signs.T  # k x B
    obs = scores.sum(axis=1)
    absx = np.abs(scores)
    total = signs.shape[0]
    for i in range(k - 1):
        dstats = np.abs(proj[i][None, :] - proj[i + 1 :])  # (k-i-1) x B
        d_obs = np.abs(obs[i] - obs[i + 1 :])
        scale = (absx[i][None, :] + absx[i + 1 :]).sum(axis=1)
        tol = 1e-9 * np.maximum(scale, 1e-300)
        counts = np.count_nonzero(dstats >= (d_obs - tol)[:, None], axis=1)
        p = counts / total if exact else (counts + 1) / (total + 1)
        pmat[i, i + 1 :] = np.minimum(1.0, p)
        pmat[i + 1 :, i] = pmat[i, i + 1 :]
    return pmat


class SignFlipPairs:
    """Paired randomisation tests between any two rows of ``scores`` (k systems x n items) that
    share one set of sign vectors, computed lazily from one (k x n) @ (n x B) product."""

    def __init__(
        self,
        scores: np.ndarray,
        n_resamples: int = DEFAULT_RESAMPLES,
        seed: int = DEFAULT_SEED,
        exact_max_n: int = EXACT_MAX_N,
    ):
        self.scores = np.asarray(scores, dtype=np.float64)
        k, n = self.scores.shape
        self.n = n
        self.exact = n <= exact_max_n
        if self.exact:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)), dtype=np.float64)
        else:
            signs = np.random.default_rng(seed).choice(np.array([1.0, -1.0]), size=(n_resamples, n))
        self.total = signs.shape[0]
        self.proj = self.scores @ signs.T
        self.sums = self.scores.sum(axis=1)
        self.detail = (
            f"paired randomization (sign-flip) test, exact over all 2^{n} sign vectors"
            if self.exact
            else f"paired randomization (sign-flip) test, {n_resamples} Monte Carlo resamples, seed {seed}"
        )
        self._cache: dict[tuple[int, int], float] = {}

    def p(self, i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in self._cache:
            a, b = key
            d_obs = abs(self.sums[a] - self.sums[b])
            tol = _tol(float(np.abs(self.scores[a] - self.scores[b]).sum()))
            count = int(np.count_nonzero(np.abs(self.proj[a] - self.proj[b]) >= d_obs - tol))
            p = count / self.total if self.exact else (count + 1) / (self.total + 1)
            self._cache[key] = min(1.0, p)
        return self._cache[key]


@dataclass(frozen=True)
class RankOutcome:
    ranks: list[int]  # competition ranks (1, 1, 3, ...) in the given (sorted) order
    leaders: list[int]  # index of the entry each entry was compared with (itself for a leader)
    p_raw: list[float | None]  # p-value of each entry against its leader (None for the top entry)
    p_adj: list[float | None]
    comparisons: int
    correction: str
    detail: str
    converged: bool  # False: the Holm fixpoint did not settle and Bonferroni was used instead


def ranks_with_ties(
    scores: np.ndarray,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    max_iter: int = 50,
) -> RankOutcome:
    """Ranks for k entries already sorted best first (rows of ``scores``, k x n per-item scores).

    Entries are grouped top-down: the first entry leads rank group 1; every later entry is compared
    (paired randomisation test) with the leader of the group above it; when the corrected p-value
    is >= ``alpha`` it shares that group's rank, otherwise it leads a new group whose rank is its
    1-based position (competition ranking). The k - 1 comparisons are corrected together. Because
    which leader an entry meets depends on the corrected decisions, Holm is applied as a fixpoint:
    start from "everyone against the top entry", recompute the leaders from the corrected p-values,
    repeat until the set of comparisons no longer changes. If it does not settle in ``max_iter``
    rounds, Bonferroni (whose threshold does not depend on the other p-values) decides instead, and
    ``converged`` is False.
    """
    scores = np.asarray(scores, dtype=np.float64)
    k = scores.shape[0]
    if k == 0:
        return RankOutcome([], [], [], [], 0, correction, "", True)
    tester = SignFlipPairs(scores, n_resamples=n_resamples, seed=seed)

    def decide(leaders_in: list[int], corr: str) -> tuple[list[int], list[int], list[float | None], list[float | None]]:
        raw = [tester.p(i, leaders_in[i]) for i in range(1, k)]
        adj = adjust(raw, corr) if raw else []
        # Walk down with these corrected p-values to find who leads whom.
        leaders = [0] * k
        ranks = [1] * k
        current = 0
        p_raw: list[float | None] = [None] * k
        p_adj: list[float | None] = [None] * k
        for i in range(1, k):
            # Corrected p-value of i against the current leader; if this comparison was not in the
            # family used for the correction, use its raw p inflated as it would be in that family.
            if leaders_in[i] == current:
                pr, pa = raw[i - 1], adj[i - 1]
            else:
                pr = tester.p(i, current)
                pa = adjust(raw[: i - 1] + [pr] + raw[i:], corr)[i - 1]
            p_raw[i], p_adj[i] = pr, pa
            if pa < alpha:
                current = i
                leaders[i] = i
                ranks[i] = i + 1
            else:
                leaders[i] = current
                ranks[i] = ranks[current]
        return leaders, ranks, p_raw, p_adj

    leaders_in = [0] * k
    converged = False
    ranks: list[int] = [1] * k
    p_raw: list[float | None] = [None] * k
    p_adj: list[float | None] = [None] * k
    leaders_out: list[int] = [0] * k
    if correction in ("bonferroni", "none"):
        leaders_out, ranks, p_raw, p_adj = decide(leaders_in, correction)
        converged = True
    else:
        for _ in range(max_iter):
            leaders_out, ranks, p_raw, p_adj = decide(leaders_in, correction)
            # Entry i met the leader of the group holding entry i - 1.
            compared = [0] + leaders_out[:-1]
            if compared == leaders_in:
                converged = True
                break
            leaders_in = compared
        if not converged:
            leaders_out, ranks, p_raw, p_adj = decide(leaders_in, "bonferroni")
    return RankOutcome(
        ranks=ranks,
        leaders=leaders_out,
        p_raw=p_raw,
        p_adj=p_adj,
        comparisons=max(0, k - 1),
        correction=correction if converged else "bonferroni",
        detail=tester.detail,
        converged=converged,
    )

