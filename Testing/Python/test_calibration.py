"""Calibration intercept/slope/Brier on simulated data whose calibration is known (seeds used only here)."""

from __future__ import annotations

import numpy as np
import pytest

from RheumImagingLib.stats.calibration import calibration, grouped


def _risks(seed, n=800):
    rng = np.random.default_rng(seed)
    lp = rng.normal(0, 1.5, n)
    return rng, lp, 1 / (1 + np.exp(-lp))


def _inside(ci, value):
    return ci[0] <= value <= ci[1]


@pytest.mark.parametrize("seed", [8101, 8102])
def test_perfectly_calibrated_scores_give_intercept_0_and_slope_1(seed):
    rng, _, p = _risks(seed)
    c = calibration(rng.random(p.size) < p, p)
    assert _inside(c["intercept"]["ci95"], 0.0) and _inside(c["slope"]["ci95"], 1.0)
    assert c["slope"]["ci95"][1] - c["slope"]["ci95"][0] < 0.5


def test_known_miscalibration_is_found():
    rng, lp, p = _risks(8103)
    # true risk expit(lp + 1): every prediction too low by 1 on the logit scale -> intercept 1, slope 1
    shifted = calibration(rng.random(p.size) < 1 / (1 + np.exp(-(lp + 1))), p)
    assert _inside(shifted["intercept"]["ci95"], 1.0) and not _inside(shifted["intercept"]["ci95"], 0.0)
    # true risk expit(lp / 2): predictions too extreme -> slope 0.5 (and intercept 0: lp is symmetric about 0)
    extreme = calibration(rng.random(p.size) < 1 / (1 + np.exp(-lp / 2)), p)
    assert _inside(extreme["slope"]["ci95"], 0.5) and not _inside(extreme["slope"]["ci95"], 1.0)
    assert _inside(extreme["intercept"]["ci95"], 0.0)


def test_brier_by_hand_and_separation_reported():
    # (0.2-0)^2 + (0.6-1)^2 + (0.9-1)^2 + (0.5-0)^2 = 0.04 + 0.16 + 0.01 + 0.25 = 0.46; / 4 = 0.115
    c = calibration([0, 1, 1, 0], [0.2, 0.6, 0.9, 0.5])
    assert c["brier"] == pytest.approx(0.115)
    assert c["slope"] is None and "separation" in c["unavailable"]
    assert "not probabilities" in calibration([0, 1], [0.2, 1.7])["unavailable"]


def test_grouped_observed_proportions():
    g = grouped([0, 0, 0, 1, 0, 1, 0, 1, 1, 1], [0.1] * 5 + [0.9] * 5, groups=2)
    assert [r["n"] for r in g] == [5, 5] and [r["observed"] for r in g] == [0.2, 0.8]
    assert g[0]["mean_predicted"] == pytest.approx(0.1) and g[0]["observed_ci95"][0] < 0.2 < g[0]["observed_ci95"][1]
