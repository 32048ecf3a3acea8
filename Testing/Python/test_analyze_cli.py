"""``rheumtexture analyze`` and ``sjogrenus analyze``: report contracts, the published Sjogren figures, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from RheumTextureLib.cli import main as rheumtexture
from SjogrenUSLib.cli import main as sjogrenus


def _sjogren_cohort() -> pd.DataFrame:
    """53 pSS and 44 controls with score counts chosen to give the abstract's figures.

    0-16 gland score, cut-off 6: 43/53 cases >= 6 (81.1%), 38/44 controls < 6 (86.4%);
    modified 0-18 score (gland + mucosa), cut-off 7: 42/53 cases >= 7 (79.2%), 42/44 controls < 7 (95.5%).
    """
    rows = []  # (label, gland, mucosa)
    controls = [0] * 7 + [1] * 7 + [2] * 8 + [3] * 8 + [4] * 5 + [5] * 3          # 38 below 6
    rows += [(0, g, 0) for g in controls] + [(0, 6, 0)] * 4 + [(0, 9, 1)] * 2      # 4 at 6 (0-18: 6), 2 high
    rows += [(1, 6, 1)] * 6 + [(1, 6, 0)]                                            # gland 6: 6 reach 7 on 0-18
    high = [7] * 6 + [8] * 8 + [9] * 8 + [10] * 6 + [11] * 4 + [12] * 4              # 36 clearly high
    rows += [(1, g, i % 3) for i, g in enumerate(high)]
    rows += [(1, 5, 0)] + [(1, 4, 1)] * 3 + [(1, 3, 0)] * 3 + [(1, 2, 0)] * 3        # 10 below 6, all < 7 on 0-18
    rng = np.random.default_rng(7)
    df = pd.DataFrame(rows, columns=["label", "gland_score", "mucosa_score"])
    df.insert(0, "patient_id", [f"P{i:03d}" for i in range(len(df))])
    df["thickness_mm"] = np.round(np.where(df.label == 1, rng.normal(0.34, 0.05, len(df)),
                                           rng.normal(0.45, 0.05, len(df))).clip(0.15), 3)
    return df


def test_sjogren_analysis_reproduces_published_cutoffs(tmp_path):
    scores = tmp_path / "scores.csv"
    cohort = _sjogren_cohort()
    assert (cohort.label == 1).sum() == 53 and (cohort.label == 0).sum() == 44
    cohort.to_csv(scores, index=False)
    assert sjogrenus(["analyze", str(scores), "--out", str(tmp_path / "out")]) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    s18, s16 = rep["systems"]["0-18"], rep["systems"]["0-16"]
    assert s18["cutoff"] == 7 and s18["tied_cutoffs"] == [7]
    assert round(100 * s18["sensitivity"]["estimate"], 1) == 79.2 and round(100 * s18["specificity"]["estimate"], 1) == 95.5
    assert s16["cutoff"] == 6 and s16["tied_cutoffs"] == [6]
    assert round(100 * s16["sensitivity"]["estimate"], 1) == 81.1 and round(100 * s16["specificity"]["estimate"], 1) == 86.4
    for system in (s16, s18):
        assert set(system) >= {"auroc", "cutoff", "sensitivity", "specificity"}
        lo, hi = system["sensitivity"]["ci95"]
        assert lo < system["sensitivity"]["estimate"] < hi
        assert 0.5 < system["auroc"]["estimate"] < 1 and len(system["auroc"]["ci95"]) == 2
    assert set(rep["auroc_comparison"]) >= {"method", "z", "p"} and "DeLong" in rep["auroc_comparison"]["method"]
    th = rep["thickness"]
    assert set(th) >= {"mann_whitney", "median_iqr", "cutoff_mm", "sensitivity", "specificity"}
    assert set(th["mann_whitney"]) >= {"U", "p"} and th["mann_whitney"]["p"] < 1e-6
    assert th["median_iqr"]["cases"]["median"] < th["median_iqr"]["controls"]["median"]
    assert 0.3 < th["cutoff_mm"] < 0.45
    for name in ("report.html", "roc.png", "thickness_roc.png"):
        assert (tmp_path / "out" / name).stat().st_size > 500
    assert "Wilson" in (tmp_path / "out" / "report.html").read_text()


def _ra_cohort(n=166, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for label, mean in ((1, 0.49), (0, 0.42)):
        for i in range(n):
            pid = f"{'RA' if label else 'C'}{i:03d}"
            age, sex = int(rng.integers(30, 80)), rng.choice(["F", "M"], p=[0.7, 0.3])
            for _bone in range(3):   # three metacarpals per patient, aggregated to one row
                rows.append((pid, label, age, sex, float(np.clip(rng.normal(mean, 0.12), 0, 1))))
    return pd.DataFrame(rows, columns=["patient_id", "label", "age", "sex", "score"])


def test_ra_analysis_report_structure_and_estimates(tmp_path):
    scores = tmp_path / "scores.csv"
    _ra_cohort().to_csv(scores, index=False)
    out = tmp_path / "out"
    assert rheumtexture(["analyze", str(scores), "--out", str(out), "--threshold", "0.45"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_cases"] == 166 and rep["n_controls"] == 166 and rep["n_rows"] == 996
    a = rep["auroc"]
    assert 0.6 < a["estimate"] < 0.85 and a["ci95"][0] < a["estimate"] < a["ci95"][1]
    assert rep["mean_score"]["cases"]["mean"] == pytest.approx(0.49, abs=0.02)
    assert rep["mean_score"]["controls"]["mean"] == pytest.approx(0.42, abs=0.02)
    assert set(rep["mean_score"]["cases"]) >= {"mean", "ci95"}
    assert set(rep["group_test"]) >= {"test", "p"} and rep["group_test"]["p"] < 1e-3
    o = rep["odds_ratio"]
    assert set(o) >= {"threshold", "estimate", "ci95", "p", "adjusted_for"}
    assert o["threshold"] == 0.45 and o["adjusted_for"] == ["age", "sex"]
    assert o["ci95"][0] < o["estimate"] < o["ci95"][1] and o["estimate"] > 1.5 and o["p"] < 0.01
    assert rep["odds_ratio_per_0_1"]["estimate"] > 1
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # existing reports are not overwritten unless asked
    before = (out / "report.json").read_bytes()
    assert rheumtexture(["analyze", str(scores), "--out", str(out)]) == 2
    assert (out / "report.json").read_bytes() == before
    assert rheumtexture(["analyze", str(scores), "--out", str(out), "--aggregate", "max", "--overwrite"]) == 0
    assert json.loads((out / "report.json").read_text())["aggregation"].startswith("max")


def _write(tmp_path, df):
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.drop(columns="age"), "missing column(s) 'age'"),
    (lambda d: d.assign(label=1), "only cases"),
    (lambda d: d.assign(score=d.score.astype(object).where(d.index != 4, "high")), "column 'score', row 5: 'high' is not a number"),
    (lambda d: d.assign(score=d.score.where(d.index != 2, np.nan)), "column 'score', row 3: empty cell"),
    (lambda d: d.assign(age=d.age.astype(object).where(d.index != 0, "nan")), "column 'age', row 1: 'nan' is not a finite"),
    (lambda d: d.assign(sex=d.sex.where(d.index != 1, "X")), "column 'sex', row 2: 'X' is not one of F, M"),
])
def test_ra_bad_input(tmp_path, capsys, edit, message):
    path = _write(tmp_path, edit(_ra_cohort(n=20)))
    assert rheumtexture(["analyze", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_ra_model_errors_are_clear(tmp_path, capsys):
    """An odds ratio that cannot be estimated is named with its reason; AUROC and means still stand."""
    small = _ra_cohort(n=6)    # 6 events for 3 slopes: EPV 2
    assert rheumtexture(["analyze", str(_write(tmp_path, small)), "--out", str(tmp_path / "o1")]) == 0
    assert "too few events per variable" in capsys.readouterr().err
    report = json.loads((tmp_path / "o1" / "report.json").read_text())
    assert report["odds_ratio"]["estimate"] is None and "too few events" in report["odds_ratio"]["unavailable"]
    sep = _ra_cohort(n=40)
    sep["score"] = np.where(sep.label == 1, 0.8, 0.2)
    assert rheumtexture(["analyze", str(_write(tmp_path, sep)), "--out", str(tmp_path / "o2")]) == 0
    assert "separation" in capsys.readouterr().err
    report = json.loads((tmp_path / "o2" / "report.json").read_text())
    assert report["auroc"]["estimate"] == 1.0 and "separation" in report["odds_ratio"]["unavailable"]
    assert "not estimable" in (tmp_path / "o2" / "report.html").read_text()


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.drop(columns="thickness_mm"), "missing column(s) 'thickness_mm'"),
    (lambda d: d.assign(label=0), "only controls"),
    (lambda d: d.assign(gland_score=d.gland_score.where(d.index != 9, 17)), "column 'gland_score', row 10: 17 is not an integer in 0-16"),
    (lambda d: d.assign(thickness_mm=d.thickness_mm.astype(object).where(d.index != 0, "thin")), "column 'thickness_mm', row 1: 'thin'"),
    (lambda d: d.assign(patient_id=d.patient_id.where(d.index != 3, "P000")), "column 'patient_id', row 4: patient 'P000' already in row 1"),
])
def test_sjogren_bad_input(tmp_path, capsys, edit, message):
    path = _write(tmp_path, edit(_sjogren_cohort()))
    assert sjogrenus(["analyze", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_sjogren_unmeasured_patients_are_left_out_only_where_needed(tmp_path, capsys):
    """`sjogrenus score` leaves thickness and mucosa score empty when the mucosa could not be measured:
    those patients still count for the 0-16 gland score, and are named as left out of the rest."""
    full = _sjogren_cohort()
    df = full.astype({"mucosa_score": object, "thickness_mm": object})
    df.loc[df.index[:3], ["mucosa_score", "thickness_mm"]] = ""
    assert sjogrenus(["analyze", str(_write(tmp_path, df)), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["excluded"]["0-18"] == 3 and report["excluded"]["thickness"] == 3
    assert report["systems"]["0-16"]["n_patients"] == len(full) and report["systems"]["0-18"]["n_patients"] == len(full) - 3
    assert report["thickness"]["n_patients"] == len(full) - 3
    assert report["systems"]["0-16"]["cutoff"] == 6  # the gland score still uses every patient
    df.loc[df.index[3], "thickness_mm"] = "n/a"  # text is still an error, not a silent gap
    assert sjogrenus(["analyze", str(_write(tmp_path, df)), "--out", str(tmp_path / "out2")]) == 2
    assert "column 'thickness_mm', row 4" in capsys.readouterr().err
