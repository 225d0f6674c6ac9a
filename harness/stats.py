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

What comes from libraries: the bootstrap resampling and its percentile interval from
``scipy.stats.bootstrap``; the t, Wilcoxon and binomial (McNemar) tests from ``scipy.stats``; Holm,
Bonferroni and Benjamini-Hochberg from ``statsmodels.stats.multitest.multipletests``. What is ours,
because no library has it: one sign-flip (randomisation) engine, :class:`SignFlipPairs`, exact over
all 2**n sign vectors for n <= ``EXACT_MAX_N`` and shared by the single paired test, the all-pairs
matrix and the leaderboard's ranks with ties (:func:`ranks_with_ties`).

Tests and corrections are registered by name in :data:`STAT_TESTS` and :data:`CORRECTIONS`
(:class:`harness.registry.Registry`); iterating either yields its names in registration order.

References: Efron & Tibshirani (1993) for the percentile bootstrap; Koehn (2004) and
Berg-Kirkpatrick et al. (2012) for the paired bootstrap test in NLP; Smucker, Allan & Carterette
(2007) for the randomisation (sign-flip) test in IR; McNemar (1947) with the exact binomial form
for binary outcomes; Holm (1979) for the step-down correction; Benjamini & Hochberg (1995) for the
false-discovery-rate adjustment.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from harness.errors import UnknownNameError
from harness.registry import Registry

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
# Sign-flip tests enumerate all 2**n sign vectors up to this n (65,536 patterns), else Monte Carlo.
EXACT_MAX_N = 16
# scipy's Wilcoxon zero handling: Pratt (1959) ranks the zero differences with the others and then
# drops them from the statistic; unlike the default "wilcox" it does not throw information away
# before ranking and is the recommended choice when ties at zero are common (binary/graded metrics).
WILCOXON_ZERO_METHOD = "pratt"

Transform = Callable[[np.ndarray], np.ndarray]
T = TypeVar("T")


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
# The sign-flip (randomisation) engine: one implementation for every randomisation test here


def all_sign_vectors(n: int) -> np.ndarray:
    """Every vector of n signs, (2**n x n), in ``itertools.product((1.0, -1.0), repeat=n)`` order."""
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n - 1, -1, -1, dtype=np.int64)) & 1
    return 1.0 - 2.0 * bits.astype(np.float64)


def _sign_blocks(n: int, n_resamples: int, seed: int, exact: bool) -> Iterator[np.ndarray]:
    """The sign vectors of the test, in blocks of rows: all 2**n when ``exact``, else
    ``n_resamples`` random ones drawn from ``default_rng(seed)`` (the same draws whatever the
    block size)."""
    if exact:
        yield all_sign_vectors(n)
        return
    rng = np.random.default_rng(seed)
    for lo, hi in _chunks(n_resamples, n):
        yield rng.choice(np.array([1.0, -1.0]), size=(hi - lo, n))


class SignFlipPairs:
    """Paired randomisation (sign-flip) tests between any two rows of ``scores`` (k systems x n
    items), all sharing one set of sign vectors.

    Under H0 the two labels of each item are exchangeable, i.e. the sign of every difference
    d_i = x_i - x_j may be flipped. Statistic: the summed (equivalently mean) difference,
    two-sided. Exact over all 2**n sign vectors when n <= ``exact_max_n`` (p = count / 2**n);
    otherwise ``n_resamples`` random sign vectors (p = (count + 1) / (B + 1)). Under a sign vector s
    the statistic of pair (i, j) is s . x_i - s . x_j, so one (k x n) @ (n x B) product, computed in
    blocks, serves every pair; p-values are computed lazily and cached.
    """

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
        blocks = [self.scores @ signs.T for signs in _sign_blocks(n, n_resamples, seed, self.exact)]
        self.proj = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]  # k x B
        self.total = self.proj.shape[1]
        self.sums = self.scores.sum(axis=1)
        self.n_resamples, self.seed = n_resamples, seed
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

    def matrix(self) -> np.ndarray:
        """All pairwise p-values as a symmetric k x k matrix (diagonal 1)."""
        k = self.scores.shape[0]
        pmat = np.ones((k, k), dtype=np.float64)
        for i in range(k):
            for j in range(i + 1, k):
                pmat[i, j] = pmat[j, i] = self.p(i, j)
        return pmat


# ---------------------------------------------------------------------------------------------
# Individual tests


def _bootstrap_distribution(
    xa: np.ndarray, ya: np.ndarray, f: Transform, n_resamples: int, seed: int, confidence: float
) -> tuple[np.ndarray, float, float]:
    """Paired bootstrap of transform(mean x) - transform(mean y) through ``scipy.stats.bootstrap``
    (percentile interval, ``default_rng(seed)``, resampled in blocks that bound memory)."""
    n = xa.size
    d_obs = float(f(np.array(xa.mean())) - f(np.array(ya.mean())))
    if n < 2:  # scipy needs two observations; one item resamples to itself every time
        return np.full(n_resamples, d_obs), d_obs, d_obs
    from scipy import stats as sps

    def statistic(xs: np.ndarray, ys: np.ndarray, axis: int = -1) -> np.ndarray:
        return f(xs.mean(axis=axis)) - f(ys.mean(axis=axis))

    lo, hi = _chunks(n_resamples, n)[0]
    # scipy >= 1.15 takes the generator as ``rng``, older versions as ``random_state``
    seeded = {"rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state":
              np.random.default_rng(seed)}
    res = sps.bootstrap(
        (xa, ya), statistic, n_resamples=n_resamples, batch=hi - lo, vectorized=True, paired=True,
        confidence_level=confidence, method="percentile", **seeded,
    )
    ci = res.confidence_interval
    return np.asarray(res.bootstrap_distribution, dtype=np.float64), float(ci.low), float(ci.high)


def paired_bootstrap(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
    transform: Transform | None = None,
) -> PairedResult:
    """Paired bootstrap: resample items with replacement (the same items for both systems).

    CI: percentile interval of the resampled differences (``scipy.stats.bootstrap``,
    ``method="percentile"``). p-value: the shifted-null test of Berg-Kirkpatrick et al. (2012) on
    the same bootstrap distribution: re-centred on 0 it stands in for the null,
    p = (1 + #{|d*_b - d| >= |d|}) / (B + 1).
    """
    xa, ya = _pair(x, y)
    f = transform or _identity
    d_obs = float(f(np.array(xa.mean())) - f(np.array(ya.mean())))
    diffs, ci_low, ci_high = _bootstrap_distribution(xa, ya, f, n_resamples, seed, confidence)
    scale = abs(d_obs) + float(np.abs(diffs).max(initial=0.0))
    count = int(np.count_nonzero(np.abs(diffs - d_obs) >= abs(d_obs) - _tol(scale)))
    p = (count + 1) / (n_resamples + 1)
    return PairedResult(
        test="paired-bootstrap",
        n=xa.size,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=d_obs,
        p_value=min(1.0, p),
        ci_low=ci_low,
        ci_high=ci_high,
        detail=f"paired bootstrap, {n_resamples} resamples, seed {seed}, {confidence:.0%} percentile CI",
    )


def paired_randomization(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    exact_max_n: int = EXACT_MAX_N,
) -> PairedResult:
    """Paired randomisation (permutation) test of x against y: :class:`SignFlipPairs` on the two
    rows. Exact over all 2**n sign vectors when n <= ``exact_max_n``; otherwise Monte Carlo with
    ``n_resamples`` random sign vectors.

    For a monotone transform of the mean (perplexity) the test on the per-item means is the same
    test: the ordering, and hence the null, is unchanged.
    """
    xa, ya = _pair(x, y)
    n = xa.size
    tester = SignFlipPairs(np.stack([xa, ya]), n_resamples=n_resamples, seed=seed, exact_max_n=exact_max_n)
    detail = (
        f"paired randomization (sign-flip), exact over 2^{n} sign vectors"
        if tester.exact
        else f"paired randomization (sign-flip), Monte Carlo, {n_resamples} resamples, seed {seed}"
    )
    return PairedResult(
        test="randomization",
        n=n,
        mean_x=float(xa.mean()),
        mean_y=float(ya.mean()),
        diff=float(xa.mean() - ya.mean()),
        p_value=tester.p(0, 1),
        statistic=float((xa - ya).sum()) / n,
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


# ---------------------------------------------------------------------------------------------
# Registries of tests and corrections


class UnknownStatisticError(UnknownNameError, ValueError):
    """An unknown test or correction name (a ValueError too, as before the registries)."""


class _NamedRegistry(Registry[T]):
    """A :class:`Registry` that also iterates over its names in registration order, so it reads
    like the tuple of names it replaces (``name in TESTS``, ``", ".join(CORRECTIONS)``,
    argparse ``choices=``)."""

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def lookup(self, name: str) -> T:
        if name not in self:
            raise UnknownStatisticError(self.kind, name, self.names())
        return self.get(name)


@dataclass(frozen=True)
class StatTest:
    """A registered paired test: ``fn(x, y, n_resamples, seed) -> PairedResult``."""

    name: str
    fn: Callable[[Any, Any, int, int], PairedResult]
    randomised: bool  # whether n_resamples and seed matter

    def __call__(self, x: Any, y: Any, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> PairedResult:
        return self.fn(x, y, n_resamples, seed)


STAT_TESTS: _NamedRegistry[StatTest] = _NamedRegistry("statistical test", base=StatTest)
for _test in (
    StatTest("paired-bootstrap", lambda x, y, b, s: paired_bootstrap(x, y, n_resamples=b, seed=s), True),
    StatTest("randomization", lambda x, y, b, s: paired_randomization(x, y, n_resamples=b, seed=s), True),
    StatTest("t", lambda x, y, b, s: paired_ttest(x, y), False),
    StatTest("wilcoxon", lambda x, y, b, s: wilcoxon_signed_rank(x, y), False),
    StatTest("mcnemar", lambda x, y, b, s: mcnemar(x, y), False),
):
    STAT_TESTS.register(_test.name, _test, origin=__name__)
TESTS = STAT_TESTS  # the old name: iterates over the test names


def run_test(
    test: str,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    return STAT_TESTS.lookup(test)(x, y, n_resamples, seed)


@dataclass(frozen=True)
class Correction:
    """A registered multiple-comparison correction: adjusted p-values in the input order, through
    ``statsmodels.stats.multitest.multipletests(method=statsmodels_method)`` (None: unadjusted)."""

    name: str
    statsmodels_method: str | None
    label: str  # e.g. "Holm-corrected", for table headers

    def __call__(self, p_values: Sequence[float]) -> list[float]:
        if self.statsmodels_method is None or len(p_values) == 0:
            return [float(p) for p in p_values]
        from statsmodels.stats.multitest import multipletests

        with _gc_frozen():
            adjusted = multipletests(np.asarray(p_values, dtype=np.float64), method=self.statsmodels_method)[1]
        return [float(p) for p in adjusted]


@contextlib.contextmanager
def _gc_frozen() -> Iterator[None]:
    """statsmodels' Holm branch runs ``gc.collect()`` on every call: 0.1-0.2 s in a process that
    holds torch, and the leaderboard's ranks call it many times. With the existing objects frozen
    (``gc.freeze``) that collection only scans what was created since, which costs nothing; the
    objects are unfrozen again afterwards (unless someone else had frozen them)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


CORRECTIONS: _NamedRegistry[Correction] = _NamedRegistry("p-value correction", base=Correction)
CORRECTIONS.register("holm", Correction("holm", "holm", "Holm-corrected"), origin=__name__)
CORRECTIONS.register("bonferroni", Correction("bonferroni", "bonferroni", "Bonferroni-corrected"), origin=__name__)
CORRECTIONS.register("none", Correction("none", None, "uncorrected"), origin=__name__)
CORRECTIONS.register("bh", Correction("bh", "fdr_bh", "Benjamini-Hochberg-adjusted"), aliases=("fdr_bh",),
                     origin=__name__)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values: sort ascending, p_(i) * (m - i + 1), running max,
    capped at 1; returned in the input order (statsmodels ``multipletests(method="holm")``)."""
    return CORRECTIONS.get("holm")(p_values)


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """min(1, m * p) for each of the m p-values."""
    return CORRECTIONS.get("bonferroni")(p_values)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) adjusted p-values: sort ascending, p_(i) * m / i, running minimum
    from the largest down, capped at 1; returned in the input order (statsmodels ``fdr_bh``)."""
    return CORRECTIONS.get("bh")(p_values)


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    return CORRECTIONS.lookup(correction)(p_values)


# ---------------------------------------------------------------------------------------------
# All pairs at once (leaderboard ranks)


def pairwise_randomization(
    scores: np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    exact_max_n: int = EXACT_MAX_N,
) -> np.ndarray:
    """Two-sided paired randomisation p-values for every pair of rows of ``scores`` (k systems x
    n items), as a symmetric k x k matrix (diagonal 1): :meth:`SignFlipPairs.matrix`, the same test
    as :func:`paired_randomization` on each pair, all pairs sharing one set of sign vectors."""
    return SignFlipPairs(scores, n_resamples=n_resamples, seed=seed, exact_max_n=exact_max_n).matrix()


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


_Decision = tuple[list[int], list[int], list[float | None], list[float | None]]


def _walk_down(tester: SignFlipPairs, leaders_in: list[int], corr: Callable[[list[float]], list[float]],
               alpha: float) -> _Decision:
    """One pass of the top-down grouping, with p-values corrected as the family of comparisons
    "entry i against ``leaders_in[i]``" (i = 1..k-1): (leaders, ranks, p_raw, p_adj)."""
    k = tester.scores.shape[0]
    raw = [tester.p(i, leaders_in[i]) for i in range(1, k)]
    adj = corr(raw)
    leaders, ranks = [0] * k, [1] * k
    p_raw: list[float | None] = [None] * k
    p_adj: list[float | None] = [None] * k
    current = 0
    for i in range(1, k):
        # Corrected p-value of i against the current leader; if this comparison was not in the
        # family used for the correction, use its raw p inflated as it would be in that family.
        if leaders_in[i] == current:
            pr, pa = raw[i - 1], adj[i - 1]
        else:
            pr = tester.p(i, current)
            pa = corr(raw[: i - 1] + [pr] + raw[i:])[i - 1]
        p_raw[i], p_adj[i] = pr, pa
        if pa < alpha:
            current = i
            leaders[i], ranks[i] = i, i + 1
        else:
            leaders[i], ranks[i] = current, ranks[current]
    return leaders, ranks, p_raw, p_adj


class _Memo:
    """A correction that remembers its answers (the fixpoint asks for the same families again)."""

    def __init__(self, corr: Correction):
        self.corr = corr
        self.seen: dict[tuple[float, ...], list[float]] = {}

    def __call__(self, p_values: list[float]) -> list[float]:
        key = tuple(p_values)
        if key not in self.seen:
            self.seen[key] = self.corr(p_values)
        return self.seen[key]


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
    which leader an entry meets depends on the corrected decisions, a correction whose threshold
    depends on the other p-values (Holm, BH) is applied as a fixpoint: start from "everyone against
    the top entry", recompute the leaders from the corrected p-values, repeat until the set of
    comparisons no longer changes. If it does not settle in ``max_iter`` rounds, Bonferroni (whose
    threshold does not depend on the other p-values) decides instead, and ``converged`` is False.
    """
    scores = np.asarray(scores, dtype=np.float64)
    k = scores.shape[0]
    if k == 0:
        return RankOutcome([], [], [], [], 0, correction, "", True)
    corr = CORRECTIONS.lookup(correction)
    tester = SignFlipPairs(scores, n_resamples=n_resamples, seed=seed)
    leaders_in = [0] * k
    converged = corr.name in ("bonferroni", "none")
    if converged:
        decision = _walk_down(tester, leaders_in, _Memo(corr), alpha)
    else:
        memo = _Memo(corr)
        for _ in range(max_iter):
            decision = _walk_down(tester, leaders_in, memo, alpha)
            compared = [0] + decision[0][:-1]  # entry i met the leader of the group holding i - 1
            if compared == leaders_in:
                converged = True
                break
            leaders_in = compared
        if not converged:
            decision = _walk_down(tester, leaders_in, _Memo(CORRECTIONS.get("bonferroni")), alpha)
    leaders_out, ranks, p_raw, p_adj = decision
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
