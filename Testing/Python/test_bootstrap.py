"""Seeded bootstrap: reproducible, intervals that cover known truths, optimism that shrinks chance findings.

The simulations draw binormal data whose true values are known in closed form; the seeds here are used
for nothing else. Coverage bounds come from the binomial: at the nominal 95%, 24 or more of 30 intervals
cover the truth with probability 0.997, so a test fails only if the intervals are really too narrow/biased.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from RheumImagingLib.stats import bootstrap
from RheumImagingLib.stats.cutoffs import youden_at_least

REPS = 30
MIN_COVERING = 24


def _binormal(seed, n, shift):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n), np.zeros(n)].astype(int)
    return y, rng.normal(size=2 * n) + shift * y, rng


def test_same_seed_same_result_other_seed_other_replicates():
    y, x, _ = _binormal(5, 20, 1.0)
    a = bootstrap.youden(y, x, n_resamples=200, seed=1)
    assert a == bootstrap.youden(y, x, n_resamples=200, seed=1)
    b = bootstrap.youden(y, x, n_resamples=200, seed=2)
    assert a["sensitivity_ci95"] != b["sensitivity_ci95"] or a["specificity_ci95"] != b["specificity_ci95"]
    assert a["cutoff"] == b["cutoff"] == youden_at_least(y, x)["cutoff"]  # the cut-off is the data's, not the seed's
    assert a["n_resamples"] == 200 and a["seed"] == 1


def test_youden_sensitivity_specificity_ci_cover_the_true_optimum():
    # cases N(2, 1), controls N(0, 1): Youden's optimum is at 1, where sensitivity = specificity = Phi(1)
    truth = norm.cdf(1)
    covered = np.zeros(2, int)
    for seed in range(7100, 7100 + REPS):
        y, x, _ = _binormal(seed, 60, 2.0)
        r = bootstrap.youden(y, x, n_resamples=300, seed=seed)
        covered += [r["sensitivity_ci95"][0] <= truth <= r["sensitivity_ci95"][1],
                    r["specificity_ci95"][0] <= truth <= r["specificity_ci95"][1]]
    assert (covered >= MIN_COVERING).all(), covered


def test_auc_difference_ci_covers_the_true_difference():
    # two correlated unit-variance scores shifted by 1.5 and 0.7 in cases: AUCs Phi(1.5/sqrt2) and Phi(0.7/sqrt2)
    truth = norm.cdf(1.5 / np.sqrt(2)) - norm.cdf(0.7 / np.sqrt(2))
    covered = 0
    for seed in range(7200, 7200 + REPS):
        y, shared, rng = _binormal(seed, 50, 0.0)
        a = 0.6 * shared + 0.8 * rng.normal(size=y.size) + 1.5 * y
        b = 0.6 * shared + 0.8 * rng.normal(size=y.size) + 0.7 * y
        r = bootstrap.auc_difference(y, a, b, n_resamples=300, seed=seed)
        covered += r["ci95"][0] <= truth <= r["ci95"][1]
    assert covered >= MIN_COVERING


def test_optimism_correction_pulls_a_chance_cutoff_towards_zero():
    # scores unrelated to the label: the true J of any cut-off is 0, yet the apparent (best) J is positive
    apparent, corrected = [], []
    for seed in range(7300, 7312):
        rng = np.random.default_rng(seed)
        y, x = np.r_[np.ones(30), np.zeros(30)].astype(int), rng.normal(size=60)
        r = bootstrap.youden(y, x, n_resamples=300, seed=seed)
        apparent.append(youden_at_least(y, x)["youden_j"])
        corrected.append(r["optimism_corrected"]["youden_j"])
        assert r["optimism"]["youden_j"] > 0
    assert abs(np.mean(corrected)) < np.mean(apparent) / 2
