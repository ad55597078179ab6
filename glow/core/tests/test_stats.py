"""glow.core.stats against values worked out by hand and against scikit-learn (test-only)."""

from __future__ import annotations

import random

import pytest

from glow.core import stats


def test_quadratic_kappa_of_a_hand_worked_example():
    # Matrix (judge rows, human columns) over 0..2: (0,0), (1,2), (2,2). Weighted observed
    # disagreement 0.25; expected 1.25 from the margins [1,1,1] x [1,0,2]: kappa 1 - 0.25/1.25.
    assert stats.quadratic_weighted_kappa([0, 1, 2], [0, 2, 2], labels=[0, 1, 2]) == pytest.approx(
        0.8
    )
    assert stats.confusion_matrix([0, 1, 2], [0, 2, 2], [0, 1, 2]) == [
        [1, 0, 0],
        [0, 0, 1],
        [0, 0, 1],
    ]
    assert stats.exact_agreement([0, 1, 2], [0, 2, 2]) == pytest.approx(2 / 3)
    assert stats.adjacent_agreement([0, 1, 2], [0, 2, 2]) == 1.0


def test_kappa_is_undefined_without_chance_disagreement_and_perfect_when_all_agree():
    assert stats.quadratic_weighted_kappa([2, 2, 2], [2, 2, 2], labels=[0, 1, 2]) is None
    assert stats.quadratic_weighted_kappa([], []) is None
    assert stats.quadratic_weighted_kappa([0, 1, 2, 2], [0, 1, 2, 2]) == 1.0


def test_quadratic_kappa_equals_scikit_learn_on_random_ratings():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        n = rng.randint(2, 60)
        judge = [rng.randint(0, 4) for _ in range(n)]
        human = [min(4, max(0, score + rng.choice([-2, -1, 0, 0, 0, 1]))) for score in judge]
        ours = stats.quadratic_weighted_kappa(judge, human, labels=range(5))
        if ours is None:
            continue
        theirs = metrics.cohen_kappa_score(judge, human, weights="quadratic", labels=range(5))
        assert ours == pytest.approx(theirs, abs=1e-12)
        checked += 1
    assert checked > 250


def test_kappa_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = random.Random(3)
    judge = [rng.randint(0, 3) for _ in range(40)]
    human = [min(3, max(0, score + rng.choice([-1, 0, 0, 1]))) for score in judge]
    pairs = list(zip(judge, human, strict=True))
    kappa = stats.quadratic_weighted_kappa(judge, human, labels=range(4))
    low, high = stats.kappa_ci(pairs, range(4))
    assert low < kappa < high <= 1.0
    assert stats.kappa_ci(pairs, range(4)) == (low, high)


def test_mean_interval_uses_student_t():
    # mean 3, sd sqrt(2.5), se sqrt(0.5), t(0.975, 4) = 2.776445: half-width 1.963243.
    interval = stats.mean_interval([1, 2, 3, 4, 5])
    assert interval.mean == 3
    assert interval.low == pytest.approx(3 - 1.963243, abs=1e-5)
    assert interval.high == pytest.approx(3 + 1.963243, abs=1e-5)
    assert stats.mean_interval([7]).low is None
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706205, abs=1e-5)
    assert stats.t_quantile(0.975, 30) == pytest.approx(2.042272, abs=1e-5)


def test_sign_and_wilcoxon_tests_by_hand():
    # Four of five positive: P(X <= 1 | n=5) = 6/32, two-sided 0.375.
    assert stats.sign_test_p([1, 1, 1, 1, -1]) == pytest.approx(0.375)
    # Ranks 1..5, W- = 5: 10 of the 32 sign assignments have W <= 5, two-sided 0.625.
    assert stats.wilcoxon_p([1, 2, 3, 4, -5]) == pytest.approx(0.625)
    # All ten differences positive: exact p = 2 / 2^10.
    assert stats.wilcoxon_p(list(range(1, 11))) == pytest.approx(2 / 1024)
    assert stats.sign_test_p([0, 0]) is None


def test_paired_tests_match_scipy_where_it_is_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(11)
    for _ in range(100):
        differences = [
            round(rng.uniform(-3, 3), rng.choice([0, 2])) for _ in range(rng.randint(1, 30))
        ]
        nonzero = [d for d in differences if d != 0]
        if not nonzero:
            continue
        exact = len(nonzero) <= 25 and len({abs(d) for d in nonzero}) == len(nonzero)
        theirs = scipy_stats.wilcoxon(
            differences, zero_method="wilcox", method="exact" if exact else "approx"
        ).pvalue
        assert stats.wilcoxon_p(differences) == pytest.approx(theirs, abs=1e-9)
        positives = sum(1 for d in nonzero if d > 0)
        binomial = scipy_stats.binomtest(positives, len(nonzero)).pvalue
        assert stats.sign_test_p(differences) == pytest.approx(binomial, abs=1e-9)


def test_paired_bootstrap_interval_of_a_constant_shift_is_that_shift():
    assert stats.paired_bootstrap_ci([2.0] * 8) == (2.0, 2.0)
    low, high = stats.paired_bootstrap_ci([1.0, 3.0, 2.0, 4.0, 0.0, 2.0])
    assert low < 2.0 < high


def test_welch_difference_interval():
    low, high = stats.difference_interval([1, 2, 3], [11, 12, 13])
    assert low < 10 < high
    assert stats.difference_interval([1], [2, 3]) is None
