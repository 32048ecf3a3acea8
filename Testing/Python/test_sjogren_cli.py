"""``sjogrenus score``/``train``: registration, rows for analyze, bad input never overwrites."""

import numpy as np
import pytest

from SjogrenUSLib.cli import main
from SjogrenUSLib.patient import ROW_COLUMNS, analyse_image, patient_row
from SjogrenUSLib.phantom import GLANDS, mucosa_score as true_mucosa_score, render_gland, render_mucosa
from SjogrenUSLib.scoring import load_system


def test_score_and_train_are_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "score" in out and "train" in out


def test_patient_row_from_truth_labels_matches_phantom_scores():
    system = load_system()
    px, lab, t = render_mucosa(41, 0.3, "heterogeneous_hyperechoic")
    results = {"mucosa": analyse_image("mucosa", px, t["spacing_mm"], None, system, labels=lab)}
    grades = (4, 2, 3, 0)
    for site, g in zip(GLANDS, grades):
        px, lab, t = render_gland(40 + g, site, g)
        results[site] = analyse_image(site, px, t["spacing_mm"], None, system, labels=np.where(lab == 4, 3, lab))
    row = patient_row("P1", 1, results, system)
    assert set(row) == set(ROW_COLUMNS)
    assert row["label"] == 1 and row["gland_score"] == 9 and row["mucosa_score"] == true_mucosa_score(0.3, "heterogeneous_hyperechoic")
    assert row["modified_score"] == 11 and row["gland_positive"] == 1 and row["modified_positive"] == 1
    assert abs(row["thickness_mm"] - 0.3) <= 0.03


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
