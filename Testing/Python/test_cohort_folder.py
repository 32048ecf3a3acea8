"""Reading a cohort.csv: every command that takes one names the file and what is wrong with it."""

from __future__ import annotations

import pytest

from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.errors import InputError


def test_rows_with_required_and_alternative_columns(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("patient_id,mucosa_image,label\nP1,images/P1.dcm,1\n")
    assert read_cohort(path, ("patient_id",), ("mucosa_image", "parotid_left_image")) == [
        {"patient_id": "P1", "mucosa_image": "images/P1.dcm", "label": "1"}]


@pytest.mark.parametrize("text, required, any_of, message", [
    (None, ("patient_id",), (), "cohort file not found"),
    ("id,image\nA,a.dcm\n", ("patient_id", "image"), (), "missing column(s) patient_id"),
    ("patient_id,label\nA,1\n", ("patient_id",), ("image", "mucosa_image"), "needs at least one of the columns image"),
    ("patient_id,image\n", ("patient_id", "image"), (), "no rows under the header"),
])
def test_bad_cohort_names_file_and_problem(tmp_path, text, required, any_of, message):
    path = tmp_path / "cohort.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError) as err:
        read_cohort(path, required, any_of)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("main_module", ["RheumTextureLib.rheumtexture_cli", "SjogrenUSLib.sjogrenus_cli"])
def test_score_with_a_missing_cohort_is_one_line_not_a_traceback(main_module, tmp_path, capsys):
    import importlib

    main = importlib.import_module(main_module).main
    missing = tmp_path / "absent.csv"
    argv = (["score", "--cohort", str(missing)] if main_module.startswith("Rheum") else ["score", str(missing)])
    assert main([*argv, "--out", str(tmp_path / "scores.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cohort file not found" in err and "Traceback" not in err


def test_annotation_cells_resolve_relative_to_the_cohort(tmp_path):
    from RheumImagingLib.cohort_folder import annotation_paths, row_file

    (tmp_path / "images").mkdir()
    for name in ("P1.dcm", "P1_MC2.mrk.json", "P1_MC3.mrk.json", "P2.seg.nrrd"):
        (tmp_path / "images" / name).write_text("x")
    cohort = tmp_path / "cohort.csv"
    row = {"patient_id": "P1", "image": "images/P1.dcm", "annotation": "images/P1_MC2.mrk.json; images/P1_MC3.mrk.json"}
    assert annotation_paths(cohort, 0, row, "annotation") == [tmp_path / "images/P1_MC2.mrk.json",
                                                              tmp_path / "images/P1_MC3.mrk.json"]
    assert row_file(cohort, 0, row, "image") == tmp_path / "images/P1.dcm"
    assert annotation_paths(cohort, 1, {"patient_id": "P2", "annotation": " "}, "annotation") == []  # score only
    assert annotation_paths(cohort, 1, {"mucosa_annotation": "images/P2.seg.nrrd"}, "mucosa_annotation") == [
        tmp_path / "images/P2.seg.nrrd"]


@pytest.mark.parametrize("column, cell, message", [
    ("annotation", "images/P1_MC2.mrk.json;images/gone.mrk.json",
     "gone.mrk.json: no such file (listed in {csv} row 3 (P1), column annotation)"),
    ("annotation", "images/P1.dcm", "P1.dcm: not an annotation file"),
    ("image", "images/absent.dcm", "absent.dcm: no such file (listed in {csv} row 3 (P1), column image)"),
])
def test_missing_annotation_or_image_names_file_row_and_column(tmp_path, column, cell, message):
    from RheumImagingLib.cohort_folder import annotation_paths, row_file

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "P1_MC2.mrk.json").write_text("{}")
    (tmp_path / "images" / "P1.dcm").write_text("x")
    cohort = tmp_path / "cohort.csv"
    read = annotation_paths if column == "annotation" else row_file
    with pytest.raises(InputError) as err:
        read(cohort, 2, {"patient_id": "P1", column: cell}, column)
    assert message.format(csv=cohort) in str(err.value)


def test_row_spacing_is_the_users_mm_per_pixel(tmp_path):
    from RheumImagingLib.cohort_folder import row_spacing

    assert row_spacing({"pixel_spacing_mm": "0.08"}) == 0.08
    assert row_spacing({"pixel_spacing_mm": ""}) is None and row_spacing({}) is None
    with pytest.raises(InputError, match=r"cohort.csv row 4, column pixel_spacing_mm: pixel spacing '0' must be"):
        row_spacing({"pixel_spacing_mm": "0"}, tmp_path / "cohort.csv", 3)
    with pytest.raises(InputError, match="is not a number"):
        row_spacing({"pixel_spacing_mm": "fine"})


@pytest.mark.parametrize("tool, main_module", [("rheumtexture", "RheumTextureLib.rheumtexture_cli"),
                                               ("sjogrenus", "SjogrenUSLib.sjogrenus_cli")])
def test_score_help_names_the_cohort_columns_of_the_readme(tool, main_module, capsys):
    """``score --help`` describes the cohort.csv that README's table "Columns of cohort.csv" documents."""
    import importlib
    import re

    from conftest import REPO

    row = next(line for line in (REPO / "README.md").read_text().splitlines() if f"(`{tool} train`)" in line)
    columns = {c for cell in re.findall(r"`([^`]+)`", row.split("|")[2]) for c in cell.split(",")}
    assert {"patient_id", "label", "pixel_spacing_mm"} <= columns, row  # the table was found
    with pytest.raises(SystemExit):
        importlib.import_module(main_module).main(["score", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert [c for c in columns if c not in shown] == []
