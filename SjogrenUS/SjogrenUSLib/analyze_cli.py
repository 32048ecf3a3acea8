"""``sjogrenus analyze``: diagnostic accuracy of the 0-16 gland score, the modified 0-18 score and mucosa thickness."""

from __future__ import annotations

from RheumImagingLib.errors import InputError
from RheumImagingLib.stats import cutoffs, groups, report, roc
from RheumImagingLib.stats.table import read_scores

COLUMNS = ("patient_id", "label", "gland_score", "mucosa_score", "thickness_mm")
OUTPUTS = ("report.json", "report.html", "roc.png", "thickness_roc.png")
RANGES = {"gland_score": (0, 16), "mucosa_score": (0, 2)}


def _check(rows, path):
    for col, (lo, hi) in RANGES.items():
        for i, v in enumerate(rows[col], start=1):
            if v != int(v) or not lo <= v <= hi:
                raise InputError(path, f"column '{col}', row {i}: {v:g} is not an integer in {lo}-{hi}")
    for i, v in enumerate(rows["thickness_mm"], start=1):
        if v <= 0:
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
    rows = read_scores(scores_csv, numeric=("label", "gland_score", "mucosa_score", "thickness_mm"), required=COLUMNS)
    _check(rows, scores_csv)
    y = rows["label"].to_numpy()
    gland = rows["gland_score"].to_numpy()
    modified = gland + rows["mucosa_score"].to_numpy()
    thick = rows["thickness_mm"].to_numpy()
    systems = {"0-16": _system(y, gland), "0-18": _system(y, modified)}
    cmp = roc.delong_test(y, modified, gland).as_dict()
    cmp["compared"] = "AUROC 0-18 minus AUROC 0-16"
    cut = cutoffs.youden_at_most(y, thick)
    mw = groups.mann_whitney(thick[y == 1], thick[y == 0])
    result = {
        "n_cases": int((y == 1).sum()), "n_controls": int((y == 0).sum()),
        "systems": systems,
        "auroc_comparison": cmp,
        "thickness": {"mann_whitney": mw, "median_iqr": {"cases": groups.median_iqr(thick[y == 1]),
                                                        "controls": groups.median_iqr(thick[y == 0])},
                      "auroc": roc.auroc(y, thick, direction="lower").as_dict(),
                      "cutoff_mm": cut["cutoff"], "cutoff_rule": cut["rule"], "tied_cutoffs_mm": cut["tied_cutoffs"],
                      "sensitivity": cut["sensitivity"], "specificity": cut["specificity"]},
    }
    curves = []
    for name, score in (("0-16", gland), ("0-18", modified)):
        fpr, tpr = roc.roc_points(y, score)
        curves.append((f"{name} (AUC {systems[name]['auroc']['estimate']:.3f})", fpr, tpr))
    report.plot_roc(out / "roc.png", curves, "pSS vs control: ultrasound scores")
    fpr, tpr = roc.roc_points(y, thick, direction="lower")
    report.plot_roc(out / "thickness_roc.png", [("mucosa thickness (low = pSS)", fpr, tpr)], "Mucosa thickness")
    lines = [f"{result['n_cases']} pSS patients, {result['n_controls']} controls."]
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
    analyze(args.scores, args.out, args.overwrite)
    print(f"wrote {args.out}/report.json, report.html, roc.png, thickness_roc.png")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="diagnostic accuracy of the ultrasound scores from a scores CSV",
                              description="Columns: " + ",".join(COLUMNS) + " (label 1 = pSS, 0 = control).")
    p.add_argument("scores", metavar="SCORES.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    p.set_defaults(func=_run)
