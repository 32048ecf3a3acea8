"""``sjogrenus analyze``: diagnostic accuracy of the 0-16 gland score, the modified 0-18 score and mucosa thickness."""

from __future__ import annotations

import numpy as np

from RheumImagingLib.errors import InputError
from RheumImagingLib.stats import cutoffs, groups, report, roc
from RheumImagingLib.stats.table import read_scores

COLUMNS = ("patient_id", "label", "gland_score", "mucosa_score", "thickness_mm")
OUTPUTS = ("report.json", "report.html", "roc.png", "thickness_roc.png")
RANGES = {"gland_score": (0, 16), "mucosa_score": (0, 2)}
MAY_BE_EMPTY = ("mucosa_score", "thickness_mm")  # sjogrenus score leaves them empty when unmeasurable


def _check(rows, path):
    for col, (lo, hi) in RANGES.items():
        for i, v in enumerate(rows[col], start=1):
            if v != v and col in MAY_BE_EMPTY:  # not measured
                continue
            if v != int(v) or not lo <= v <= hi:
                raise InputError(path, f"column '{col}', row {i}: {v:g} is not an integer in {lo}-{hi}")
    for i, v in enumerate(rows["thickness_mm"], start=1):
        if v <= 0:  # NaN (not measured) compares False
            raise InputError(path, f"column 'thickness_mm', row {i}: {v:g} is not a positive thickness")
    seen = {}
    for i, pid in enumerate(rows["patient_id"], start=1):
        if pid in seen:
            raise InputError(path, f"column 'patient_id', row {i}: patient {pid!r} already in row {seen[pid]}; "
                                   "give one row per patient")
        seen[pid] = i


def _system(y, score) -> dict:
    cut = cutoffs.youden_at_least(y, score)
    return {"auroc": roc.auroc(y, score).as_dict(), "cutoff": cut["cutoff"], "cutoff_rule": cut["rule"],
            "tied_cutoffs": cut["tied_cutoffs"], "youden_j": cut["youden_j"],
            "sensitivity": cut["sensitivity"], "specificity": cut["specificity"]}


def analyze(scores_csv, out_dir, overwrite: bool = False) -> dict:
    out = report.check_writable(out_dir, OUTPUTS, overwrite)
    rows = read_scores(scores_csv, numeric=("label", "gland_score", "mucosa_score", "thickness_mm"), required=COLUMNS,
                       may_be_empty=MAY_BE_EMPTY)
    _check(rows, scores_csv)
    y_all = rows["label"].to_numpy()
    gland_all = rows["gland_score"].to_numpy()
    modified_all = gland_all + rows["mucosa_score"].to_numpy()
    thick_all = rows["thickness_mm"].to_numpy()
    measured = np.isfinite(modified_all)  # complete cases for the 0-18 score and its comparison
    has_thickness = np.isfinite(thick_all)
    for name, mask in (("the 0-18 score (mucosa score missing)", measured), ("thickness (thickness_mm missing)", has_thickness)):
        y_kept = y_all[mask]
        if (y_kept == 1).sum() == 0 or (y_kept == 0).sum() == 0:
            raise InputError(scores_csv, f"too few patients measured for {name}: {int((y_kept == 1).sum())} cases, "
                                         f"{int((y_kept == 0).sum())} controls")
    y, gland, modified = y_all[measured], gland_all[measured], modified_all[measured]
    systems = {"0-16": _system(y_all, gland_all), "0-18": _system(y, modified)}
    systems["0-16"]["n_patients"], systems["0-18"]["n_patients"] = int(len(y_all)), int(measured.sum())
    cmp = roc.delong_test(y, modified, gland).as_dict()
    cmp["compared"] = "AUROC 0-18 minus AUROC 0-16 (patients with both scores)"
    yt, thick = y_all[has_thickness], thick_all[has_thickness]
    cut = cutoffs.youden_at_most(yt, thick)
    mw = groups.mann_whitney(thick[yt == 1], thick[yt == 0])
    result = {
        "n_cases": int((y_all == 1).sum()), "n_controls": int((y_all == 0).sum()),
        "excluded": {"0-18": int((~measured).sum()), "thickness": int((~has_thickness).sum()),
                     "rule": "patients whose measurement is missing (empty cell) are left out of the analyses that need it"},
        "systems": systems,
        "auroc_comparison": cmp,
        "thickness": {"mann_whitney": mw, "median_iqr": {"cases": groups.median_iqr(thick[yt == 1]),
                                                        "controls": groups.median_iqr(thick[yt == 0])},
                      "n_patients": int(has_thickness.sum()),
                      "auroc": roc.auroc(yt, thick, direction="lower").as_dict(),
                      "cutoff_mm": cut["cutoff"], "cutoff_rule": cut["rule"], "tied_cutoffs_mm": cut["tied_cutoffs"],
                      "sensitivity": cut["sensitivity"], "specificity": cut["specificity"]},
    }
    curves = []
    for name, labels, score in (("0-16", y_all, gland_all), ("0-18", y, modified)):
        fpr, tpr = roc.roc_points(labels, score)
        curves.append((f"{name} (AUC {systems[name]['auroc']['estimate']:.3f})", fpr, tpr))
    report.plot_roc(out / "roc.png", curves, "pSS vs control: ultrasound scores")
    fpr, tpr = roc.roc_points(yt, thick, direction="lower")
    report.plot_roc(out / "thickness_roc.png", [("mucosa thickness (low = pSS)", fpr, tpr)], "Mucosa thickness")
    lines = [f"{result['n_cases']} pSS patients, {result['n_controls']} controls; left out for lack of a "
             f"measurement: {result['excluded']['0-18']} (0-18), {result['excluded']['thickness']} (thickness)."]
    for name, s in systems.items():
        lines.append(f"{name}: AUROC {s['auroc']['estimate']:.3f}; cut-off >= {s['cutoff']:g}: sensitivity "
                     f"{100 * s['sensitivity']['estimate']:.1f}%, specificity {100 * s['specificity']['estimate']:.1f}% "
                     "(Wilson 95% CIs in the table).")
    lines.append(f"DeLong comparison 0-18 vs 0-16: z = {cmp['z']:.2f}, p = {cmp['p']:.3g}.")
    lines.append(f"Thickness: Mann-Whitney U = {mw['U']:g}, p = {mw['p']:.3g} ({mw['method']}); "
                 f"cut-off <= {cut['cutoff']:g} mm.")
    report.write_report(out, result, "SjogrenUS cohort analysis", images=["roc.png", "thickness_roc.png"],
                        summary_lines=lines)
    return result


def _run(args) -> int:
    result = analyze(args.scores, args.out, args.overwrite)
    print(f"{result['n_cases']} pSS patients, {result['n_controls']} controls; "
          + ", ".join(f"{name} AUROC {system['auroc']['estimate']:.3f}" for name, system in result["systems"].items()))
    print(f"wrote {args.out}/report.html, report.json, roc.png, thickness_roc.png")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="diagnostic accuracy of the ultrasound scores from a scores CSV",
                              description="Columns: " + ",".join(COLUMNS) + " (label 1 = pSS, 0 = control).")
    p.add_argument("scores", metavar="SCORES.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    p.set_defaults(func=_run)
