"""``sjogrenus score``: segment, measure and score ultrasound studies; one row per patient."""

from __future__ import annotations

import csv
from pathlib import Path

from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.errors import InputError
from RheumImagingLib.runtime import add_runtime_option

from .patient import ROW_COLUMNS, SITES, analyse_image, patient_row
from .scoring import DEFAULT_SYSTEM, load_system, reader_criteria


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="segment and score ultrasound images: gland grades (0-16), mucosa score (0-2), thickness",
        description="COHORT.csv (columns patient_id, label, mucosa_image, parotid_left_image, ... as written by "
                    "'sjogrenus phantom'; paths relative to the CSV) or image FILES (each its own patient, site "
                    "guessed from the segmentation). Writes one row per patient with the columns "
                    "'sjogrenus analyze' reads. Thickness is in mm only for calibrated images. Optional cohort "
                    "columns: thickness_mm (a caliper reading in mm; it replaces the automatic value, recorded as "
                    "user-given) and, per gland, <site>_<criterion> (yes/no) for criteria the software does not "
                    "measure (salaffi_0_4: echogenic_bands, calcifications; omeract_0_3: fibrous_gland).")
    parser.add_argument("inputs", nargs="+", metavar="COHORT.csv|FILES", help="a cohort CSV or image files")
    parser.add_argument("--bundle", default=None, help="trained sjogren_us_segmentation bundle folder "
                                                       "(default: the extension's copy)")
    parser.add_argument("--scoring-system", default=DEFAULT_SYSTEM,
                        help=f"scoring system name (salaffi_0_4, omeract_0_3) or a JSON file (default {DEFAULT_SYSTEM})")
    parser.add_argument("--out", required=True, help="output scores CSV (not overwritten unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_runtime_option(parser)
    parser.set_defaults(func=_run)


_YES_NO = {"yes": True, "1": True, "true": True, "no": False, "0": False, "false": False, "": None}


def reader_entries(row: dict, cohort: Path, line: int) -> dict:
    """The reader's optional entries of one cohort row: ``thickness_mm`` (float) and, per gland site,
    {criterion: True/False} from columns ``<site>_<criterion>``; a bad value is an InputError."""
    out = {"thickness_mm": None, "glands": {}}
    text = (row.get("thickness_mm") or "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 10.0:
            raise InputError(cohort, f"row {line}: thickness_mm must be a thickness in mm (0-10), not {text!r}")
        out["thickness_mm"] = value
    for column, text in row.items():
        site = next((s for s in SITES[1:] if column and column.startswith(s + "_") and column != f"{s}_image"), None)
        if site is None:
            continue
        key = (text or "").strip().lower()
        if key not in _YES_NO:
            raise InputError(cohort, f"row {line}: column {column} must be yes or no, not {text!r}")
        out["glands"].setdefault(site, {})[column[len(site) + 1:]] = _YES_NO[key]
    return out


def studies_from_inputs(inputs: list[str]) -> list[tuple[str, object, dict, dict]]:
    """(patient_id, label, {site or None: path}, reader entries) per patient."""
    if len(inputs) == 1 and inputs[0].lower().endswith(".csv"):
        cohort = Path(inputs[0])
        out = []
        for line, row in enumerate(read_cohort(cohort, ("patient_id",), tuple(f"{s}_image" for s in SITES)), 1):
            paths = {s: cohort.parent / row[f"{s}_image"] for s in SITES if row.get(f"{s}_image")}
            out.append((row["patient_id"], row.get("label", ""), paths, reader_entries(row, cohort, line)))
        return out
    return [(Path(p).stem, None, {None: Path(p)}, {}) for p in inputs]


def _run(args) -> int:
    from .segmentation import BUNDLE_DIR

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(out, "already exists; choose another --out or pass --overwrite")
    system = load_system(args.scoring_system)
    studies = studies_from_inputs(args.inputs)
    known = set(reader_criteria(system))
    for pid, _, _, entries in studies:
        for site, found in entries.get("glands", {}).items():
            unknown = sorted(set(found) - known)
            if unknown:
                columns = ", ".join(f"{site}_{u}" for u in unknown)
                raise InputError(Path(args.inputs[0]), f"patient {pid}: column(s) {columns} are not reader criteria "
                                 f"of {system['name']} (those are: {', '.join(sorted(known)) or 'none'})")
    bundle = Path(args.bundle) if args.bundle else BUNDLE_DIR
    if not (bundle / "models" / "model.pt").is_file():
        raise InputError(bundle, "no trained weights (models/model.pt); train with 'sjogrenus train' and pass --bundle")
    from .segmentation import USSegmenter

    segmenter = USSegmenter(bundle, runtime=args.runtime)  # loaded once for all images
    result = score_studies(studies, out, segmenter, system)
    print(f"wrote {result['patients']} patients to {out}"
          + (f" ({result['failed']} images skipped)" if result["failed"] else ""))
    return 0


def score_studies(studies, out: Path, segmenter, system: dict, progress: bool = True) -> dict:
    """Segment, measure and score each (patient_id, label, {site: path}[, reader entries]) study; writes ``out``.

    Images stream one at a time (memory flat in the cohort size); a failing image is skipped and noted.
    """
    from tqdm import tqdm

    from RheumImagingLib.imageio import read_image

    rows, failures = [], 0
    for pid, label, paths, *rest in tqdm(studies, desc="scoring", unit="patient", disable=not progress):
        results, notes = {}, []
        entries = rest[0] if rest else {}
        readers = entries.get("glands", {})
        for site, path in paths.items():
            try:
                image = read_image(path)
                r = analyse_image(site, image.pixels, image.spacing_mm, segmenter, system, reader=readers.get(site))
            except (InputError, ValueError, OSError) as e:
                failures += 1
                notes.append(f"{path}: skipped ({e})")
                tqdm.write(f"skipped {path}: {e}")
                continue
            results[r.site] = r
        rows.append(patient_row(pid, label, results, system, notes, thickness_mm=entries.get("thickness_mm")))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return {"patients": len(rows), "failed": failures}
