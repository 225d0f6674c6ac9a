"""Paired significance tests and corrections on constructed data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats

ALPHA = 0.05


def _scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


@pytest.mark.parametrize("test", ["paired-bootstrap", "randomization", "t", "wilcoxon"])
def test_identical_runs_give_p_one_and_zero_difference(test: str) -> None:
    x = _scores(50)
    r = stats.run_test(test, x, x.copy())
    assert r.diff == 0.0
    assert r.p_value == 1.0


def test_identical_binary_runs_mcnemar() -> None:
    x = (np.arange(40) % 3 == 0).astype(float)
    r = stats.mcnemar(x, x)
    assert r.diff == 0.0 and r.p_value == 1.0


@pytest.mark.parametrize("test", ["paired-bootstrap", "randomization", "t", "wilcoxon"])
def test_better_on_every_item_is_significant(test: str) -> None:
    y = _scores(30, seed=1)
    x = y + 0.5 + 0.1 * np.abs(_scores(30, seed=2))  # better on every single item
    r = stats.run_test(test, x, y)
    assert r.diff > 0.5
    assert r.p_value < ALPHA


def test_mcnemar_better_on_every_discordant_item() -> None:
    y = np.zeros(20)
    x = np.zeros(20)
    x[:10] = 1.0  # 10 discordant items, all in favour of x
    r = stats.mcnemar(x, y)
    # exact two-sided binomial: 2 * 0.5**10
    assert r.p_value == pytest.approx(2 * 0.5**10)
    assert r.p_value < ALPHA
    # with only 5 discordant items the exact test cannot reach 0.05: 2 * 0.5**5 = 0.0625
    x2 = np.zeros(20)
    x2[:5] = 1.0
    assert stats.mcnemar(x2, y).p_value == pytest.approx(0.0625)


def test_mcnemar_counts_only_discordant_pairs() -> None:
    # 30 concordant items (both right) must not change the p-value of 6 vs 2 discordant ones.
    x = np.array([1.0] * 6 + [0.0] * 2)
    y = np.array([0.0] * 6 + [1.0] * 2)
    p_small = stats.mcnemar(x, y).p_value
    p_big = stats.mcnemar(np.concatenate([x, np.ones(30)]), np.concatenate([y, np.ones(30)])).p_value
    # P(X <= 2 | n=8, 1/2) = (1 + 8 + 28) / 256; two-sided doubles it
    assert p_small == pytest.approx(2 * 37 / 256) == p_big
    with pytest.raises(ValueError, match="binary"):
        stats.mcnemar([0.5, 1.0], [0.0, 1.0])


def test_exact_randomization_by_hand() -> None:
    # d = (1, 1, 1): of the 8 sign vectors only +++ and --- reach |sum| >= 3 -> p = 2/8.
    r = stats.paired_randomization([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert r.p_value == pytest.approx(0.25)
    # d = (3, -1): sums over signs: 2, 4, -4, -2 -> |s| >= 2 in all 4 -> p = 1.
    assert stats.paired_randomization([3.0, 0.0], [0.0, 1.0]).p_value == pytest.approx(1.0)
    # d = (1,)*10: only the two constant sign vectors reach |sum| = 10 -> p = 2 / 1024.
    assert stats.paired_randomization(np.ones(10), np.zeros(10)).p_value == pytest.approx(2 / 1024)


def test_monte_carlo_randomization_floor_and_determinism() -> None:
    y = _scores(40, seed=3)
    x = y + 1.0
    r1 = stats.paired_randomization(x, y)
    r2 = stats.paired_randomization(x, y)
    assert r1 == r2  # seeded
    # no random sign vector reaches the all-positive sum except (rarely) the identity: p = 1/(B+1)
    assert r1.p_value == pytest.approx(1 / (stats.DEFAULT_RESAMPLES + 1))
    assert "Monte Carlo" in r1.detail


def test_bootstrap_ci_brackets_the_difference_and_is_seeded() -> None:
    y = _scores(200, seed=4)
    x = y + 0.3 + 0.5 * _scores(200, seed=5)
    r = stats.paired_bootstrap(x, y)
    assert r.ci_low < r.diff < r.ci_high
    assert r.diff == pytest.approx(float(np.mean(x - y)))
    # the percentile interval of a mean is close to mean +- 1.96 * sd / sqrt(n)
    se = float(np.std(x - y, ddof=1)) / math.sqrt(200)
    assert r.ci_low == pytest.approx(r.diff - 1.96 * se, abs=0.3 * se)
    assert r.ci_high == pytest.approx(r.diff + 1.96 * se, abs=0.3 * se)
    assert stats.paired_bootstrap(x, y) == r
    assert stats.paired_bootstrap(x, y, seed=1) != r


def test_bootstrap_with_transform_reports_transformed_difference() -> None:
    nll_y = np.full(20, 2.0) + 0.01 * _scores(20)
    nll_x = nll_y + 0.5
    r = stats.paired_bootstrap(nll_x, nll_y, transform=np.exp)
    assert r.diff == pytest.approx(math.exp(nll_x.mean()) - math.exp(nll_y.mean()))
    assert r.ci_low <= r.diff <= r.ci_high


def test_ttest_matches_scipy_and_handles_degenerate_cases() -> None:
    from scipy import stats as sps

    x, y = _scores(25, 6), _scores(25, 7)
    assert stats.paired_ttest(x, y).p_value == pytest.approx(float(sps.ttest_rel(x, y).pvalue))
    yi = np.arange(25.0)
    assert stats.paired_ttest(yi + 1.0, yi).p_value == 0.0  # constant non-zero difference


def test_wilcoxon_uses_documented_zero_method() -> None:
    from scipy import stats as sps

    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    y = np.array([1.0, 1.5, 2.0, 2.5, 6.0, 5.0, 4.0, 3.0])
    expected = sps.wilcoxon(x, y, zero_method="pratt").pvalue
    assert stats.WILCOXON_ZERO_METHOD == "pratt"
    assert stats.wilcoxon_signed_rank(x, y).p_value == pytest.approx(float(expected))


def test_holm_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert stats.adjust(p, "none") == p
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1 (2 * 0.5, max with 0.9)
    with pytest.raises(ValueError):
        stats.adjust(p, "fdr")


def test_pairwise_matrix_equals_single_tests() -> None:
    rng = np.random.default_rng(8)
    small = rng.normal(size=(4, 12))  # exact regime: identical to the single-pair test
    pm = stats.pairwise_randomization(small)
    for i in range(4):
        for j in range(i + 1, 4):
            assert pm[i, j] == pytest.approx(stats.paired_randomization(small[i], small[j]).p_value)
    sp = stats.SignFlipPairs(small)
    assert sp.p(2, 1) == pytest.approx(pm[1, 2])


def test_ranks_with_ties() -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=200)
    a = base + 1.0 + 0.05 * rng.normal(size=200)
    a_twin = a + 0.01 * rng.normal(size=200)  # indistinguishable from a
    b = base + 0.05 * rng.normal(size=200)  # far below
    c = base - 1.0 + 0.05 * rng.normal(size=200)
    scores = np.stack([a, a_twin, b, c])
    order = np.argsort(-scores.mean(axis=1), kind="stable")
    out = stats.ranks_with_ties(scores[order])
    assert out.ranks == [1, 1, 3, 4]
    assert out.comparisons == 3 and out.correction == "holm" and out.converged
    # identical entries all share rank 1
    same = stats.ranks_with_ties(np.stack([base, base, base]))
    assert same.ranks == [1, 1, 1]
    assert same.p_adj[1:] == [1.0, 1.0]


# --------------------------------------------------------------------------------------------
# The library-backed pieces and the one sign-flip engine, each against a hand-computed case


def test_exact_sign_flip_on_three_items_by_enumeration() -> None:
    import itertools

    x, y = np.array([3.0, 1.0, 0.5]), np.array([1.0, 2.0, 0.0])
    d = x - y  # (2, -1, 0.5): observed sum 1.5
    sums = [sum(s * di for s, di in zip(signs, d)) for signs in itertools.product((1, -1), repeat=3)]
    # +++ 1.5, ++- 0.5, +-+ 3.5, +-- 2.5, -++ -2.5, -+- -3.5, --+ -0.5, --- -1.5: 6 of 8 have |s| >= 1.5
    assert sum(abs(s) >= 1.5 - 1e-12 for s in sums) == 6
    r = stats.paired_randomization(x, y)
    assert r.p_value == 6 / 8
    assert "exact over 2^3" in r.detail
    assert stats.SignFlipPairs(np.stack([x, y])).p(0, 1) == 6 / 8
    assert np.array_equal(stats.all_sign_vectors(3), np.array(list(itertools.product((1.0, -1.0), repeat=3))))


def test_monte_carlo_sign_flips_do_not_depend_on_the_block_size(monkeypatch) -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=60), rng.normal(size=60)
    one_block = stats.paired_randomization(x, y, n_resamples=2000).p_value
    monkeypatch.setattr(stats, "_chunks", lambda total, n, budget=0: [(s, min(total, s + 300)) for s in range(0, total, 300)])
    assert stats.paired_randomization(x, y, n_resamples=2000).p_value == one_block
    # and it is the documented estimator on 2000 sign vectors drawn from default_rng(0)
    signs = np.random.default_rng(0).choice(np.array([1.0, -1.0]), size=(2000, 60))
    count = int(np.count_nonzero(np.abs(signs @ (x - y)) >= abs((x - y).sum()) - 1e-9))
    assert one_block == (count + 1) / 2001


def test_bootstrap_is_the_documented_percentile_bootstrap() -> None:
    # a reference paired bootstrap written out: same seed, same resamples, same p-value definition
    rng = np.random.default_rng(12)
    y = rng.normal(size=30)
    x = y + 0.2 + 0.3 * rng.normal(size=30)
    r = stats.paired_bootstrap(x, y, n_resamples=999, seed=3)
    idx = np.random.default_rng(3).integers(0, 30, size=(999, 30))
    diffs = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    d = float(x.mean() - y.mean())
    assert r.diff == d
    assert r.p_value == (int(np.count_nonzero(np.abs(diffs - d) >= abs(d) - 1e-9 * (abs(d) + np.abs(diffs).max()))) + 1) / 1000
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert r.ci_low == pytest.approx(lo, abs=1e-12) and r.ci_high == pytest.approx(hi, abs=1e-12)
    assert r.ci_low < d < r.ci_high
    one = stats.paired_bootstrap([2.0], [1.0], n_resamples=99)  # one item resamples to itself
    assert (one.ci_low, one.ci_high, one.p_value) == (1.0, 1.0, 1 / 100)


def test_holm_bonferroni_and_bh_against_the_formulas() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    holm_ref, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):  # step-down: (m - rank) * p, running max
        running = max(running, min(1.0, (m - rank) * p[i]))
        holm_ref[i] = running
    bh_ref, running = [0.0] * m, 1.0
    for rank in range(m - 1, -1, -1):  # step-up: p * m / (rank + 1), running min from the top
        i = order[rank]
        running = min(running, p[i] * m / (rank + 1))
        bh_ref[i] = running
    assert stats.holm(p) == holm_ref  # bit-identical to the hand-written step-down
    assert stats.adjust(p, "bh") == pytest.approx(bh_ref)
    assert bh_ref == pytest.approx([0.02, 0.04, 0.04, 0.02])  # 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4
    assert stats.adjust(p, "fdr_bh") == stats.benjamini_hochberg(p)
    assert stats.bonferroni(p) == [min(1.0, m * q) for q in p]
    assert stats.adjust([], "holm") == []
    import gc

    assert gc.get_freeze_count() == 0  # statsmodels' gc.collect() ran with objects frozen, then unfrozen


def test_tests_and_corrections_are_registries() -> None:
    from harness.errors import HarnessError

    assert list(stats.TESTS) == ["paired-bootstrap", "randomization", "t", "wilcoxon", "mcnemar"]
    assert list(stats.CORRECTIONS) == ["holm", "bonferroni", "none", "bh"]
    assert "randomization" in stats.STAT_TESTS and "fdr_bh" in stats.CORRECTIONS and "fdr" not in stats.CORRECTIONS
    assert stats.STAT_TESTS.get("t").randomised is False
    with pytest.raises(ValueError, match="unknown p-value correction 'holmm'.*Did you mean 'holm'"):
        stats.adjust([0.1], "holmm")
    with pytest.raises(HarnessError, match="Known statistical tests: mcnemar, paired-bootstrap"):
        stats.run_test("sign", [1.0, 2.0], [0.0, 1.0])


def test_ranks_with_bh_and_bonferroni() -> None:
    rng = np.random.default_rng(13)
    base = rng.normal(size=100)
    scores = np.stack([base + 2.0, base + 2.0 + 0.01 * rng.normal(size=100), base])
    for corr in ("bh", "bonferroni", "none"):
        out = stats.ranks_with_ties(scores, correction=corr)
        assert out.ranks == [1, 1, 3] and out.converged and out.correction == corr
