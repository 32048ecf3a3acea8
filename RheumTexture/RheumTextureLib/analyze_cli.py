"""``rheumtexture analyze``: cohort statistics of per-image texture scores (AUROC, group means, odds ratio)."""

from __future__ import annotations

import sys

import pandas as pd

from RheumImagingLib.stats import groups, logistic, report, roc
from RheumImagingLib.stats.aggregate import AGGREGATES, per_patient
from RheumImagingLib.stats.table import read_scores

COLUMNS = ("patient_id", "label", "age", "sex", "score")
OUTPUTS = ("report.json", "report.html", "roc.png")


def analyze(scores_csv, out_dir, threshold: float = 0.43, aggregate: str = "mean", overwrite: bool = False) -> dict:
    """Analyse SCORES.csv (one row per image or bone) at patient level and write the report into ``out_dir``."""
    out = report.check_writable(out_dir, OUTPUTS, overwrite)
    rows = read_scores(scores_csv, numeric=("label", "age", "score"), categorical={"sex": ("F", "M")}, required=COLUMNS)
    table = per_patient(rows, ["score"], aggregate, scores_csv, constant_columns=("label", "age", "sex"))
    y = table["label"].to_numpy()
    cases, controls = table.loc[y == 1, "score"], table.loc[y == 0, "score"]
    auc = roc.auroc(y, table["score"])
    covariates = pd.DataFrame({"age": table["age"], "sex_male": (table["sex"] == "M").astype(float)})
    binarised = covariates.assign(**{"score_above_threshold": (table["score"] > threshold).astype(float)})
    per_tenth = covariates.assign(score_per_0_1=table["score"] / 0.1)
    adjusted = ["age", "sex"]
    odds_ratio = _odds_ratio(y, binarised[["score_above_threshold", "age", "sex_male"]], "score_above_threshold")
    odds_ratio.update(threshold=threshold, adjusted_for=adjusted,
                      definition=f"score > {threshold:g} vs score <= {threshold:g}")
    per_0_1 = _odds_ratio(y, per_tenth[["score_per_0_1", "age", "sex_male"]], "score_per_0_1")
    per_0_1.update(adjusted_for=adjusted)
    welch = groups.welch_t(cases, controls)
    result = {
        "n_cases": int((y == 1).sum()),
        "n_controls": int((y == 0).sum()),
        "n_rows": int(len(rows)),
        "aggregation": f"{aggregate} of the rows of each patient",
        "auroc": auc.as_dict(),
        "mean_score": {"cases": groups.mean_ci(cases), "controls": groups.mean_ci(controls),
                       "ci_method": "t-distribution 95% CI"},
        "median_score": {"cases": groups.median_iqr(cases), "controls": groups.median_iqr(controls)},
        "group_test": {"test": welch["test"], "p": welch["p"], "t": welch["t"]},
        "mann_whitney": groups.mann_whitney(cases, controls),
        "odds_ratio": odds_ratio,
        "odds_ratio_per_0_1": per_0_1,
    }
    fpr, tpr = roc.roc_points(y, table["score"])
    report.plot_roc(out / "roc.png", [(f"texture score (AUC {auc.estimate:.3f})", fpr, tpr)], "RA vs control")
    lo, hi = auc.ci95
    report.write_report(out, result, "RheumTexture cohort analysis", images=["roc.png"], summary_lines=[
        f"{result['n_cases']} RA patients, {result['n_controls']} controls ({result['aggregation']}).",
        f"AUROC {auc.estimate:.3f} (95% CI {lo:.3f}-{hi:.3f}, DeLong).",
        _odds_ratio_line(odds_ratio, threshold),
    ])
    return result


def _odds_ratio(y, X, term: str) -> dict:
    """Wald OR of ``term``; a model that cannot be fitted (separation, too few events, a constant
    term) is reported as unavailable with the reason, and the rest of the report still stands."""
    try:
        fit = logistic.fit_logit(y, X)
    except logistic.ModelError as exc:
        return {"estimate": None, "ci95": None, "p": None, "unavailable": str(exc)}
    t = fit["terms"][term]
    return {"estimate": t["odds_ratio"], "ci95": t["ci95"], "p": t["p"], "method": fit["method"],
            "epv": fit["epv"], "notes": fit["notes"]}


def _odds_ratio_line(odds_ratio: dict, threshold: float) -> str:
    if odds_ratio["estimate"] is None:
        return f"Odds ratio for score > {threshold:g} not estimable: {odds_ratio['unavailable']}."
    lo, hi = odds_ratio["ci95"]
    return (f"Odds ratio for score > {threshold:g}, adjusted for age and sex: {odds_ratio['estimate']:.2f} "
            f"(95% CI {lo:.2f}-{hi:.2f}, p = {odds_ratio['p']:.3g}).")


def _run(args) -> int:
    result = analyze(args.scores, args.out, args.threshold, args.aggregate, args.overwrite)
    for key in ("odds_ratio", "odds_ratio_per_0_1"):
        if result[key]["estimate"] is None:
            print(f"rheumtexture analyze: note: {key} not estimable: {result[key]['unavailable']}", file=sys.stderr)
    lo, hi = result["auroc"]["ci95"]
    print(f"AUROC {result['auroc']['estimate']:.3f} (95% CI {lo:.3f}-{hi:.3f}, DeLong) on {result['n_cases']} RA "
          f"vs {result['n_controls']} controls; wrote {args.out}/report.html, report.json, roc.png")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="cohort statistics from a scores CSV",
                              description="Columns: " + ",".join(COLUMNS) + " (label 1 = RA, 0 = control; sex F/M).")
    p.add_argument("scores", metavar="SCORES.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threshold", type=float, default=0.43, help="score cut-off for the odds ratio (default 0.43)")
    p.add_argument("--aggregate", choices=AGGREGATES, default="mean", help="per-patient aggregation (default mean)")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    p.set_defaults(func=_run)
