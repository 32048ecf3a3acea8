"""``sjogrenus score``: segment, measure and score ultrasound studies; one row per patient."""

from __future__ import annotations

import contextlib
import csv
import itertools
from pathlib import Path

from RheumImagingLib.annotations import measuring_spacing, spacing_option
from RheumImagingLib.cohort_folder import resolve_score_inputs, row_spacing
from RheumImagingLib.errors import InputError
from RheumImagingLib.imageio import read_image
from RheumImagingLib.prefetch import concurrently
from RheumImagingLib.runtime import add_runtime_option

from .patient import ROW_COLUMNS, SITES, analyse_image, patient_row
from .scoring import DEFAULT_SYSTEM, load_system, reader_criteria

IMAGE_COLUMNS = tuple(f"{site}_image" for site in SITES)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="segment and score ultrasound images: gland grades (0-16), mucosa score (0-2), thickness",
        description="A cohort folder or its COHORT.csv (as for training: patient_id,label and <site>_image, "
                    "<site>_annotation for the sites mucosa, parotid_left, parotid_right, submandibular_left, "
                    "submandibular_right; score needs patient_id and the image columns; paths relative to the "
                    "CSV), an images folder, or image FILES (each its own patient, site guessed from the "
                    "segmentation). Writes one row per patient with the columns 'sjogrenus analyze' reads. "
                    "Thickness is in mm only for calibrated images. Optional cohort columns: pixel_spacing_mm "
                    "(mm per pixel for images without calibration), thickness_mm (a caliper reading in mm; it "
                    "replaces the automatic value, recorded as user-given) and, per gland, <site>_<criterion> "
                    "(yes/no) for criteria the software does not measure (salaffi_0_4: echogenic_bands, "
                    "calcifications; omeract_0_3: fibrous_gland).")
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="a cohort folder, a cohort.csv, an images folder or image files (default: --cohort's)")
    parser.add_argument("--cohort", default=None,
                        help="cohort.csv giving each image's patient, site and label (patient_id,label, "
                             "<site>_image, <site>_annotation; optional pixel_spacing_mm, thickness_mm, "
                             "<site>_<criterion>; default: the one in or beside a given folder)")
    parser.add_argument("--bundle", default=None, help="trained sjogren_us_segmentation bundle folder "
                                                       "(default: the extension's copy)")
    parser.add_argument("--scoring-system", default=DEFAULT_SYSTEM,
                        help=f"scoring system name (salaffi_0_4, omeract_0_3) or a JSON file (default {DEFAULT_SYSTEM})")
    parser.add_argument("--pixel-spacing", type=spacing_option, default=None, metavar="MM",
                        help="mm per pixel for images without calibration (screenshots, JPEG/PNG exports; a cohort's "
                             "pixel_spacing_mm column overrides it per patient); recorded as user-given")
    parser.add_argument("--out", required=True, help="output scores CSV (not overwritten unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_runtime_option(parser)
    parser.set_defaults(func=_run)


_YES_NO = {"yes": True, "1": True, "true": True, "no": False, "0": False, "false": False, "": None}


def reader_entries(row: dict, cohort: Path, where: str) -> dict:
    """The reader's optional entries of one cohort row: ``thickness_mm`` (float), ``pixel_spacing_mm`` (when
    given) and, per gland site, {criterion: True/False} from columns ``<site>_<criterion>``; a bad value is an
    InputError."""
    out = {"thickness_mm": None, "glands": {}}
    spacing = row_spacing(row, cohort)
    if spacing:
        out["pixel_spacing_mm"] = spacing  # the user's, for images without calibration
    text = (row.get("thickness_mm") or "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 10.0:
            raise InputError(cohort, f"{where}: thickness_mm must be a thickness in mm (0-10), not {text!r}")
        out["thickness_mm"] = value
    for column, text in row.items():
        site = next((s for s in SITES[1:] if column and column.startswith(s + "_")
                     and column not in (f"{s}_image", f"{s}_annotation")), None)
        if site is None:
            continue
        key = (text or "").strip().lower()
        if key not in _YES_NO:
            raise InputError(cohort, f"{where}: column {column} must be yes or no, not {text!r}")
        out["glands"].setdefault(site, {})[column[len(site) + 1:]] = _YES_NO[key]
    return out


def studies_from_inputs(inputs: list[str], cohort: str | None = None) -> list[tuple[str, object, dict, dict]]:
    """(patient_id, label, {site or None: path}, reader entries) per patient, from what ``score`` was
    given (:func:`RheumImagingLib.cohort_folder.resolve_score_inputs`); an image the cohort does not
    list is its own patient, its site guessed from the segmentation."""
    given = resolve_score_inputs(inputs, cohort, IMAGE_COLUMNS)
    studies: dict[str, tuple[str, object, dict, dict]] = {}
    for image in given.images:
        row, column = given.rows.get(image.resolve(), (None, None))
        if row is None:
            studies[f"file:{image}"] = (image.stem, None, {None: image}, {})
            continue
        pid = row["patient_id"]
        if pid not in studies:
            studies[pid] = (pid, row.get("label", ""), {}, reader_entries(row, given.cohort, f"patient {pid}"))
        studies[pid][2][column[: -len("_image")]] = image
    return list(studies.values())


def _run(args) -> int:
    from .segmentation import BUNDLE_DIR

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(out, "already exists; choose another --out or pass --overwrite")
    system = load_system(args.scoring_system)
    studies = studies_from_inputs(args.inputs, args.cohort)
    known = set(reader_criteria(system))
    for pid, _, _, entries in studies:
        for site, found in entries.get("glands", {}).items():
            unknown = sorted(set(found) - known)
            if unknown:
                columns = ", ".join(f"{site}_{u}" for u in unknown)
                raise InputError(None, f"cohort patient {pid}: column(s) {columns} are not reader criteria "
                                 f"of {system['name']} (those are: {', '.join(sorted(known)) or 'none'})")
    bundle = Path(args.bundle) if args.bundle else BUNDLE_DIR
    if not (bundle / "models" / "model.pt").is_file():
        raise InputError(bundle, "no trained weights (models/model.pt); train with 'sjogrenus train' and pass --bundle")
    from .segmentation import USSegmenter

    print(f"scoring {len(studies)} patient(s), {sum(len(s[2]) for s in studies)} image(s)", flush=True)
    segmenter = USSegmenter(bundle, runtime=args.runtime)  # loaded once for all images
    result = score_studies(studies, out, segmenter, system, pixel_spacing_mm=args.pixel_spacing)
    print(f"wrote {result['patients']} patients to {out}"
          + (f" ({result['failed']} images skipped)" if result["failed"] else ""))
    return 0


def score_studies(studies, out: Path, segmenter, system: dict, progress=True,
                  pixel_spacing_mm: float | None = None) -> dict:
    """Segment, measure and score each (patient_id, label, {site: path}[, reader entries]) study; writes ``out``.

    ``pixel_spacing_mm`` (or the patient's cohort ``pixel_spacing_mm``) is used only for images without
    calibration; ``spacing_source`` says per patient which spacing the measurements used.

    Images stream through (memory flat in the cohort size), ``segmenter.images_at_once`` at a time, each read,
    segmented and measured in its own thread (``RheumImagingLib.prefetch.concurrently``, inside the segmenter's
    ``beside_other_images``); a failing image is skipped and noted. ``progress``: True for a console bar, False for
    none, or a ``progress(stage, fraction)`` callable.
    """
    from tqdm import tqdm

    def entries(study) -> dict:
        return study[3] if len(study) > 3 else {}

    def measure(task):
        study, site, path = task
        image = read_image(path)
        spacing, source = measuring_spacing(image, entries(study).get("pixel_spacing_mm") or pixel_spacing_mm)
        return source, analyse_image(site, image.pixels, spacing, segmenter, system,
                                     reader=entries(study).get("glands", {}).get(site), metadata=image.metadata)

    width = min(getattr(segmenter, "images_at_once", 1), sum(len(study[2]) for study in studies))
    images = concurrently(measure, ((study, site, path) for study in studies for site, path in study[2].items()),
                          width)
    rows, failures = [], 0
    report = progress if callable(progress) else None
    together = segmenter.beside_other_images() if width > 1 else contextlib.nullcontext()
    with together, contextlib.closing(images):
        for done, study in enumerate(tqdm(studies, desc="scoring", unit="patient",
                                          disable=not progress or report is not None)):
            if report:
                report("scoring", done / len(studies))
            results, notes, sources = {}, [], {}
            for (_, site, path), measured, error in itertools.islice(images, len(study[2])):
                if isinstance(error, (InputError, ValueError, OSError)):
                    failures += 1
                    notes.append(f"{path}: skipped ({error})")
                    tqdm.write(f"skipped {path}: {error}")
                    continue
                if error is not None:
                    raise error
                sources[site], r = measured
                results[r.site] = r
            rows.append(patient_row(*study[:2], results, system, notes,
                                    thickness_mm=entries(study).get("thickness_mm"), spacing_sources=sources))
    if report:
        report("scoring", 1.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return {"patients": len(rows), "failed": failures}
