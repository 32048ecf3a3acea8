"""One results model, tables as views: the module logic and the command line render the same rows
from the same typed results (no re-parsing of rounded table text)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from RheumImagingLib.results import qc_text, qc_warning

SPACING = 0.09501  # 4 rows of epithelium = 0.38004 mm, just above the 0.38 mm cut-off (shown as 0.3800)


class FlatMucosaSegmenter:
    """Stands in for the network: a flat epithelium 4 rows thick over submucosa."""

    def predict(self, pixels):
        labels = np.zeros(np.shape(pixels), np.uint8)
        labels[20:24] = 1
        labels[24:] = 2
        return labels

    def provenance(self):
        return {"bundle": "flat mucosa (test)"}


def test_module_and_command_line_give_identical_rows_for_a_0_38004_mm_mucosa(scene, tmp_path):
    from RheumImagingLib.dicom_write import write_dicom
    from SjogrenUSLib.logic import SjogrenUSLogic
    from SjogrenUSLib.phantom import _us_regions, render_mucosa
    from SjogrenUSLib.score_cli import score_studies
    from SjogrenUSLib.scoring import load_system

    pixels, _, _ = render_mucosa(7, 0.38, "homogeneous", SPACING, (96, 96))
    path = tmp_path / "P1_mucosa.dcm"
    write_dicom(path, pixels, modality="US", entropy=["results-model"], patient_id="P1",
                elements={"SequenceOfUltrasoundRegions": _us_regions(pixels.shape, SPACING)})
    system = load_system()
    out = tmp_path / "scores.csv"
    score_studies([("P1", 1, {"mucosa": path})], out, FlatMucosaSegmenter(), system, progress=False)
    with open(out, newline="") as f:
        (cli_row,) = list(csv.DictReader(f))

    logic = SjogrenUSLogic(scene, FlatMucosaSegmenter())
    table = logic.process_patient({"mucosa": logic.load_ultrasound(path)}, "P1", label=1)
    module_row = {k: str(v) for k, v in logic.patient_row(table).items()}

    assert module_row == cli_row
    # 4 x 0.09501 = 0.38004 mm > 0.38: the thickness point is not given, although both views show 0.38
    echo_point = int(cli_row["echogenicity"] == "heterogeneous_hyperechoic")
    assert cli_row["thickness_mm"] == "0.38" and cli_row["mucosa_score"] == str(echo_point)
    assert logic.results(table)["mucosa"]["thickness_mm"] == "0.3800"
    assert logic.results(table)["mucosa_score"]["grade"] == str(echo_point)
    # a correction changes the model; the re-rendered table and row still agree with each other
    logic.override_echogenicity(table, "heterogeneous_hyperechoic")
    assert logic.patient_row(table)["mucosa_score"] == 1 == int(logic.results(table)["mucosa_score"]["grade"])


def test_qc_column_and_warning():
    assert qc_text([]) == "ok" and qc_text(["spacing unknown", "not a hand"]) == "spacing unknown;not a hand"
    assert qc_warning(["ok", "ok", ""]) is None
    assert qc_warning(["ok", "spacing unknown;flipped", "spacing unknown"]) == (
        "Check before use: spacing unknown; flipped")
