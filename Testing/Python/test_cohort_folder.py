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


@pytest.mark.parametrize("main_module", ["RheumTextureLib.cli", "SjogrenUSLib.cli"])
def test_score_with_a_missing_cohort_is_one_line_not_a_traceback(main_module, tmp_path, capsys):
    import importlib

    main = importlib.import_module(main_module).main
    missing = tmp_path / "absent.csv"
    argv = (["score", "--cohort", str(missing)] if main_module.startswith("Rheum") else ["score", str(missing)])
    assert main([*argv, "--out", str(tmp_path / "scores.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cohort file not found" in err and "Traceback" not in err
