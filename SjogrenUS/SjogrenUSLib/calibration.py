"""Calibration of the measurement thresholds on phantom seeds, and their evaluation on other seeds.

Why here and not in a test: a threshold is fitted on CALIBRATION_SEEDS (this module, runnable by a
test that checks the shipped constants are what it gives) and judged on different seeds (the
tests use HELD_OUT_SEED_BASE and up), so no figure is tested on the phantoms it was tuned on.
"""

from __future__ import annotations

import numpy as np

from . import echogenicity, glands
from .phantom import ECHOGENICITY, GLANDS, draw_acquisition, render_gland, render_mucosa

CALIBRATION_SEEDS = range(1000, 1024)
HELD_OUT_SEED_BASE = 5000
NORMAL_INHOMOGENEITY = 0.10  # the phantom's grade-0 parenchyma
MILD_INHOMOGENEITY = 0.45  # a parenchyma the phantom calls mildly inhomogeneous (truth for OMERACT grade 1)


def best_threshold(values, positive) -> float:
    """The cut (midpoint between adjacent sorted values) that classifies ``value >= cut`` as positive
    most accurately; ties go to the middle one."""
    v, y = np.asarray(values, float), np.asarray(positive, bool)
    order = np.sort(np.unique(v))
    cuts = np.concatenate([[order[0] - 1.0], (order[1:] + order[:-1]) / 2.0, [order[-1] + 1.0]])
    acc = np.array([np.mean((v >= c) == y) for c in cuts])
    best = np.flatnonzero(acc == acc.max())
    return float(cuts[best[len(best) // 2]])


def mucosa_sample(seed: int, k: int, acquisition: str = "varied"):
    """Phantom mucosa image ``k`` of ``seed``: echogenicity alternates, thickness 0.2-0.5 mm; settings
    drawn from their own stream when ``acquisition`` is "varied"."""
    rng = np.random.default_rng([seed, k])
    acq = draw_acquisition([seed, k, 1]) if acquisition == "varied" else None
    cls = ECHOGENICITY[k % 2]
    px, lab, truth = render_mucosa(rng, float(rng.uniform(0.2, 0.5)), cls, acquisition=acq)
    return px, lab, truth


def calibrate_echogenicity(seeds=CALIBRATION_SEEDS, per_seed: int = 2, acquisition: str = "varied") -> float:
    """MIN_SCORE_DB: the best cut of contrast_db + spread_db on the truth masks of these seeds."""
    scores, hetero = [], []
    for seed in seeds:
        for k in range(per_seed):
            px, lab, truth = mucosa_sample(seed, k, acquisition)
            contrast, spread, _, _ = echogenicity.features(px, lab)
            scores.append(contrast + spread)
            hetero.append(truth["echogenicity"] == "heterogeneous_hyperechoic")
    return best_threshold(scores, hetero)


def inhomogeneity_sample(seed: int, k: int, acquisition: str = "fixed"):
    """A grade-0 gland (no foci) whose parenchyma is normal (k even) or mildly inhomogeneous (k odd)."""
    s = MILD_INHOMOGENEITY if k % 2 else NORMAL_INHOMOGENEITY
    acq = draw_acquisition([seed, k, 1]) if acquisition == "varied" else None
    px, lab, truth = render_gland([seed, k], GLANDS[k % 4], 0, acquisition=acq, inhomogeneity=s)
    return px, lab, truth


def calibrate_inhomogeneity(seeds=CALIBRATION_SEEDS, per_seed: int = 2, acquisition: str = "fixed") -> float:
    """The OMERACT 'mild inhomogeneity' cut of glands.inhomogeneity_index on these seeds."""
    values, inhomogeneous = [], []
    for seed in seeds:
        for k in range(per_seed):
            px, lab, truth = inhomogeneity_sample(seed, k, acquisition)
            values.append(glands.inhomogeneity_index(px, lab, truth["spacing_mm"]))
            inhomogeneous.append(truth["inhomogeneity"] >= MILD_INHOMOGENEITY)
    return best_threshold(values, inhomogeneous)


FOCUS_RATIO_CANDIDATES = (0.65, 0.7, 0.75, 0.8, 0.85)


def gland_sample(seed: int, k: int, acquisition: str = "fixed"):
    """Phantom gland ``k`` of ``seed`` with grade k % 5; label 4 merged into the parenchyma, as a
    segmenter gives it (only the pixels reveal the foci)."""
    acq = draw_acquisition([seed, k, 1]) if acquisition == "varied" else None
    px, lab, truth = render_gland([seed, k], GLANDS[k % 4], k % 5, acquisition=acq)
    return px, np.where(lab == 4, 3, lab), truth


def calibrate_focus_ratio(seeds=CALIBRATION_SEEDS[:4], per_seed: int = 5, candidates=FOCUS_RATIO_CANDIDATES) -> float:
    """glands.FOCUS_RATIO: the candidate whose phantom-grading grades agree best (linear weighted kappa)
    with the truth on these seeds; of tied candidates the middle one (farthest from both failure sides)."""
    from sklearn.metrics import cohen_kappa_score

    from .scoring import load_system

    system = load_system("phantom_grading")
    samples = [gland_sample(seed, k) for seed in seeds for k in range(per_seed)]
    truth = [t["grade"] for _, _, t in samples]
    kappas = []
    saved = glands.FOCUS_RATIO
    try:
        for ratio in candidates:
            glands.FOCUS_RATIO = ratio
            found = [glands.grade_image(px, lab, t["spacing_mm"], system).grade for px, lab, t in samples]
            kappas.append(cohen_kappa_score(truth, found, weights="linear"))
    finally:
        glands.FOCUS_RATIO = saved
    best = np.flatnonzero(np.isclose(kappas, max(kappas)))
    return float(candidates[best[len(best) // 2]])
