"""Calibration of the measurement thresholds on phantom seeds, and their evaluation on other seeds.

Why here and not in a test: a threshold is fitted on CALIBRATION_SEEDS (this module, runnable by a
test that checks the shipped constants are what it gives) and judged on different seeds (the
tests use HELD_OUT_SEED_BASE and up), so no figure is tested on the phantoms it was tuned on.
"""

from __future__ import annotations

import numpy as np

from SjogrenUSLib import echogenicity, glands

from .us_phantom import ACQUISITION_MODES, ECHOGENICITY, GLANDS, GRADING_FILE, draw_acquisition, render_gland, render_mucosa

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


def _fit(sample, feature, positive, seeds, per_seed: int, acquisition: str) -> float:
    """best_threshold of ``feature(px, lab, truth)`` against ``positive(truth)`` over the samples of these seeds."""
    values, truths = [], []
    for seed in seeds:
        for k in range(per_seed):
            px, lab, truth = sample(seed, k, acquisition)
            values.append(feature(px, lab, truth))
            truths.append(positive(truth))
    return best_threshold(values, truths)


def calibrate_echogenicity(seeds=CALIBRATION_SEEDS, per_seed: int = 2, acquisition: str = "varied") -> float:
    """MIN_SCORE_DB: the best cut of contrast_db + spread_db on the truth masks of these seeds."""
    return _fit(mucosa_sample, lambda px, lab, _: sum(echogenicity.features(px, lab)[:2]),
                lambda t: t["echogenicity"] == "heterogeneous_hyperechoic", seeds, per_seed, acquisition)


def inhomogeneity_sample(seed: int, k: int, acquisition: str = "fixed"):
    """A grade-0 gland (no foci) whose parenchyma is normal (k even) or mildly inhomogeneous (k odd)."""
    s = MILD_INHOMOGENEITY if k % 2 else NORMAL_INHOMOGENEITY
    acq = draw_acquisition([seed, k, 1]) if acquisition == "varied" else None
    px, lab, truth = render_gland([seed, k], GLANDS[k % 4], 0, acquisition=acq, inhomogeneity=s)
    return px, lab, truth


def _inhomogeneity_samples(seeds, per_seed: int, acquisitions):
    for acquisition in acquisitions:
        for seed in seeds:
            for k in range(per_seed):
                yield inhomogeneity_sample(seed, k, acquisition)


def calibrate_inhomogeneity(seeds=CALIBRATION_SEEDS, per_seed: int = 2, acquisitions=ACQUISITION_MODES) -> float:
    """The OMERACT 'mild inhomogeneity' cut of glands.inhomogeneity_index on these seeds, at fixed and at
    varied scanner settings together (one cut must hold for both)."""
    values, positive = [], []
    for px, lab, t in _inhomogeneity_samples(seeds, per_seed, acquisitions):
        values.append(glands.inhomogeneity_index(px, lab, t["spacing_mm"]))
        positive.append(t["inhomogeneity"] >= MILD_INHOMOGENEITY)
    return best_threshold(values, positive)


TEXTURE_SCALE_CANDIDATES_MM = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def compare_texture_scales(seeds=CALIBRATION_SEEDS, per_seed: int = 2, acquisitions=ACQUISITION_MODES,
                           candidates=TEXTURE_SCALE_CANDIDATES_MM) -> dict:
    """How well glands.inhomogeneity_index separates normal from mild inhomogeneity on these seeds at each
    candidate TEXTURE_SCALE_MM: accuracy at the best cut and the Fisher ratio of the log index (the shipped
    scale is the candidate with the best accuracy, then the best Fisher ratio)."""
    samples = list(_inhomogeneity_samples(seeds, per_seed, acquisitions))
    positive = np.array([t["inhomogeneity"] >= MILD_INHOMOGENEITY for _, _, t in samples])
    saved, out = glands.TEXTURE_SCALE_MM, {}
    try:
        for scale in candidates:
            glands.TEXTURE_SCALE_MM = scale
            v = np.array([glands.inhomogeneity_index(px, lab, t["spacing_mm"]) for px, lab, t in samples])
            cut = best_threshold(v, positive)
            lv = np.log(np.maximum(v, 1e-3))
            fisher = (lv[positive].mean() - lv[~positive].mean()) ** 2 / (lv[positive].var() + lv[~positive].var())
            out[scale] = {"accuracy": float(np.mean((v >= cut) == positive)), "fisher_log": float(fisher)}
    finally:
        glands.TEXTURE_SCALE_MM = saved
    return out


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

    from SjogrenUSLib.scoring import load_system

    system = load_system(GRADING_FILE)
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


SETTINGS = ("gain_db", "dynamic_range_db", "frequency_factor", "speckle_reduction_px", "spacing_factor")


def _old_grey_level_rule(px, lab) -> bool:
    """The echogenicity rule this module replaced (grey-level thresholds fitted at 45 dB, one gain)."""
    epi, ref = px[lab == 1].astype(float), px[lab == 2].astype(float)
    return np.median(epi) / max(np.median(ref), 1.0) >= 1.2 and np.percentile(epi, 90) - np.percentile(epi, 10) >= 85


def evaluate_acquisition(n_patients: int = 40, seed: int = HELD_OUT_SEED_BASE + 500) -> dict:
    """Figures on held-out phantom patients with varied acquisition, from the true masks (foci merged
    into the parenchyma): echogenicity accuracy (relative measure; the old grey-level rule beside it),
    Salaffi gland-grade weighted kappa against the Salaffi grade of the true foci, OMERACT grades against
    those of the true foci, coverage and inhomogeneity, the inhomogeneity cut's accuracy at fixed and
    varied acquisition, the 0-18 AUROC against the pSS label, and leave-one-setting-out echogenicity
    (calibrate on images whose setting lies in one half of its range, test on the other half, both ways)."""
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    from SjogrenUSLib.patient import analyse_image, patient_row
    from .us_phantom import ACQUISITION_RANGES, SITES, draw_patient
    from SjogrenUSLib.scoring import grade_gland, load_system

    system, omeract = load_system("salaffi_0_4"), load_system("omeract_0_3")
    echo_rows, truth_grades, found_grades, labels, modified = [], [], [], [], []
    omeract_truth, omeract_found = [], []
    for i in range(n_patients):
        label = int(i % 2 == 0)
        patient = draw_patient(np.random.default_rng([seed, i]), label)
        results = {}
        for k, site in enumerate(SITES):
            rng = np.random.default_rng([seed, i, k + 1])
            acq = draw_acquisition([seed, i, k + 1, 1])
            if site == "mucosa":
                px, lab, t = render_mucosa(rng, patient["thickness_mm"], patient["echogenicity"], acquisition=acq)
                f = echogenicity.features(px, lab)
                echo_rows.append({**acq, "score": f[0] + f[1], "hetero": t["echogenicity"] != "homogeneous",
                                  "old": _old_grey_level_rule(px, lab)})
            else:
                px, lab, t = render_gland(rng, site, patient["grades"][k - 1], acquisition=acq)
                true_foci = lab == 4
                lab = np.where(true_foci, 3, lab)
                truth_grades.append(grade_gland_of_truth(t, system))
                coverage = glands.diffuse_coverage(true_foci, glands.parenchyma_region(lab), t["spacing_mm"])
                inhomogeneous = 1.0 if t["inhomogeneity"] >= MILD_INHOMOGENEITY else 0.0
                omeract_truth.append(grade_gland([f["diameter_mm"] for f in t["foci"]], omeract,
                                                 {"diffuse_coverage": coverage, "inhomogeneity": inhomogeneous}))
                omeract_found.append(glands.grade_image(px, lab, t["spacing_mm"], omeract).grade)
            results[site] = analyse_image(site, px, t["spacing_mm"], None, system, labels=lab)
            if site != "mucosa":
                found_grades.append(results[site].gland.grade)
        row = patient_row(f"P{i}", label, results, system)
        labels.append(label)
        modified.append(row["modified_score"])
    hetero = np.array([r["hetero"] for r in echo_rows])
    score = np.array([r["score"] for r in echo_rows])
    out = {
        "patients": n_patients, "seed": seed,
        "echogenicity_accuracy": float(np.mean((score >= echogenicity.MIN_SCORE_DB) == hetero)),
        "echogenicity_accuracy_old_grey_level_rule": float(np.mean(np.array([r["old"] for r in echo_rows]) == hetero)),
        "salaffi_grade_kappa_linear": float(cohen_kappa_score(truth_grades, found_grades, weights="linear")),
        "salaffi_grade_kappa_quadratic": float(cohen_kappa_score(truth_grades, found_grades, weights="quadratic")),
        "salaffi_grade_exact_agreement": float(np.mean(np.array(truth_grades) == np.array(found_grades))),
        "modified_0_18_auroc": float(roc_auc_score(labels, modified)),
        "omeract_grade_kappa_linear": float(cohen_kappa_score(omeract_truth, omeract_found, weights="linear")),
        "omeract_grade_exact_agreement": float(np.mean(np.array(omeract_truth) == np.array(omeract_found))),
        "inhomogeneity_accuracy": {},
        "leave_one_setting_out": {},
    }
    cut = next(c["min"] for r in omeract["rules"] for c in r.get("all", []) if c.get("measure") == "inhomogeneity")
    for mode in ACQUISITION_MODES:
        right = []
        for k in range(24):
            px, lab, t = inhomogeneity_sample(seed + k, k, mode)
            index = glands.inhomogeneity_index(px, lab, t["spacing_mm"])
            right.append((index >= cut) == (t["inhomogeneity"] >= MILD_INHOMOGENEITY))
        out["inhomogeneity_accuracy"][mode] = float(np.mean(right))
    for name in SETTINGS:
        mid = float(np.mean(ACQUISITION_RANGES[name]))
        value = np.array([r[name] for r in echo_rows])
        accuracies = []
        for held in (value < mid, value >= mid):
            if held.all() or not held.any():
                continue
            cut = best_threshold(score[~held], hetero[~held])
            accuracies.append(float(np.mean((score[held] >= cut) == hetero[held])))
        out["leave_one_setting_out"][name] = accuracies
    return out


def grade_gland_of_truth(truth: dict, system: dict) -> int:
    """The grade ``system`` gives a phantom gland's true foci (reader criteria not entered)."""
    from SjogrenUSLib.scoring import grade_gland

    return grade_gland([f["diameter_mm"] for f in truth["foci"]], system)


if __name__ == "__main__":
    import argparse
    import json

    argparse.ArgumentParser(description=__doc__.splitlines()[0] + " Prints them as JSON (minutes).").parse_args()
    print(json.dumps({"echogenicity_MIN_SCORE_DB": calibrate_echogenicity(),
                      "omeract_mild_inhomogeneity": calibrate_inhomogeneity(),
                      "FOCUS_RATIO": calibrate_focus_ratio(),
                      "inhomogeneity_texture_scales": compare_texture_scales(),
                      "held_out_varied": evaluate_acquisition()}, indent=1))
