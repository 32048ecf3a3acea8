"""Reader agreement (``agreement`` in both command lines) against published examples and hand computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from RheumImagingLib.stats.agreement import bland_altman, icc_a1, weighted_kappa
from RheumTextureLib.rheumtexture_cli import main as rheumtexture
from SjogrenUSLib.sjogrenus_cli import main as sjogrenus

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(2,1) = 0.29.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
# irr's `anxiety` data (20 subjects x 3 raters), decoded from cran/irr data/anxiety.rda.
ANXIETY = np.array([[3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3],
                    [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4],
                    [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]]).T


def test_icc_a1_matches_shrout_fleiss_table_2():
    r = icc_a1(SHROUT_FLEISS)
    assert round(r["estimate"], 2) == 0.29
    # psych::ICC on the same table (Single_random_raters): F = 11.03 on 5 and 15 df, 95% CI 0.019 to 0.76
    assert r["F"] == pytest.approx(11.03, abs=0.005)
    assert r["ci95"] == pytest.approx([0.019, 0.76], abs=0.005)


def test_icc_a1_matches_irr_on_anxiety():
    # irr::icc(anxiety, model="twoway", type="agreement"): ICC(A,1) = 0.1979983, F(19, 39.74604) = 1.826772,
    # p = 0.05426568 (tidystats' irr tests); 95%-CI -0.039 < ICC < 0.494 (irr's printed example output)
    r = icc_a1(ANXIETY)
    assert r["estimate"] == pytest.approx(0.1979983, abs=1e-7)
    assert r["F"] == pytest.approx(1.826772, abs=1e-6) and r["df"] == pytest.approx([19, 39.74604], abs=1e-5)
    assert r["p"] == pytest.approx(0.05426568, abs=1e-7)
    assert r["ci95"] == pytest.approx([-0.039, 0.494], abs=5e-4)


def test_weighted_kappa_by_hand():
    # categories 1-3; pairs (1,1),(2,2),(3,3),(1,2),(2,3). Marginals (.4,.4,.2) and (.2,.4,.4).
    # linear weights 1, .5, 0: Po = 4/5, Pe = .56, kappa = .24/.44 = 6/11
    # quadratic weights 1, .75, 0: Po = .9, Pe = .68, kappa = .22/.32 = 11/16
    k = weighted_kappa([1, 2, 3, 1, 2], [1, 2, 3, 2, 3])
    assert k["kappa_linear"] == pytest.approx(6 / 11) and k["kappa_quadratic"] == pytest.approx(11 / 16)
    assert k["percent_agreement"] == pytest.approx(60.0)
    # irr weighs observed categories by rank: grades 0, 2, 4 behave as 1, 2, 3
    assert weighted_kappa([0, 2, 4, 0, 2], [0, 2, 4, 2, 4])["kappa_linear"] == pytest.approx(6 / 11)


def test_weighted_kappa_matches_irr_example():
    # irr's kappa2 documentation: kappa2(anxiety[,1:2], "squared") gives Kappa = 0.297
    assert round(weighted_kappa(ANXIETY[:, 0], ANXIETY[:, 1])["kappa_quadratic"], 3) == 0.297


def test_bland_altman_by_hand():
    # differences 1, -1, 3, 1: mean 1, SD sqrt(8/3)
    ba = bland_altman([1, 2, 3, 4], [2, 1, 6, 5])
    assert ba["bias"] == pytest.approx(1.0)
    assert ba["loa"] == pytest.approx([1 - 1.959964 * np.sqrt(8 / 3), 1 + 1.959964 * np.sqrt(8 / 3)], abs=1e-5)


def _long(matrix, measure, readers="ABCD"):
    return [(f"S{i}", readers[j], measure, v) for i, row in enumerate(matrix) for j, v in enumerate(row)]


@pytest.mark.parametrize("main", [sjogrenus, rheumtexture])
def test_agreement_command_writes_report(main, tmp_path):
    rows = _long(SHROUT_FLEISS, "thickness_mm") + _long([[1, 1], [2, 3], [3, 3], [1, 2], [2, 2]], "grade")
    rows.append(("S99", "A", "thickness_mm", 5.0))  # rated by one reader only: left out, counted
    csv = tmp_path / "readings.csv"
    pd.DataFrame(rows, columns=["subject", "reader", "measure", "value"]).to_csv(csv, index=False)
    assert main(["agreement", str(csv), "--out", str(tmp_path / "out"), "--ordinal", "grade"]) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())["measures"]
    t = rep["thickness_mm"]
    assert t["n_subjects"] == 6 and t["readers"] == list("ABCD") and t["n_subjects_incomplete"] == 1
    assert round(t["icc"]["estimate"], 2) == 0.29 and len(t["icc"]["ci95"]) == 2
    assert set(t["bland_altman"]["pairs"]) == {"B - A", "C - A", "D - A", "C - B", "D - B", "D - C"}
    assert set(rep["grade"]) >= {"kappa_linear", "kappa_quadratic", "percent_agreement"}
    assert rep["grade"]["percent_agreement"] == pytest.approx(60.0)
    assert (tmp_path / "out" / "bland_altman_thickness_mm.png").stat().st_size > 1000
    assert "ICC(A,1)" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("content,needle", [
    ("subject,reader,value\n1,A,2\n", "missing column(s) 'measure'"),
    ("subject,reader,measure,value\n1,A,m,2\n2,A,m,3\n", "one reader"),
    ("subject,reader,measure,value\n1,A,m,2\n1,B,m,two\n", "column 'value', row 2: 'two' is not a number"),
    ("subject,reader,measure,value\n1,A,m,2\n1,A,m,3\n", "row 2: reader 'A' already rated subject '1'"),
])
def test_agreement_bad_input_names_file_row_column(tmp_path, capsys, content, needle):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    assert sjogrenus(["agreement", str(csv), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and needle in err
    assert not (tmp_path / "out").exists()
