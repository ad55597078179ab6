"""Agreement and uncertainty in pure Python: kappa, confusion matrices, t and bootstrap
intervals, paired tests. No numpy at run time; seeded, so every figure is reproducible."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20261204


# -- agreement ------------------------------------------------------------------------------------


def confusion_matrix(first: Sequence[int], second: Sequence[int], labels: Sequence[int]):
    """Counts[i][j]: pairs where `first` said labels[i] and `second` said labels[j]."""
    index = {label: position for position, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for a, b in zip(first, second, strict=True):
        matrix[index[a]][index[b]] += 1
    return matrix


def exact_agreement(first: Sequence[int], second: Sequence[int]) -> float | None:
    if not first:
        return None
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def adjacent_agreement(first: Sequence[int], second: Sequence[int]) -> float | None:
    """Share of pairs at most one point apart."""
    if not first:
        return None
    return sum(abs(a - b) <= 1 for a, b in zip(first, second, strict=True)) / len(first)


def quadratic_weighted_kappa(
    first: Sequence[int], second: Sequence[int], labels: Sequence[int] | None = None
) -> float | None:
    """Cohen's kappa with quadratic weights (as scikit-learn's cohen_kappa_score with
    weights="quadratic"): 1 - sum(w * observed) / sum(w * expected), w = (i - j)^2 / (k - 1)^2.

    None when it is undefined: no pairs, or no disagreement is possible by chance (both
    raters always gave one and the same score).
    """
    if not first:
        return None
    labels = sorted(set(labels or []) | set(first) | set(second))
    size = len(labels)
    if size < 2:
        return None
    observed = confusion_matrix(first, second, labels)
    total = len(first)
    rows = [sum(row) for row in observed]
    columns = [sum(observed[i][j] for i in range(size)) for j in range(size)]
    disagreement = expected = 0.0
    for i in range(size):
        for j in range(size):
            weight = (i - j) ** 2 / (size - 1) ** 2
            disagreement += weight * observed[i][j]
            expected += weight * rows[i] * columns[j] / total
    if expected == 0:
        return None
    return 1 - disagreement / expected


# -- resampling -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def bootstrap_ci(
    items: Sequence,
    statistic: Callable[[list], float | None],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic` over `items` resampled with replacement.

    Resamples where the statistic is undefined are skipped; None if fewer than half are left.
    """
    if len(items) < 2:
        return None
    rng = random.Random(seed)
    values = []
    items = list(items)
    for _ in range(samples):
        value = statistic([items[rng.randrange(len(items))] for _ in items])
        if value is not None:
            values.append(value)
    if len(values) < samples / 2:
        return None
    values.sort()
    tail = (1 - level) / 2
    return percentile(values, tail), percentile(values, 1 - tail)


def kappa_ci(pairs: Sequence[tuple[int, int]], labels: Sequence[int]) -> tuple[float, float] | None:
    """Bootstrap 95% interval of the quadratic-weighted kappa, resampling (judge, human) pairs."""
    return bootstrap_ci(
        pairs,
        lambda sample: quadratic_weighted_kappa(
            [a for a, _ in sample], [b for _, b in sample], labels
        ),
    )


# -- the t distribution ---------------------------------------------------------------------------


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        step = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + step * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + step / c if abs(1 + step / c) > tiny else tiny
        h *= d * c
        step = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + step * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + step / c if abs(1 + step / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(probability: float, df: float) -> float:
    """The inverse of t_cdf, by bisection (monotone, so it cannot miss)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


# -- summaries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanInterval:
    n: int
    mean: float | None
    low: float | None
    high: float | None
    sd: float | None

    def as_dict(self, digits: int = 2) -> dict:
        def rounded(value):
            return None if value is None else round(value, digits)

        return {
            "n": self.n,
            "mean": rounded(self.mean),
            "ci_low": rounded(self.low),
            "ci_high": rounded(self.high),
            "sd": rounded(self.sd),
        }


def mean_interval(values: Sequence[float], level: float = 0.95) -> MeanInterval:
    """Mean with a Student-t interval; one value has a mean and no interval."""
    n = len(values)
    if n == 0:
        return MeanInterval(0, None, None, None, None)
    mean = sum(values) / n
    if n == 1:
        return MeanInterval(1, mean, None, None, None)
    sd = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))
    half = t_quantile(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    return MeanInterval(n, mean, mean - half, mean + half, sd)


# -- paired tests ---------------------------------------------------------------------------------


def sign_test_p(differences: Sequence[float]) -> float | None:
    """Exact two-sided binomial sign test; zero differences are dropped."""
    signs = [d for d in differences if d != 0]
    n = len(signs)
    if n == 0:
        return None
    positive = sum(1 for d in signs if d > 0)
    smaller = min(positive, n - positive)
    tail = sum(math.comb(n, k) for k in range(smaller + 1)) / 2**n
    return min(1.0, 2 * tail)


def _ranks(values: Sequence[float]) -> list[float]:
    """Average ranks (1-based) of `values`, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


EXACT_WILCOXON_MAX_N = 25


def wilcoxon_p(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p (zeros dropped, as scipy's zero_method="wilcox").

    Exact (the distribution of W+ over all sign assignments) up to 25 pairs without tied
    magnitudes; otherwise the normal approximation with the tie correction.
    """
    nonzero = [d for d in differences if d != 0]
    n = len(nonzero)
    if n == 0:
        return None
    magnitudes = [abs(d) for d in nonzero]
    ranks = _ranks(magnitudes)
    w_plus = sum(rank for rank, d in zip(ranks, nonzero, strict=True) if d > 0)
    tied = len(set(magnitudes)) < n
    if n <= EXACT_WILCOXON_MAX_N and not tied:
        # counts[s]: sign assignments whose positive ranks sum to s.
        counts = [1] + [0] * (n * (n + 1) // 2)
        for rank in range(1, n + 1):
            for total in range(len(counts) - 1, rank - 1, -1):
                counts[total] += counts[total - rank]
        w = round(min(w_plus, n * (n + 1) / 2 - w_plus))
        tail = sum(counts[: w + 1]) / 2**n
        return min(1.0, 2 * tail)
    mean = n * (n + 1) / 4
    ties = {}
    for value in magnitudes:
        ties[value] = ties.get(value, 0) + 1
    variance = n * (n + 1) * (2 * n + 1) / 24 - sum(t**3 - t for t in ties.values()) / 48
    if variance <= 0:
        return None
    z = (w_plus - mean) / math.sqrt(variance)
    return min(1.0, 2 * (1 - normal_cdf(abs(z))))


def paired_bootstrap_ci(differences: Sequence[float]) -> tuple[float, float] | None:
    """Bootstrap 95% interval of the mean paired difference (pairs resampled together)."""
    return bootstrap_ci(differences, lambda sample: sum(sample) / len(sample))


def difference_interval(first: Sequence[float], second: Sequence[float], level: float = 0.95):
    """Welch interval of mean(second) - mean(first); None unless both sides have two values."""
    if len(first) < 2 or len(second) < 2:
        return None
    a, b = mean_interval(first), mean_interval(second)
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    difference = b.mean - a.mean
    if va + vb == 0:
        return difference, difference
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t_quantile(1 - (1 - level) / 2, df) * math.sqrt(va + vb)
    return difference - half, difference + half


__all__ = [
    "adjacent_agreement",
    "bootstrap_ci",
    "confusion_matrix",
    "difference_interval",
    "exact_agreement",
    "kappa_ci",
    "mean_interval",
    "paired_bootstrap_ci",
    "quadratic_weighted_kappa",
    "sign_test_p",
    "t_quantile",
    "wilcoxon_p",
]
