"""``sjogrenus analyze``: diagnostic accuracy of the 0-16 gland score, the modified 0-18 score and mucosa thickness."""

from __future__ import annotations

import numpy as np

from RheumImagingLib.anatomy import GLAND_SITES
from RheumImagingLib.errors import InputError
from RheumImagingLib.stats import bootstrap, cutoffs, flow, groups, paired, report, roc
from RheumImagingLib.stats.table import add_bootstrap_options, read_scores

COLUMNS = ("patient_id", "label", "gland_score", "mucosa_score", "thickness_mm")
OUTPUTS = ("report.json", "report.html", "roc.png", "thickness_roc.png")
RANGES = {"gland_score": (0, 16), "mucosa_score": (0, 2)}
MAY_BE_EMPTY = ("gland_score", "mucosa_score", "thickness_mm")  # sjogrenus score leaves them empty when unmeasurable


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


def _system(y, score, n_resamples: int, seed: int) -> dict:
    cut = cutoffs.youden_at_least(y, score)
    return {"n_patients": int(len(y)), "auroc": roc.auroc(y, score).as_dict(), "cutoff": cut["cutoff"],
            "cutoff_rule": cut["rule"], "tied_cutoffs": cut["tied_cutoffs"], "youden_j": cut["youden_j"],
            "sensitivity": cut["sensitivity"], "specificity": cut["specificity"],
            "bootstrap": bootstrap.youden(y, score, ">=", n_resamples, seed)}


def _measurement_flow(rows) -> dict:
    """What ``sjogrenus score`` noted: unreadable images, uncalibrated images, sites without an image or grade."""
    out = {}
    if "notes" in rows.columns:
        notes = rows["notes"].astype(str)
        skipped = notes.str.count(r": skipped \(")
        out["images_unreadable"] = int(skipped.sum())
        out["patients_with_an_unreadable_image"] = int((skipped > 0).sum())
        out["patients_with_an_uncalibrated_image"] = int(notes.str.contains("uncalibrated").sum())
    missing = {s: int((rows[f"grade_{s}"].astype(str).str.strip() == "").sum())
               for s in GLAND_SITES if f"grade_{s}" in rows.columns}
    if "thickness_status" in rows.columns:
        missing["mucosa"] = int((rows["thickness_status"].astype(str) == "no mucosa image").sum())
    if missing:
        out["sites_missing"] = missing
    return out


def _cutoff_comparison(y, gland, modified, cut16: float, cut18: float) -> dict:
    """McNemar on the same patients: sensitivity on cases, specificity on controls, each system at its cut-off."""
    pos16, pos18 = gland >= cut16, modified >= cut18
    cases, controls = y == 1, y == 0
    return {"cutoffs": {"0-16": cut16, "0-18": cut18}, "n_patients": int(len(y)),
            "sensitivity": {**paired.mcnemar(pos18[cases], pos16[cases]),
                            "discordant_meaning": "[cases positive by 0-18 only, cases positive by 0-16 only]"},
            "specificity": {**paired.mcnemar(~pos18[controls], ~pos16[controls]),
                            "discordant_meaning": "[controls negative by 0-18 only, controls negative by 0-16 only]"}}


def _unavailable(y, what: str) -> str | None:
    """Why an analysis of ``what`` cannot run on labels ``y`` (None when it can: both classes present)."""
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if n1 and n0:
        return None
    return f"too few patients measured for {what}: {n1} cases, {n0} controls"


def analyze(scores_csv, out_dir, overwrite: bool = False, n_resamples: int = bootstrap.N_RESAMPLES,
            seed: int = bootstrap.SEED) -> dict:
    """Analyse a ``sjogrenus score`` table. Each analysis uses the patients measured for it; one that has no
    case or no control left is reported as unavailable with the reason, and the others still run."""
    out = report.check_writable(out_dir, OUTPUTS, overwrite)
    rows = read_scores(scores_csv, numeric=("label", "gland_score", "mucosa_score", "thickness_mm"), required=COLUMNS,
                       may_be_empty=MAY_BE_EMPTY)
    _check(rows, scores_csv)
    rows, flow_table = flow.screen(rows, scores_csv)
    flow_table["measurement"] = _measurement_flow(rows)
    y_all = rows["label"].to_numpy()
    gland_all = rows["gland_score"].to_numpy()
    modified_all = gland_all + rows["mucosa_score"].to_numpy()
    thick_all = rows["thickness_mm"].to_numpy()
    has_gland = np.isfinite(gland_all)
    measured = np.isfinite(modified_all)  # complete cases for the 0-18 score and its comparison
    has_thickness = np.isfinite(thick_all)
    y16, gland16 = y_all[has_gland], gland_all[has_gland]
    y, gland, modified = y_all[measured], gland_all[measured], modified_all[measured]
    yt, thick = y_all[has_thickness], thick_all[has_thickness]
    why = {"0-16": _unavailable(y16, "the 0-16 score (gland_score missing)"),
           "0-18": _unavailable(y, "the 0-18 score (gland or mucosa score missing)"),
           "thickness": _unavailable(yt, "thickness (thickness_mm missing)")}
    if all(why.values()):
        raise InputError(scores_csv, "; ".join(why.values()))
    systems = {name: ({"n_patients": int(len(labels)), "unavailable": why[name]} if why[name]
                      else _system(labels, score, n_resamples, seed))
               for name, labels, score in (("0-16", y16, gland16), ("0-18", y, modified))}
    if why["0-18"]:
        cmp = {"unavailable": why["0-18"]}
        cutoff_cmp = {"unavailable": why["0-18"]}
    else:
        cmp = roc.delong_test(y, modified, gland).as_dict()
        cmp["compared"] = "AUROC 0-18 minus AUROC 0-16 (patients with both scores)"
        cmp["bootstrap"] = bootstrap.auc_difference(y, modified, gland, n_resamples, seed)
        cutoff_cmp = _cutoff_comparison(y, gland, modified, systems["0-16"]["cutoff"], systems["0-18"]["cutoff"])
    flow.add_analysed(flow_table, {"0-16": flow.counts(y16), "0-18": flow.counts(y),
                                   "0-18 vs 0-16 (paired)": flow.counts(y), "thickness": flow.counts(yt)})
    result = {
        "n_cases": int((y_all == 1).sum()), "n_controls": int((y_all == 0).sum()),
        "flow": flow_table,
        "excluded": {"0-16": int((~has_gland).sum()), "0-18": int((~measured).sum()),
                     "thickness": int((~has_thickness).sum()),
                     "rule": "patients whose measurement is missing (empty cell) are left out of the analyses that need it"},
        "systems": systems,
        "auroc_comparison": cmp,
        "cutoff_comparison": cutoff_cmp,
        "thickness": {"n_patients": int(has_thickness.sum()), "unavailable": why["thickness"]} if why["thickness"]
        else _thickness(yt, thick, n_resamples, seed),
    }
    curves = []
    for name, labels, score in (("0-16", y16, gland16), ("0-18", y, modified)):
        if not why[name]:
            fpr, tpr = roc.roc_points(labels, score)
            curves.append((f"{name} (AUC {systems[name]['auroc']['estimate']:.3f})", fpr, tpr))
    images = []
    if curves:
        report.plot_roc(out / "roc.png", curves, "pSS vs control: ultrasound scores")
        images.append("roc.png")
    if not why["thickness"]:
        fpr, tpr = roc.roc_points(yt, thick, direction="lower")
        report.plot_roc(out / "thickness_roc.png", [("mucosa thickness (low = pSS)", fpr, tpr)], "Mucosa thickness")
        images.append("thickness_roc.png")
    report.write_report(out, result, "SjogrenUS cohort analysis", images=images, summary_lines=_summary(result))
    return result


def _thickness(yt, thick, n_resamples: int, seed: int) -> dict:
    cut = cutoffs.youden_at_most(yt, thick)
    return {"mann_whitney": groups.mann_whitney(thick[yt == 1], thick[yt == 0]),
            "median_iqr": {"cases": groups.median_iqr(thick[yt == 1]), "controls": groups.median_iqr(thick[yt == 0])},
            "n_patients": int(len(yt)), "auroc": roc.auroc(yt, thick, direction="lower").as_dict(),
            "cutoff_mm": cut["cutoff"], "cutoff_rule": cut["rule"], "tied_cutoffs_mm": cut["tied_cutoffs"],
            "sensitivity": cut["sensitivity"], "specificity": cut["specificity"],
            "bootstrap": bootstrap.youden(yt, thick, "<=", n_resamples, seed)}


def _summary(result: dict) -> list[str]:
    ex, systems, cmp = result["excluded"], result["systems"], result["auroc_comparison"]
    lines = [f"{result['n_cases']} pSS patients, {result['n_controls']} controls analysed; left out for lack of a "
             f"measurement: {ex['0-16']} (0-16), {ex['0-18']} (0-18), {ex['thickness']} (thickness)."]
    for name, s in systems.items():
        if "unavailable" in s:
            lines.append(f"{name}: not analysed, {s['unavailable']}.")
            continue
        b = s["bootstrap"]
        lines.append(f"{name}: AUROC {s['auroc']['estimate']:.3f}; cut-off >= {s['cutoff']:g}: sensitivity "
                     f"{100 * s['sensitivity']['estimate']:.1f}%, specificity {100 * s['specificity']['estimate']:.1f}% "
                     f"(Wilson 95% CIs in the table); optimism-corrected sensitivity "
                     f"{100 * b['optimism_corrected']['sensitivity']:.1f}%, specificity "
                     f"{100 * b['optimism_corrected']['specificity']:.1f}% ({b['n_resamples']} bootstrap resamples).")
    if "unavailable" in cmp:
        lines.append(f"0-18 vs 0-16 not compared: {cmp['unavailable']}.")
    else:
        if cmp["z"] is None:
            lines.append(f"DeLong comparison 0-18 vs 0-16 undefined: {cmp['undefined']}.")
        else:
            lines.append(f"DeLong comparison 0-18 vs 0-16: z = {cmp['z']:.2f}, p = {cmp['p']:.3g}; bootstrap 95% CI of "
                         f"the AUROC difference {cmp['bootstrap']['ci95'][0]:.3f} to {cmp['bootstrap']['ci95'][1]:.3f}.")
        for what in ("sensitivity", "specificity"):
            m = result["cutoff_comparison"][what]
            test = "undefined (no discordant patients)" if m["statistic"] is None else \
                f"McNemar chi-squared {m['statistic']:.3g}, p = {m['p']:.3g}"
            lines.append(f"{what.capitalize()} 0-18 vs 0-16 at their cut-offs: discordant {m['discordant']}, {test}.")
    th = result["thickness"]
    if "unavailable" in th:
        lines.append(f"Thickness: not analysed, {th['unavailable']}.")
    else:
        mw = th["mann_whitney"]
        lines.append(f"Thickness: Mann-Whitney U = {mw['U']:g}, p = {mw['p']:.3g} ({mw['method']}); "
                     f"cut-off <= {th['cutoff_mm']:g} mm.")
    return lines


def _run(args) -> int:
    result = analyze(args.scores, args.out, args.overwrite, args.bootstrap, args.seed)
    print(f"{result['n_cases']} pSS patients, {result['n_controls']} controls; "
          + ", ".join(f"{name} AUROC {system['auroc']['estimate']:.3f}" if "auroc" in system
                      else f"{name} unavailable" for name, system in result["systems"].items()))
    print(f"wrote {args.out}/report.html, report.json, roc.png, thickness_roc.png")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="diagnostic accuracy of the ultrasound scores from a scores CSV",
                              description="Columns: " + ",".join(COLUMNS) + " (label 1 = pSS, 0 = control).")
    p.add_argument("scores", metavar="SCORES.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    add_bootstrap_options(p)
    p.set_defaults(func=_run)
