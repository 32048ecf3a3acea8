"""``rheumtexture analyze``: cohort statistics of per-image texture scores (AUROC, group means, odds ratio)."""

from __future__ import annotations

import sys

import pandas as pd

from RheumImagingLib.errors import InputError
from RheumImagingLib.stats import bootstrap, calibration, cutoffs, flow, groups, logistic, report, roc
from RheumImagingLib.stats.aggregate import AGGREGATES, per_patient
from RheumImagingLib.stats.table import add_bootstrap_options, read_scores

COLUMNS = ("patient_id", "label", "age", "sex", "score")
OUTPUTS = ("report.json", "report.html", "roc.png", "calibration.png")
THRESHOLD_NOTE = ("0.43 is the threshold of the published abstract (SAT0564), not a cut-off calibrated or chosen on "
                  "this cohort")


def analyze(scores_csv, out_dir, threshold: float = 0.43, aggregate: str = "mean", overwrite: bool = False,
            include_training: bool = False, n_resamples: int = bootstrap.N_RESAMPLES, seed: int = bootstrap.SEED) -> dict:
    """Analyse SCORES.csv (one row per image or bone) at patient level and write the report into ``out_dir``.

    Rows whose ``qc`` is not ``ok`` are left out, and in-training patients are not mixed with new ones
    unless ``include_training`` (stats.flow); both are counted in the report's flow table."""
    out = report.check_writable(out_dir, OUTPUTS, overwrite)
    rows = read_scores(scores_csv, numeric=("label", "age", "score"), categorical={"sex": ("F", "M")}, required=COLUMNS)
    rows, flow_table = flow.screen(rows, scores_csv, include_training)
    constant = ("label", "age", "sex") + (("in_training",) if "in_training" in rows.columns else ())
    table = per_patient(rows, ["score"], aggregate, scores_csv, constant_columns=constant)
    y = table["label"].to_numpy()
    if len(set(y)) < 2:
        raise InputError(scores_csv, f"after leaving out {_left_out(flow_table)}, only "
                                     f"{'cases' if 1 in set(y) else 'controls'} remain; the analysis needs both classes")
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
        "youden_cutoff": _youden(y, table["score"], n_resamples, seed),
        "calibration": calibration.calibration(y, table["score"]),
        "calibration_groups": calibration.grouped(y, table["score"]),
        "threshold_note": THRESHOLD_NOTE if threshold == 0.43 else
        f"threshold {threshold:g} given on the command line; the published abstract's is 0.43 (not calibrated on this cohort)",
        "flow": flow.add_analysed(flow_table, {"all analyses": flow.counts(y)}),
    }
    if "in_training" in flow_table:
        result["analysed_patients"] = flow_table["in_training"]["analysed"]
    fpr, tpr = roc.roc_points(y, table["score"])
    report.plot_roc(out / "roc.png", [(f"texture score (AUC {auc.estimate:.3f})", fpr, tpr)], "RA vs control")
    report.plot_calibration(out / "calibration.png", result["calibration_groups"], "Calibration (patient level)")
    report.write_report(out, result, "RheumTexture cohort analysis", images=["roc.png", "calibration.png"],
                        summary_lines=_summary(result, auc, odds_ratio, threshold))
    return result


def _youden(y, score, n_resamples: int, seed: int) -> dict:
    """This cohort's own Youden cut-off, for comparison with the published threshold, with bootstrap CIs and optimism."""
    cut = cutoffs.youden_at_least(y, score)
    return {"cutoff": cut["cutoff"], "cutoff_rule": cut["rule"], "youden_j": cut["youden_j"],
            "sensitivity": cut["sensitivity"], "specificity": cut["specificity"],
            "bootstrap": bootstrap.youden(y, score, ">=", n_resamples, seed)}


def _left_out(flow_table: dict) -> str:
    return "; ".join(f"{s['patients']} patients ({s['reason']})" for s in flow_table["excluded"]) or "nothing"


def _summary(result: dict, auc, odds_ratio: dict, threshold: float) -> list[str]:
    lines = [f"{result['n_cases']} RA patients, {result['n_controls']} controls ({result['aggregation']}); "
             f"left out: {_left_out(result['flow'])}."]
    if "analysed_patients" in result:
        lines.append(f"Analysed: {result['analysed_patients']}.")
    if auc.ci95 is None:
        lines.append(f"AUROC {auc.estimate:.3f} ({auc.undefined}).")
    else:
        lines.append(f"AUROC {auc.estimate:.3f} (95% CI {auc.ci95[0]:.3f}-{auc.ci95[1]:.3f}, DeLong).")
    lines += [_odds_ratio_line(odds_ratio, threshold), result["threshold_note"] + "."]
    cal = result["calibration"]
    if cal.get("slope"):
        i, sl = cal["intercept"], cal["slope"]
        lines.append(f"Calibration: intercept {i['estimate']:.2f} (95% CI {i['ci95'][0]:.2f} to {i['ci95'][1]:.2f}), "
                     f"slope {sl['estimate']:.2f} (95% CI {sl['ci95'][0]:.2f} to {sl['ci95'][1]:.2f}), "
                     f"Brier {cal['brier']:.3f}.")
    else:
        lines.append(f"Calibration not estimable: {cal.get('unavailable')}.")
    return lines


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
    result = analyze(args.scores, args.out, args.threshold, args.aggregate, args.overwrite, args.include_training,
                     args.bootstrap, args.seed)
    for key in ("odds_ratio", "odds_ratio_per_0_1"):
        if result[key]["estimate"] is None:
            print(f"rheumtexture analyze: note: {key} not estimable: {result[key]['unavailable']}", file=sys.stderr)
        for note in result[key].get("notes", []):
            print(f"rheumtexture analyze: note: {key}: {note}", file=sys.stderr)
    ci = result["auroc"]["ci95"]
    ci_text = f"95% CI {ci[0]:.3f}-{ci[1]:.3f}, DeLong" if ci else "no CI: " + str(result["auroc"].get("undefined"))
    print(f"AUROC {result['auroc']['estimate']:.3f} ({ci_text}) on {result['n_cases']} RA "
          f"vs {result['n_controls']} controls; wrote {args.out}/report.html, report.json, roc.png, calibration.png")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="cohort statistics from a scores CSV",
                              description="Columns: " + ",".join(COLUMNS) + " (label 1 = RA, 0 = control; sex F/M); "
                                          "optional qc (rows not 'ok' are left out) and in_training (yes/no).")
    p.add_argument("scores", metavar="SCORES.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threshold", type=float, default=0.43,
                   help="score cut-off for the odds ratio (default 0.43, the published abstract's; not calibrated here)")
    p.add_argument("--aggregate", choices=AGGREGATES, default="mean", help="per-patient aggregation (default mean)")
    p.add_argument("--include-training", action="store_true",
                   help="analyse patients the network was trained on (in_training = yes) together with new ones")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    add_bootstrap_options(p)
    p.set_defaults(func=_run)
