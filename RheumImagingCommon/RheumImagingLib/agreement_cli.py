"""``agreement`` subcommand of both command lines: reader agreement from a long-format readings CSV."""

from __future__ import annotations

import re
from itertools import combinations

from .errors import InputError
from .stats import agreement, report

OUTPUT = ("report.json", "report.html")


def _plot_name(measure: str) -> str:
    return "bland_altman_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", measure) + ".png"


def run_agreement(readings_csv, out_dir, ordinal=(), overwrite: bool = False) -> dict:
    """Analyse ``readings_csv`` and write report.json, report.html and one Bland-Altman PNG per continuous measure."""
    readings = agreement.read_readings(readings_csv)
    ordinal = tuple(ordinal)
    unknown = [m for m in ordinal if m not in set(readings["measure"])]
    if unknown:
        raise InputError(readings_csv, f"--ordinal names measure(s) {', '.join(map(repr, unknown))} that the "
                                       f"table does not hold; it has {', '.join(dict.fromkeys(readings['measure']))}")
    continuous = [m for m in dict.fromkeys(readings["measure"]) if m not in ordinal]
    out = report.check_writable(out_dir, OUTPUT + tuple(_plot_name(m) for m in continuous), overwrite)
    measures = agreement.analyse(readings, ordinal)
    images, lines = [], []
    for name, m in measures.items():
        if "type" not in m:
            lines.append(f"{name}: {m['undefined']}.")
            continue
        if m["type"] == "continuous":
            table, _ = agreement.wide(readings, name)
            readers = list(table.columns)
            pairs = [(f"{b} - {a}", table[a], table[b]) for a, b in combinations(readers, 2)]
            report.plot_bland_altman(out / _plot_name(name), pairs, f"{name}: Bland-Altman")
            images.append(_plot_name(name))
            icc = m["icc"]
            ci = icc["ci95"]
            lines.append(f"{name}: ICC(A,1) {icc['estimate']:.3f}" + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if ci else "")
                         + f", {m['n_subjects']} subjects, {len(readers)} readers.")
        elif "kappa_linear" in m and m["kappa_linear"] is not None:
            lines.append(f"{name}: weighted kappa linear {m['kappa_linear']:.3f}, quadratic {m['kappa_quadratic']:.3f}; "
                         f"exact agreement {m['percent_agreement']:.1f}% ({m['n_subjects']} subjects).")
    result = {"measures": measures, "input": str(readings_csv),
              "conventions": "ICC(A,1) as irr::icc(model='twoway', type='agreement', unit='single'); weighted kappa as "
                             "irr::kappa2(weight='equal'/'squared'); Bland-Altman limits bias +- 1.96 SD of the differences"}
    report.write_report(out, result, "Reader agreement", images=images, summary_lines=lines)
    return result


def _run(args) -> int:
    ordinal = [m.strip() for m in (args.ordinal or "").split(",") if m.strip()]
    run_agreement(args.readings, args.out, ordinal, args.overwrite)
    print(f"wrote {args.out}/report.json, report.html")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("agreement", help="reader agreement (ICC, Bland-Altman, weighted kappa) from readings",
                              description="READINGS.csv in long format with columns subject,reader,measure,value "
                                          "(two or more readers; the software may be one). Continuous measures: "
                                          "ICC(A,1) with 95%% CI and Bland-Altman limits; --ordinal measures: "
                                          "Cohen's weighted kappa (linear, quadratic; two readers) and percent agreement.")
    p.add_argument("readings", metavar="READINGS.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--ordinal", metavar="NAME[,NAME]", default="", help="measures that are ordinal grades")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files in DIR")
    p.set_defaults(func=_run)
