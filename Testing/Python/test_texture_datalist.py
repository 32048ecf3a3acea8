"""The texture datalist from a cohort's annotations, on the one image path (README, contract C): prepared
.npy images from read_image, outlines from Slicer markups / segmentations, no PNG twins, no truth JSON."""

import json
import shutil

import numpy as np
import pytest
import torch

from RheumImagingLib.bundle import Bundle


def _cohort_copy(phantoms, dest, rows):
    """A cohort folder with only the listed images and their markups; ``rows``: (pid, image suffix, spacing)."""
    (dest / "images").mkdir(parents=True)
    lines = ["patient_id,label,image,annotation,pixel_spacing_mm"]
    for pid, suffix, spacing in rows:
        for name in (f"{pid}{suffix}", f"{pid}.mrk.json"):
            shutil.copy(phantoms / "images" / name, dest / "images" / name)
        label = 1 if pid.startswith("RA") else 0
        lines.append(f"{pid},{label},images/{pid}{suffix},images/{pid}.mrk.json,{spacing}")
    (dest / "cohort.csv").write_text("\n".join(lines) + "\n")
    return dest / "cohort.csv"


def test_network_input_is_identical_at_training_and_scoring_for_dicom_and_png(
        texture_datalist, texture_bundle_trained, tmp_path):
    """Training: the bundle's loader + validation transforms on the datalist item (prepared .npy). Scoring:
    TextureEnsemble.score on the array read_image decodes, with the spacing score_cli measures (the PNG's
    from the row's user-given pixel_spacing_mm, as its markups were drawn at 0.25 mm)."""
    from RheumImagingLib.annotations import measuring_spacing
    from RheumImagingLib.imageio import read_image
    from RheumTextureLib.datalist import build_datalist
    from RheumTextureLib.texture import TextureEnsemble

    phantoms = texture_datalist.parent / "phantoms"
    rows = [("RA0001", ".dcm", ""), ("RA0002", ".png", "0.25"), ("HC0001", ".dcm", ""), ("HC0002", ".png", "0.25")]
    cohort = _cohort_copy(phantoms, tmp_path / "cohort", rows)
    items = json.loads(build_datalist(cohort, tmp_path / "dl.json", n_folds=2).read_text())["training"]
    assert len(items) == 12 and all(it["image"].endswith(".npy") for it in items)
    assert all(it["spacing"] == [0.25, 0.25] for it in items)
    training = Bundle(texture_bundle_trained, "train", {"datalist": str(tmp_path / "dl.json")})
    transforms = training.get("validate#preprocessing")

    ensemble = TextureEnsemble(texture_bundle_trained, runtime="torch")
    seen = []

    def capture(x):
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 6)

    ensemble.network = capture
    for pid, suffix, spacing in rows:
        mine = [it for it in items if it["patient_id"] == pid]
        trained = torch.stack([torch.as_tensor(transforms(dict(it))["image"]) for it in mine])
        image = read_image(cohort.parent / "images" / f"{pid}{suffix}")
        ensemble.score(image.pixels, {it["bone"]: it["contour"] for it in mine},
                       measuring_spacing(image, float(spacing) if spacing else None)[0])
        assert trained.shape == (3, 1, 32, 32) and trained.std() > 0.5
        assert torch.equal(seen[-1], trained), pid


def test_outlines_drawn_any_way_give_the_phantom_truth_control_points(texture_datalist, tmp_path):
    """A curve started elsewhere and drawn the other way round, and the same bones as a labelmap, give the
    control points the phantom generated (its truth JSON, read here only to check), within a pixel."""
    from RheumImagingLib.annotations import ImageGeometry, read_curves, write_curves
    from RheumImagingLib.imageio import read_image
    from RheumTextureLib.datalist import build_datalist

    phantoms = texture_datalist.parent / "phantoms"
    pids = ["RA0001", "RA0002", "HC0001", "HC0002"]
    cohort = _cohort_copy(phantoms, tmp_path / "cohort", [(p, ".dcm", "") for p in pids])
    for pid in pids:
        markups = cohort.parent / "images" / f"{pid}.mrk.json"
        geometry = ImageGeometry.of_image(read_image(cohort.parent / "images" / f"{pid}.dcm"))
        curves = read_curves([markups], geometry)
        markups.unlink()
        write_curves(markups, {b: np.roll(xy[::-1], 13, axis=0) for b, xy in curves.items()}, geometry)
    items = json.loads(build_datalist(cohort, tmp_path / "dl.json", n_folds=2).read_text())["training"]
    for it in items:
        truth = json.loads((phantoms / "images" / f"{it['patient_id']}.json").read_text())["bones"][it["bone"]]
        assert np.abs(np.asarray(it["contour"]) - np.asarray(truth["contour"])).max() < 1.0


def test_training_works_on_a_phantom_cohort_without_png(texture_datalist, tmp_path):
    from RheumTextureLib.datalist import build_datalist
    from RheumTextureLib.texture import BUNDLE_DIR, train_folds

    phantoms = texture_datalist.parent / "phantoms"
    cohort = tmp_path / "cohort"
    shutil.copytree(phantoms, cohort, ignore=shutil.ignore_patterns("*.png", "*.json"))
    shutil.copy(phantoms / "cohort.csv", cohort / "cohort.csv")
    for markups in (phantoms / "images").glob("*.mrk.json"):
        shutil.copy(markups, cohort / "images" / markups.name)
    assert not list(cohort.rglob("*.png")) and not [p for p in cohort.rglob("*.json") if ".mrk" not in p.name]
    datalist = build_datalist(cohort / "cohort.csv", tmp_path / "out" / "dl.json")
    assert all(p.suffix == ".npy" for p in (tmp_path / "out" / "prepared").iterdir())
    trained = train_folds(BUNDLE_DIR, datalist, tmp_path / "out" / "bundle", config="demo", folds=[0],
                          overrides={"patch_size": 32, "max_epochs": 1, "val_interval": 1, "batch_size": 8})
    assert (trained / "models" / "model.pt").is_file()


def test_a_row_without_its_annotation_file_names_file_row_and_column(texture_datalist, tmp_path):
    from RheumImagingLib.errors import InputError
    from RheumTextureLib.datalist import build_datalist

    phantoms = texture_datalist.parent / "phantoms"
    pids = ("RA0001", "RA0002", "HC0001", "HC0002")
    cohort = _cohort_copy(phantoms, tmp_path / "cohort", [(p, ".dcm", "") for p in pids])
    (cohort.parent / "images" / "HC0001.mrk.json").unlink()
    with pytest.raises(InputError, match=r"HC0001\.mrk\.json: no such file \(listed in .* row 3 \(HC0001\), column "
                                         r"annotation\)"):
        build_datalist(cohort, tmp_path / "dl.json", n_folds=2)
