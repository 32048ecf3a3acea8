"""``sjogrenus score``/``train``: registration, rows for analyze, bad input never overwrites."""

import numpy as np
import pytest

from RheumImagingDemo.us_phantom import GLANDS, mucosa_score as true_mucosa_score, render_gland, render_mucosa
from RheumImagingLib.errors import InputError
from SjogrenUSLib.patient import ROW_COLUMNS, analyse_image, patient_row
from SjogrenUSLib.score_cli import reader_entries
from SjogrenUSLib.scoring import grade_gland, load_system
from SjogrenUSLib.sjogrenus_cli import main


def test_score_and_train_are_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "score" in out and "train" in out


def test_patient_row_from_truth_labels_matches_phantom_scores():
    system = load_system()
    px, lab, t = render_mucosa(41, 0.3, "heterogeneous_hyperechoic")
    results = {"mucosa": analyse_image("mucosa", px, t["spacing_mm"], None, system, labels=lab)}
    truth = {}
    for site, g in zip(GLANDS, (4, 2, 3, 0)):
        px, lab, t = render_gland(40 + g, site, g)
        results[site] = analyse_image(site, px, t["spacing_mm"], None, system, labels=np.where(lab == 4, 3, lab))
        truth[site] = grade_gland([f["diameter_mm"] for f in t["foci"]], system)  # Salaffi grade of the true foci
    row = patient_row("P1", 1, results, system)
    assert set(row) == set(ROW_COLUMNS)
    assert [row[f"grade_{s}"] for s in GLANDS] == [truth[s] for s in GLANDS]
    gland = sum(truth.values())
    assert row["label"] == 1 and row["gland_score"] == gland
    assert row["mucosa_score"] == true_mucosa_score(0.3, "heterogeneous_hyperechoic") == 2
    assert row["modified_score"] == gland + 2 and row["gland_positive"] == int(gland >= 6)
    assert abs(row["thickness_mm"] - 0.3) <= 0.03 and row["thickness_source"] == "automatic"
    assert "echogenic_bands not entered" in row["notes"]


def test_caliper_thickness_replaces_the_automatic_value_and_is_recorded():
    system = load_system()
    px, lab, t = render_mucosa(43, 0.3, "homogeneous")
    results = {"mucosa": analyse_image("mucosa", px, t["spacing_mm"], None, system, labels=lab)}
    row = patient_row("P2", 1, results, system, thickness_mm=0.45)
    assert row["thickness_mm"] == 0.45 and row["thickness_source"] == "user" and row["mucosa_score"] == 0
    assert "thickness given by the user (automatic: 0.29" in row["notes"] or "(automatic: 0.30" in row["notes"]
    assert patient_row("P2", 1, results, system)["mucosa_score"] == 1  # automatic 0.3 mm <= 0.38


def test_cohort_reader_columns(tmp_path):
    cohort = tmp_path / "cohort.csv"
    row = {"patient_id": "P1", "thickness_mm": "0.41", "parotid_left_echogenic_bands": "no",
           "parotid_left_image": "a.dcm", "submandibular_right_calcifications": "yes", "parotid_right_echogenic_bands": ""}
    assert reader_entries(row, cohort, "row 1") == {"thickness_mm": 0.41, "glands": {
        "parotid_left": {"echogenic_bands": False}, "submandibular_right": {"calcifications": True},
        "parotid_right": {"echogenic_bands": None}}}
    row = {"patient_id": "P1", "parotid_left_annotation": "a.seg.nrrd", "pixel_spacing_mm": "0.05"}
    assert reader_entries(row, cohort, "row 1") == {"thickness_mm": None, "glands": {}, "pixel_spacing_mm": 0.05}
    with pytest.raises(InputError, match="row 3: thickness_mm"):
        reader_entries({"thickness_mm": "thin"}, cohort, "row 3")
    with pytest.raises(InputError, match="must be yes or no"):
        reader_entries({"parotid_left_calcifications": "maybe"}, cohort, "row 1")


def test_uncalibrated_single_mucosa_image_row_says_unavailable():
    system = load_system()
    px, lab, _ = render_mucosa(42, 0.4, "homogeneous")
    row = patient_row("img", None, {"mucosa": analyse_image(None, px, None, None, system, labels=lab)}, system)
    assert row["thickness_mm"] == "" and row["thickness_status"] == "unavailable" and "uncalibrated" in row["notes"]
    assert row["gland_score"] == "" and row["echogenicity"] == "homogeneous"


def test_score_bad_inputs_exit_2_and_keep_existing_output(tmp_path, capsys):
    assert main(["score", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "s.csv")]) == 2
    out = tmp_path / "s.csv"
    out.write_text("mine")
    assert main(["score", str(tmp_path / "x.dcm"), "--out", str(out)]) == 2
    assert out.read_text() == "mine"
    assert "already exists" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    assert main(["train", "--cohort", str(tmp_path / "c.csv"), "--out", str(busy)]) == 2


def test_score_reads_caliper_and_reader_columns_from_the_cohort(us_segmentation_trained, tmp_path):
    import csv

    assert main(["phantom", str(tmp_path / "c"), "--patients", "1", "--seed", "21"]) == 0
    cohort = tmp_path / "c" / "cohort.csv"
    with open(cohort, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(thickness_mm="0.52", parotid_left_echogenic_bands="no")
    with open(cohort, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "scores.csv"
    assert main(["score", str(cohort), "--bundle", str(us_segmentation_trained), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        row = next(csv.DictReader(f))
    assert row["thickness_mm"] == "0.52" and row["thickness_source"] == "user"
    assert "parotid_left: echogenic_bands" not in row["notes"]  # entered by the reader
    assert "parotid_right: echogenic_bands not entered by a reader" in row["notes"]
    # a criterion the chosen system does not have is refused, naming the column
    assert main(["score", str(cohort), "--bundle", str(us_segmentation_trained), "--out", str(tmp_path / "o.csv"),
                 "--scoring-system", "omeract_0_3"]) == 2
