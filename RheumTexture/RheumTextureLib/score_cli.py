"""``rheumtexture score``: texture scores of a batch of hand radiographs.

Models are loaded once; images stream one at a time (memory flat in the batch size), the next one read and oriented
beside this one's networks. A failing image is reported and skipped. Writes three tables: ``--out`` per patient (the
columns ``rheumtexture analyze`` reads), ``<stem>_images.csv`` per image and
``<stem>_bones.csv`` per bone with each fold's probability and its ``qc``. ``in_training`` says whether the
radiograph file (sha256) is one the bundle was trained on (``yes``/``no``; empty when the bundle
records no training list): scores of training images are not held-out evidence.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from RheumImagingLib.annotations import measuring_spacing, spacing_option
from RheumImagingLib.cohort_folder import cohort_images, resolve_score_inputs, row_spacing
from RheumImagingLib.errors import InputError
from RheumImagingLib.runtime import add_runtime_option

from . import results
from .logic import STUDY_THRESHOLD
from .results import HandResult

log = logging.getLogger(__name__)


def cohort_by_image(path: Path) -> dict[Path, dict]:
    """cohort.csv rows keyed by resolved image path (patient_id, label, age, sex)."""
    return {image: row for image, (row, _) in cohort_images(path, ("image",)).items()}


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def score_images(images: list[Path], out: Path, *, bundle=None, cohort: Path | None = None,
                 scene_dir: Path | None = None, threshold: float = STUDY_THRESHOLD, progress=True,
                 runtime: str = "auto", scorer=None, pixel_spacing_mm: float | None = None) -> dict:
    """Score every image; returns counts and the paths written.

    ``pixel_spacing_mm`` (or a cohort row's ``pixel_spacing_mm``) is used only for images without
    calibration; each image row says which spacing was used (``spacing_source``).

    ``scorer``: a loaded :class:`HandScorer` to reuse (else one is loaded from ``bundle`` with ``runtime``).
    ``progress``: True for a console bar, False for none, or a ``progress(stage, fraction)`` callable.
    """
    from tqdm import tqdm

    from RheumImagingLib.prefetch import ahead

    from .pipeline import HandScorer

    outputs = [out, out.with_name(out.stem + "_images.csv"), out.with_name(out.stem + "_bones.csv")]
    if scene_dir is not None and scene_dir.exists() and any(scene_dir.iterdir()):
        raise InputError(scene_dir, "scene folder is not empty; choose a new one")
    existing = [str(p) for p in outputs if p.exists()]
    if existing:
        raise InputError(existing[0], "already exists; choose another --out")
    known = cohort_by_image(cohort) if cohort else {}
    scorer = scorer or HandScorer(bundle, runtime=runtime)
    training = scorer.training_images()
    bone_rows, image_rows, failures, hands = [], [], [], {}
    report = progress if callable(progress) else None
    # the next radiograph is read and oriented beside this one's networks (RheumImagingLib.prefetch)
    prepare = _read_and_orient if scene_dir is None else lambda path: None
    for done, (path, prepared, unreadable) in enumerate(tqdm(
            ahead(prepare, images), total=len(images), desc="scoring", unit="image",
            disable=not progress or report is not None, file=sys.stderr)):
        if report:
            report("scoring", done / len(images))
        try:
            user_mm = row_spacing(known.get(path.resolve(), {}), cohort) or pixel_spacing_mm
            if unreadable is not None:
                raise unreadable
            if scene_dir is None:
                image, orientation = prepared
                meta = image.metadata
                spacing, spacing_source = measuring_spacing(image, user_mm)
                result = scorer.analyse(image.pixels, spacing, meta, orientation=orientation)
                hand = HandResult.from_scores(result["scores"], threshold, result["qc"],
                                              result["orientation"].describe(), spacing_source, result["bone_qc"])
            else:
                meta, hand = _score_into_scene(scorer, path, scene_dir, threshold, user_mm)
        except InputError as exc:
            failures.append((path, str(exc)))
            log.info("skipped %s", exc)
            continue
        except Exception as exc:  # a broken image must not stop a cohort run
            failures.append((path, f"{exc.__class__.__name__}: {exc}"))
            log.info("skipped %s: %s", path, exc)
            continue
        row = known.get(path.resolve(), {})
        ident = {"patient_id": row.get("patient_id") or meta.get("PatientID") or path.stem,
                 "label": row.get("label", ""),
                 "age": row.get("age") or _text(meta.get("PatientAge")),
                 "sex": row.get("sex") or meta.get("PatientSex") or ""}
        bone_rows.extend(results.bone_rows(hand, ident, str(path)))
        image_rows.append(results.image_row(hand, ident, str(path), _in_training(path, training)))
        hands.setdefault(ident["patient_id"], []).append((hand, image_rows[-1]))
    if report:
        report("scoring", 1.0)
    patient_rows = [results.patient_row([h for h, _ in scored], scored[0][1],
                                        _any_in_training([r["in_training"] for _, r in scored]))
                    for scored in hands.values()]
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, rows in zip(outputs, (patient_rows, image_rows, bone_rows)):
        _write_csv(path, rows)
    for path, reason in failures:
        print(f"rheumtexture score: skipped {path}: {reason}", file=sys.stderr)
    return {"scored": len(image_rows), "failed": len(failures), "outputs": [p for p in outputs if p.exists()]}


def _read_and_orient(path: Path):
    """The radiograph and its orientation (:func:`HandScorer.analyse` would find the same)."""
    from RheumImagingLib.imageio import read_image

    from .orientation import detect

    image = read_image(path)
    return image, detect(image.pixels, image.metadata)


def _in_training(path: Path, training: dict | None) -> str:
    if training is None:
        return ""
    from RheumImagingLib.bundle import sha256_of

    return "yes" if sha256_of(path) in training else "no"


def _any_in_training(flags: list[str]) -> str:
    """A patient is in training when any of its radiographs is."""
    return "yes" if "yes" in flags else "" if "" in flags else "no"


def _text(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _score_into_scene(scorer, path: Path, scene_dir: Path, threshold: float, pixel_spacing_mm: float | None = None):
    """Score through the module logic and save the same MRML result the Slicer module makes."""
    from RheumImagingLib.annotations import set_user_spacing
    from RheumImagingLib.scene import new_scene, save_scene

    from .logic import RheumTextureLogic

    scene = new_scene()
    logic = RheumTextureLogic(scene, scorer=scorer)
    volume = logic.load_radiograph(path)
    if pixel_spacing_mm:
        set_user_spacing(volume, pixel_spacing_mm)
    logic.process(volume, threshold=threshold)
    names = volume.GetAttributeNames() or ()
    meta = {n.split(".", 1)[1]: volume.GetAttribute(n) for n in names if n.startswith("RheumImaging.")}
    save_scene(scene, scene_dir / _safe(f"{meta.get('PatientID') or path.stem}_{path.stem}"))
    return meta, logic.hand_result(volume)


def run(args) -> int:
    given = resolve_score_inputs(args.inputs, args.cohort, ("image",))
    print(f"scoring {len(given.images)} radiograph(s)"
          + (f", labels from {given.cohort}" if given.cohort else " (no cohort: no labels)"), flush=True)
    result = score_images(given.images, Path(args.out), bundle=args.bundle, cohort=given.cohort,
                          scene_dir=Path(args.scene_dir) if args.scene_dir else None, threshold=args.threshold,
                          progress=not args.no_progress, runtime=args.runtime, pixel_spacing_mm=args.pixel_spacing)
    print(f"scored {result['scored']} image(s), skipped {result['failed']}; wrote "
          + ", ".join(str(p) for p in result["outputs"])
          + (f"; scenes in {args.scene_dir}" if args.scene_dir else ""))
    return 0 if result["scored"] else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser("score", help="texture scores of radiographs (per bone, image and patient)",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="a cohort folder (its cohort.csv lists the images), a cohort.csv, an images folder or "
                             "radiograph files (default: --cohort's images)")
    parser.add_argument("--out", required=True, help="per-patient scores CSV (the input of `rheumtexture analyze`)")
    parser.add_argument("--bundle", default=None, help="folder holding the metacarpal_contour and ra_bone_texture "
                                                       "bundles (default: the extension's monai_bundle/)")
    parser.add_argument("--cohort", default=None,
                        help="cohort.csv as for training (patient_id,label,image,annotation; optional "
                             "age,sex,pixel_spacing_mm; score needs only patient_id and image) to copy labels, age "
                             "and sex from (default: the one in or beside a given folder)")
    parser.add_argument("--scene-dir", default=None, help="also save one MRML scene per image into this new folder")
    parser.add_argument("--threshold", type=float, default=STUDY_THRESHOLD, help="study threshold (default 0.43)")
    parser.add_argument("--pixel-spacing", type=spacing_option, default=None, metavar="MM",
                        help="mm per pixel for images without calibration (JPEG/PNG exports; a cohort's "
                             "pixel_spacing_mm column overrides it per image); recorded as user-given")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_option(parser)
    parser.set_defaults(func=run)
