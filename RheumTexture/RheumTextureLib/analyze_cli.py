"""``rheumtexture analyze``: cohort statistics of per-image texture scores (AUROC, group means, odds ratio)."""

from __future__ import annotations

import pandas as pd

from RheumImagingLib.errors import InputError
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
    try:
        fit_bin = logistic.fit_logit(y, binarised[["score_above_threshold", "age", "sex_male"]])
        fit_cont = logistic.fit_logit(y, per_tenth[["score_per_0_1", "age", "sex_male"]])
    except logistic.ModelError as exc:
        raise InputError(scores_csv, f"logistic regression impossible: {exc}") from None
    b = fit_bin["terms"]["score_above_threshold"]
    c = fit_cont["terms"]["score_per_0_1"]
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
        "odds_ratio": {"threshold": threshold, "estimate": b["odds_ratio"], "ci95": b["ci95"], "p": b["p"],
                       "adjusted_for": ["age", "sex"], "definition": f"score > {threshold:g} vs score <= {threshold:g}",
                       "method": fit_bin["method"], "epv": fit_bin["epv"], "notes": fit_bin["notes"]},
        "odds_ratio_per_0_1": {"estimate": c["odds_ratio"], "ci95": c["ci95"], "p": c["p"],
                               "adjusted_for": ["age", "sex"], "method": fit_cont["method"]},
    }
    fpr, tpr = roc.roc_points(y, table["score"])
    report.plot_roc(out / "roc.png", [(f"texture score (AUC {auc.estimate:.3f})", fpr, tpr)], "RA vs control")
    lo, hi = auc.ci95
    report.write_report(out, result, "RheumTexture cohort analysis", images=["roc.png"], summary_lines=[
        f"{result['n_cases']} RA patients, {result['n_controls']} controls ({result['aggregation']}).",
        f"AUROC {auc.estimate:.3f} (95% CI {lo:.3f}-{hi:.3f}, DeLong).",
        f"Odds ratio for score > {threshold:g}, adjusted for age and sex: {b['odds_ratio']:.2f} "
        f"(95% CI {b['ci95'][0]:.2f}-{b['ci95'][1]:.2f}, p = {b['p']:.3g}).",
    ])
    return result


def _run(args) -> int:
    analyze(args.scores, args.out, args.threshold, args.aggregate, args.overwrite)
    print(f"wrote {args.out}/report.json, report.html, roc.png")
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
