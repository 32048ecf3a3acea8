"""AUROC with DeLong variance and the paired DeLong test, computed as pROC does (see package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

Z975 = float(stats.norm.ppf(0.975))


def _split(labels, scores, direction: str):
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', not {direction!r}")
    if direction == "lower":
        scores = -scores
    cases, controls = scores[labels == 1], scores[labels == 0]
    if cases.size == 0 or controls.size == 0:
        raise ValueError("AUROC needs at least one case and one control")
    return cases, controls


def _placements(cases, controls):
    """DeLong's structural components: V10 per case and V01 per control (ties count one half)."""
    psi = (cases[:, None] > controls[None, :]).astype(float) + 0.5 * (cases[:, None] == controls[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


@dataclass(frozen=True)
class Auroc:
    """``variance``/``ci95`` are None with ``undefined`` saying why when a class has a single member."""

    estimate: float
    variance: float | None
    ci95: tuple[float, float] | None
    n_cases: int
    n_controls: int
    direction: str
    undefined: str | None = None

    def as_dict(self) -> dict:
        out = {"estimate": self.estimate, "ci95": None if self.ci95 is None else list(self.ci95),
               "variance": self.variance,
               "method": "DeLong variance, normal-approximation 95% CI clipped to [0, 1] (as pROC ci.auc)",
               "direction": f"cases score {self.direction}"}
        if self.undefined:
            out["undefined"] = self.undefined
        return out


def _single_member(n_cases: int, n_controls: int) -> str | None:
    """pROC ``ci_auc_delong`` returns NA when ``m <= 1 || n <= 1`` (DeLong's variance divides by m - 1, n - 1)."""
    if n_cases > 1 and n_controls > 1:
        return None
    which = "case" if n_cases <= 1 else "control"
    return f"DeLong variance undefined: a single {which} (pROC returns NA)"


def _var(v10, v01):
    return float(np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size)


def auroc(labels, scores, direction: str = "higher") -> Auroc:
    """AUROC (Mann-Whitney form) with DeLong variance and clipped normal 95% CI."""
    cases, controls = _split(labels, scores, direction)
    v10, v01 = _placements(cases, controls)
    auc = float(v10.mean())
    undefined = _single_member(cases.size, controls.size)
    if undefined:
        return Auroc(auc, None, None, int(cases.size), int(controls.size), direction, undefined)
    var = _var(v10, v01)
    half = Z975 * np.sqrt(var)
    return Auroc(auc, var, (float(max(0.0, auc - half)), float(min(1.0, auc + half))), int(cases.size), int(controls.size),
                 direction)


@dataclass(frozen=True)
class DelongTest:
    """``z``/``p`` are None with ``undefined`` saying why when a class has a single member."""

    z: float | None
    p: float | None
    auc1: float
    auc2: float
    undefined: str | None = None

    def as_dict(self) -> dict:
        out = {"method": "DeLong's test for two correlated ROC curves (paired, two-sided; as pROC roc.test)",
               "z": self.z, "p": self.p, "auc1": self.auc1, "auc2": self.auc2}
        if self.undefined:
            out["undefined"] = self.undefined
        return out


def delong_test(labels, scores1, scores2, direction1: str = "higher", direction2: str = "higher") -> DelongTest:
    """Paired DeLong test of AUC(scores1) - AUC(scores2) on the same subjects.

    Edge cases as pROC (R/delong.R, ``delong.paired.test``: ``zscore <- d / sig``, set to 0 only when
    ``d == 0 && sig == 0``; roc.test: ``p <- 2 * pnorm(-abs(z))``): zero variance with equal AUCs gives
    z = 0, p = 1; zero variance with different AUCs gives z = +-inf, p = 0. A single case or control makes
    the variance undefined (pROC: NaN); here z and p are None and ``undefined`` gives the reason.
    """
    c1, k1 = _split(labels, scores1, direction1)
    c2, k2 = _split(labels, scores2, direction2)
    a10, a01 = _placements(c1, k1)
    b10, b01 = _placements(c2, k2)
    auc1, auc2 = float(a10.mean()), float(b10.mean())
    undefined = _single_member(c1.size, k1.size)
    if undefined:
        return DelongTest(None, None, auc1, auc2, undefined.replace("variance", "test"))
    s10 = np.cov(np.vstack([a10, b10]), ddof=1)
    s01 = np.cov(np.vstack([a01, b01]), ddof=1)
    s = s10 / a10.size + s01 / a01.size
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    d = auc1 - auc2
    if var <= 0:
        if d == 0:
            return DelongTest(0.0, 1.0, auc1, auc2)
        return DelongTest(float(np.copysign(np.inf, d)), 0.0, auc1, auc2)
    z = d / np.sqrt(var)
    return DelongTest(float(z), float(2 * stats.norm.sf(abs(z))), auc1, auc2)


def roc_points(labels, scores, direction: str = "higher"):
    """(1 - specificity, sensitivity) at every observed cut-off, from (0, 0) to (1, 1), for plotting."""
    cases, controls = _split(labels, scores, direction)
    cuts = np.unique(np.concatenate([cases, controls]))[::-1]
    fpr = [0.0] + [float((controls >= c).mean()) for c in cuts]
    tpr = [0.0] + [float((cases >= c).mean()) for c in cuts]
    return np.array(fpr), np.array(tpr)
