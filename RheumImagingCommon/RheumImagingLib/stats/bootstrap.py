"""Seeded stratified bootstrap: percentile CIs for the Youden cut-off's sensitivity and specificity and for an
AUROC difference, and Harrell's optimism correction of the Youden cut-off's performance.

Resampling is stratified (cases and controls resampled separately, each to its own size), as pROC's default
``boot.stratified = TRUE``; intervals are the 2.5th and 97.5th percentiles of the replicates (NumPy's linear
quantiles, R's type 7, as pROC's ``quantile`` calls). ``N_RESAMPLES`` (2000, pROC's ``boot.n`` default) and
``SEED`` make every report reproducible; the numbers used are written into the result.

Optimism (Harrell, Lee & Mark 1996; Steyerberg, Clinical Prediction Models, 2nd ed., 5.3.4), per replicate b:
choose the Youden cut-off c_b on the replicate, take its apparent sensitivity, specificity and J on the
replicate, and the same cut-off's values on the original data; optimism is the mean over replicates of
apparent minus original. The optimism-corrected figures are the original apparent ones minus the optimism;
the cut-off itself stays the one chosen on all patients (a cut-off has no optimism of its own), and the
spread of the c_b (median and 95% percentile interval) shows how stable that choice is.
"""

from __future__ import annotations

import numpy as np

from .cutoffs import best_index, youden_table

N_RESAMPLES = 2000
SEED = 20240613


def _stratified(rng, n: int, size: int):
    return rng.integers(0, size, size=(n, size))


def _percentile_ci(x) -> list[float]:
    return [float(v) for v in np.percentile(x, [2.5, 97.5])]


def _at(cases, controls, c, positive_if: str):
    if positive_if == ">=":
        return float(np.mean(cases >= c)), float(np.mean(controls < c))
    return float(np.mean(cases <= c)), float(np.mean(controls > c))


def youden(labels, values, positive_if: str = ">=", n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Bootstrap of the Youden cut-off ("positive if value >= c" or "<= c"; ties broken as ``cutoffs``)."""
    labels, values = np.asarray(labels, int), np.asarray(values, float)
    cases, controls = values[labels == 1], values[labels == 0]
    cuts, tp, tn, j = youden_table(cases, controls, positive_if)
    k = best_index(j, positive_if)
    apparent = np.array([tp[k] / cases.size, tn[k] / controls.size, j[k]])
    rng = np.random.default_rng(seed)
    case_idx, control_idx = _stratified(rng, n_resamples, cases.size), _stratified(rng, n_resamples, controls.size)
    boot = np.empty((n_resamples, 3))
    tested = np.empty((n_resamples, 3))
    chosen = np.empty(n_resamples)
    for b in range(n_resamples):
        bc, bk = cases[case_idx[b]], controls[control_idx[b]]
        cuts_b, tp_b, tn_b, j_b = youden_table(bc, bk, positive_if)
        i = best_index(j_b, positive_if)
        chosen[b] = cuts_b[i]
        boot[b] = tp_b[i] / bc.size, tn_b[i] / bk.size, j_b[i]
        se, sp = _at(cases, controls, cuts_b[i], positive_if)
        tested[b] = se, sp, se + sp - 1
    optimism = (boot - tested).mean(axis=0)
    corrected = apparent - optimism
    return {"method": f"stratified bootstrap, {n_resamples} resamples, seed {seed}; percentile 95% CIs; "
                      "optimism after Harrell (apparent on the resample minus the resample's cut-off on all patients)",
            "n_resamples": n_resamples, "seed": seed, "cutoff": float(cuts[k]),
            "sensitivity_ci95": _percentile_ci(boot[:, 0]), "specificity_ci95": _percentile_ci(boot[:, 1]),
            "resampled_cutoffs": {"median": float(np.median(chosen)), "ci95": _percentile_ci(chosen)},
            "optimism": {"sensitivity": float(optimism[0]), "specificity": float(optimism[1]), "youden_j": float(optimism[2])},
            "optimism_corrected": {"sensitivity": float(corrected[0]), "specificity": float(corrected[1]),
                                   "youden_j": float(corrected[2])}}


def _auc(cases, controls):
    """Mann-Whitney AUROC per row of ``cases`` (B x m) and ``controls`` (B x n), ties counting one half."""
    from scipy.stats import rankdata

    m, n = cases.shape[1], controls.shape[1]
    ranks = rankdata(np.concatenate([cases, controls], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def auc_difference(labels, scores1, scores2, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Percentile 95% CI of AUROC(scores1) - AUROC(scores2) on the same resampled patients (paired)."""
    labels = np.asarray(labels, int)
    s1, s2 = np.asarray(scores1, float), np.asarray(scores2, float)
    rng = np.random.default_rng(seed)
    ci, ki = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    case_idx = ci[_stratified(rng, n_resamples, ci.size)]
    control_idx = ki[_stratified(rng, n_resamples, ki.size)]
    diff = _auc(s1[case_idx], s1[control_idx]) - _auc(s2[case_idx], s2[control_idx])
    estimate = float(_auc(s1[ci][None], s1[ki][None])[0] - _auc(s2[ci][None], s2[ki][None])[0])
    return {"estimate": estimate, "ci95": _percentile_ci(diff), "n_resamples": n_resamples, "seed": seed,
            "method": f"paired stratified bootstrap, {n_resamples} resamples, seed {seed}; percentile 95% CI"}
