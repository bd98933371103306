"""The few statistics the study analysis needs, each small enough to check by hand.

- Wilson score interval for a proportion (pooled accuracy of a condition, a learning-curve block).
- t interval for a mean (mean of participant accuracies).
- Permutation test between conditions on participant accuracies: the participant is the unit
  (trials of one person are not independent), so labels are shuffled across participants.
  Two conditions: |difference of means|; more: the one-way ANOVA F statistic. p = (1 + #{permuted
  statistic >= observed}) / (1 + permutations), which is never 0.
- Holm's step-down adjustment for the pairwise tests.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high); the interval is nan with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if len(values) < 2:
        return (mean, math.nan, math.nan)
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return (mean, mean - half, mean + half)


def _statistic(values: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """values (n,), groups (m, n) of group indices -> statistic per row of `groups` (m,)."""
    counts = np.stack([(groups == g).sum(axis=1) for g in range(k)], axis=1)  # (m, k)
    sums = np.stack([np.where(groups == g, values, 0.0).sum(axis=1) for g in range(k)], axis=1)
    means = sums / counts
    if k == 2:
        return np.abs(means[:, 0] - means[:, 1])
    grand = values.mean()
    between = (counts * (means - grand) ** 2).sum(axis=1) / (k - 1)
    squares = np.stack([np.where(groups == g, (values - means[:, [g]]) ** 2, 0.0).sum(axis=1) for g in range(k)], axis=1)
    within = squares.sum(axis=1) / (len(values) - k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(within > 0, between / within, np.where(between > 0, np.inf, 0.0))


def permutation_test(samples: list, permutations: int, seed: int) -> dict:
    """Do the groups' means differ? samples: one array of participant accuracies per group."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    k = len(samples)
    if k < 2 or any(len(s) == 0 for s in samples):
        return {"statistic": math.nan, "p_value": math.nan, "test": "not run: needs two groups with participants"}
    values = np.concatenate(samples)
    labels = np.concatenate([np.full(len(s), g) for g, s in enumerate(samples)])
    observed = float(_statistic(values, labels[None], k)[0])
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 2000):
        m = min(2000, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(labels, (m, len(labels))), axis=1)
        hits += int((_statistic(values, shuffled, k) >= observed - 1e-12).sum())
    name = "|difference of mean participant accuracy|" if k == 2 else "one-way ANOVA F of participant accuracy"
    return {"statistic": observed, "p_value": (1 + hits) / (1 + permutations),
            "test": f"permutation test ({permutations} permutations) of {name}"}


def holm(p_values: list[float]) -> list[float]:
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
