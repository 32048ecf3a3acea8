"""A cohort folder: ``cohort.csv`` + ``images/``, written by the phantom generators and read by
training and scoring (which also resolves what a user gives ``score`` into images and rows).

Why one home: both phantom generators must refuse to replace a user's cohort, write the
table atomically (a crash never leaves a half cohort.csv), and alternate cases and
controls with the same patient numbering; every reader must name the file and the missing
column the same way.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import InputError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def cohort_writer(outdir: str | os.PathLike, columns: list[str], *, overwrite: bool = False) -> Iterator[tuple[Path, csv.writer]]:
    """Yield (images folder, csv writer with the header written); cohort.csv appears only on success."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "exists and is not a folder")
    csv_path = outdir / "cohort.csv"
    images = outdir / "images"
    if not overwrite and (csv_path.exists() or (images.is_dir() and any(images.iterdir()))):
        raise InputError(outdir, "already holds a phantom cohort; pass --overwrite to replace it")
    images.mkdir(parents=True, exist_ok=True)
    partial = outdir / "cohort.csv.partial"
    try:
        with open(partial, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            yield images, writer
        os.replace(partial, csv_path)
    finally:
        partial.unlink(missing_ok=True)


def alternating_patients(n_patients: int, case_prefix: str) -> Iterator[tuple[int, int, str]]:
    """(index, label, patient id): cases (label 1) first, then alternating; ids count per group."""
    counters = {0: 0, 1: 0}
    for i in range(n_patients):
        label = 1 if i % 2 == 0 else 0
        counters[label] += 1
        yield i, label, f"{case_prefix if label else 'HC'}{counters[label]:04d}"


def read_cohort(path: str | os.PathLike, required: tuple[str, ...] = ("patient_id",),
                any_of: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The rows of a cohort.csv; ``required`` columns must all be there, and one of ``any_of``
    at least (image paths in the rows stay relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "cohort file not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    if any_of and not any(c in columns for c in any_of):
        raise InputError(path, f"needs at least one of the columns {', '.join(any_of)}")
    if not rows:
        raise InputError(path, "no rows under the header")
    return rows


#: Suffixes of an annotation cell: Slicer markups, segmentations and plain labelmaps.
ANNOTATION_SUFFIXES = (".mrk.json", ".json", ".seg.nrrd", ".nrrd", ".nii.gz", ".nii", ".png")
#: Optional column: mm per pixel for images without calibration (user-given).
SPACING_COLUMN = "pixel_spacing_mm"


def _where(cohort_csv, row_index: int, row: dict, column: str) -> str:
    patient = (row.get("patient_id") or "").strip()
    return f"listed in {cohort_csv} row {row_index + 1}" + (f" ({patient})" if patient else "") + f", column {column}"


def row_file(cohort_csv: str | os.PathLike, row_index: int, row: dict[str, str], column: str) -> Path | None:
    """The file a cell names (relative to cohort.csv), None for an empty cell; a missing or unreadable
    file raises InputError naming the file, the row (1 = first row under the header) and the column."""
    cell = (row.get(column) or "").strip()
    if not cell:
        return None
    return _readable(Path(cohort_csv).parent / cell, cohort_csv, row_index, row, column)


def _readable(path: Path, cohort_csv, row_index: int, row: dict, column: str) -> Path:
    if not path.is_file():
        raise InputError(path, f"no such file ({_where(cohort_csv, row_index, row, column)})")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(path, f"unreadable: {exc.strerror or exc} ({_where(cohort_csv, row_index, row, column)})"
                         ) from None
    return path


def annotation_paths(cohort_csv: str | os.PathLike, row_index: int, row: dict[str, str], column: str) -> list[Path]:
    """The annotation files of a cell: one, or several separated by ``;`` (one markups file per curve);
    empty for a row that is only scored. Each must exist and be a markups, segmentation or labelmap file."""
    cell = (row.get(column) or "").strip()
    paths = []
    for part in (p.strip() for p in cell.split(";")):
        if not part:
            continue
        path = Path(cohort_csv).parent / part
        if not path.name.lower().endswith(ANNOTATION_SUFFIXES):
            raise InputError(path, "not an annotation file (.mrk.json, .seg.nrrd, .nrrd, .nii.gz, .png) "
                                   f"({_where(cohort_csv, row_index, row, column)})")
        paths.append(_readable(path, cohort_csv, row_index, row, column))
    return paths


def row_spacing(row: dict[str, str], cohort_csv: str | os.PathLike | None = None, row_index: int | None = None
                ) -> float | None:
    """The row's user-given ``pixel_spacing_mm`` (used only for images without calibration), None when empty."""
    cell = (row.get(SPACING_COLUMN) or "").strip()
    if not cell:
        return None
    from .annotations import checked_spacing

    where = f"{cohort_csv} row {row_index + 1}, column {SPACING_COLUMN}" if cohort_csv and row_index is not None \
        else SPACING_COLUMN
    return checked_spacing(cell, where)


#: Files a folder of images is expanded to (DICOM may have no suffix).
IMAGE_SUFFIXES = (".dcm", ".dicom", "", ".tif", ".tiff", ".png")


@dataclass
class ScoreInputs:
    """What ``score`` was given, resolved: the images in order, the cohort.csv their labels come from
    (or None) and, per image (resolved path), its cohort row and the column that names it."""

    images: list[Path]
    cohort: Path | None = None
    rows: dict[Path, tuple[dict[str, str], str]] = field(default_factory=dict)


def resolve_score_inputs(inputs: list[str], cohort: str | os.PathLike | None = None,
                         image_columns: tuple[str, ...] = ("image",)) -> ScoreInputs:
    """What a user naturally gives ``score``: a cohort folder (its cohort.csv lists the images), a
    cohort.csv, an images folder, image files, or only ``--cohort``.

    The cohort is ``cohort``, else a cohort.csv given as input, or one in or beside a given folder
    that lists its images. With a cohort, a folder stands for the cohort's images in it (other
    files, such as a DICOM's PNG twin, are left out); an image the cohort does not list is scored
    without a label (a warning says so); none of them listed is a mismatch, reported with what was
    found and what the cohort expects. Without a cohort, files of one name differing only by
    suffix are one image (the first of :data:`IMAGE_SUFFIXES`, DICOM before PNG).
    """
    cohort_path = Path(cohort) if cohort else None
    given: list[Path] = []     # images named one by one
    folders: list[Path] = []   # folders holding images
    sources: list[str] = []    # what was given, for messages
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and not path.is_dir():
            cohort_path = _one_cohort(cohort_path, path)  # read (or found missing) below
        elif path.is_file():
            given.append(path)
            sources.append(str(path))
        elif path.is_dir():
            sources.append(str(path))
            if _image_files(path):
                folders.append(path)
            elif (path / "cohort.csv").is_file():
                folder_cohort = path / "cohort.csv"
                if cohort_path is None or folder_cohort.resolve() == cohort_path.resolve():
                    cohort_path = folder_cohort
                else:  # a cohort folder checked against another cohort: its listed images
                    given += [image for image, _ in _listed(folder_cohort, image_columns).values()]
            else:
                raise InputError(path, "no images (" + ", ".join(s or "no suffix" for s in IMAGE_SUFFIXES)
                                 + ") and no cohort.csv in this folder" + _subfolder_hint(path))
        else:
            raise InputError(path, "no such file or folder")
    if cohort_path is None:
        cohort_path = next((table for f in folders for table in (f / "cohort.csv", f.parent / "cohort.csv")
                            if table.is_file() and _lists_any(table, f, image_columns)), None)
    if cohort_path is None:
        images = given + [image for folder in folders for image in _one_per_stem(_image_files(folder))]
        if not images:
            raise InputError(None, "give images (files or folders), a cohort folder or a cohort.csv")
        return ScoreInputs(images)
    listed = _listed(cohort_path, image_columns)
    if not given and not folders:
        present = [key for key, (image, _) in listed.items() if image.is_file()]
        if not present:
            example = next(iter(listed.values()))[0]
            raise InputError(cohort_path, f"lists {len(listed)} image(s) but none is there (e.g. {example})")
        return ScoreInputs([image for image, _ in listed.values()], cohort_path,
                           {key: where for key, (_, where) in listed.items()})
    in_folders = [f for folder in folders for f in _image_files(folder) if f.resolve() in listed]
    images = [*given, *in_folders]
    known = [image for image in images if image.resolve() in listed]
    if not known:
        found = given + [f for folder in folders for f in _one_per_stem(_image_files(folder))]
        where = ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "")
        expected = sorted({str(image.parent) for image, _ in listed.values()})
        raise InputError(cohort_path, f"lists none of the {len(found)} image(s) found in {where} "
                                      f"(e.g. {found[0].name}); it expects its {len(listed)} image(s) in "
                                      + ", ".join(expected[:3]))
    unlisted = [image for image in images if image.resolve() not in listed]
    if unlisted:
        log.warning("%d image(s) not in %s, scored without a label: %s", len(unlisted), cohort_path,
                    ", ".join(str(p) for p in unlisted[:3]) + (" ..." if len(unlisted) > 3 else ""))
    return ScoreInputs(images, cohort_path, {key: where for key, (_, where) in listed.items()})


def _one_cohort(current: Path | None, path: Path) -> Path:
    if current is not None and current.resolve() != path.resolve():
        raise InputError(path, f"a second cohort table; the cohort is already {current}")
    return path


def cohort_images(cohort: str | os.PathLike, image_columns: tuple[str, ...] = ("image",)
                  ) -> dict[Path, tuple[dict[str, str], str]]:
    """resolved image path -> (its cohort row, the column naming it), in the table's order."""
    cohort = Path(cohort)
    return {(cohort.parent / row[column].strip()).resolve(): (row, column)
            for row in read_cohort(cohort, ("patient_id",), image_columns)
            for column in image_columns if (row.get(column) or "").strip()}


def _listed(cohort: Path, image_columns: tuple[str, ...]) -> dict[Path, tuple[Path, tuple[dict[str, str], str]]]:
    """resolved image path -> (the path as the table gives it, relative to its folder; (row, column))."""
    return {key: (cohort.parent / row[column].strip(), (row, column))
            for key, (row, column) in cohort_images(cohort, image_columns).items()}


def _lists_any(cohort: Path, folder: Path, image_columns: tuple[str, ...]) -> bool:
    listed = cohort_images(cohort, image_columns)
    return any(f.resolve() in listed for f in _image_files(folder))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _one_per_stem(files: list[Path]) -> list[Path]:
    """Files that differ only by suffix are one image: keep the earliest of IMAGE_SUFFIXES."""
    best: dict[Path, Path] = {}
    for f in files:
        key = f.with_suffix("")
        if key not in best or IMAGE_SUFFIXES.index(f.suffix.lower()) < IMAGE_SUFFIXES.index(best[key].suffix.lower()):
            best[key] = f
    return sorted(best.values())


def _subfolder_hint(folder: Path) -> str:
    cohorts = [d for d in sorted(folder.iterdir()) if d.is_dir() and (d / "cohort.csv").is_file()]
    return f" ({cohorts[0]} is a cohort folder: give that one)" if cohorts else ""
