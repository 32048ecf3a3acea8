"""``rheumtexture analyze`` and ``sjogrenus analyze``: report contracts, the published Sjogren figures, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from RheumTextureLib.rheumtexture_cli import main as rheumtexture
from SjogrenUSLib.sjogrenus_cli import main as sjogrenus


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


def test_sjogren_cutoff_comparison_is_mcnemar_by_hand(tmp_path):
    # In _sjogren_cohort, at cut-offs 6 (0-16) and 7 (0-18): one case (gland 6, mucosa 0) is positive by 0-16 only
    # -> discordant [0, 1], (|0 - 1| - 1)^2 / 1 = 0, p = 1; four controls (gland 6, mucosa 0) are negative by 0-18
    # only -> [4, 0], (4 - 1)^2 / 4 = 2.25 on 1 df, p = 0.1336 (R: mcnemar.test(matrix(c(38, 0, 4, 2), 2)))
    _sjogren_cohort().to_csv(tmp_path / "scores.csv", index=False)
    assert sjogrenus(["analyze", str(tmp_path / "scores.csv"), "--out", str(tmp_path / "out"), "--bootstrap", "200"]) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    cmp = rep["cutoff_comparison"]
    assert cmp["cutoffs"] == {"0-16": 6, "0-18": 7}
    assert cmp["sensitivity"]["discordant"] == [0, 1] and cmp["sensitivity"]["statistic"] == 0 and cmp["sensitivity"]["p"] == 1
    assert cmp["specificity"]["discordant"] == [4, 0] and cmp["specificity"]["statistic"] == pytest.approx(2.25)
    assert cmp["specificity"]["p"] == pytest.approx(0.1336, abs=1e-4)
    boot = rep["systems"]["0-16"]["bootstrap"]
    assert boot["n_resamples"] == 200 and boot["cutoff"] == 6
    assert boot["optimism_corrected"]["youden_j"] <= rep["systems"]["0-16"]["youden_j"]
    assert rep["auroc_comparison"]["bootstrap"]["n_resamples"] == 200
    assert rep["flow"]["analysed"]["0-16"] == {"patients": 97, "cases": 53, "controls": 44}
    assert "Participant flow" in (tmp_path / "out" / "report.html").read_text()


def test_sjogren_flow_counts_failed_images_missing_glands_and_qc(tmp_path):
    """What `sjogrenus score` writes when a gland image failed (empty gland_score and grade, a 'skipped' note)
    is analysed, not refused; QC-flagged rows are left out and counted by reason."""
    df = _sjogren_cohort().assign(grade_parotid_left=1, notes="", qc="ok")
    df = df.astype({"gland_score": object, "mucosa_score": object, "grade_parotid_left": object})
    failed = df.index[[0, 60]]  # a control and a case
    df.loc[failed, ["gland_score", "mucosa_score", "grade_parotid_left"]] = ""
    df.loc[failed, "notes"] = "phantoms/p.png: skipped (not an image)"
    df.loc[df.index[[1, 61]], "qc"] = "probe tilt; low gain"
    df.loc[df.index[2], "qc"] = "low gain"
    assert sjogrenus(["analyze", str(_write(tmp_path, df)), "--out", str(tmp_path / "out"), "--bootstrap", "50"]) == 0
    f = json.loads((tmp_path / "out" / "report.json").read_text())["flow"]
    assert f["given"] == {"patients": 97, "rows": 97}
    assert f["excluded"] == [{"reason": "QC-flagged (qc is not 'ok')", "rows": 3, "patients": 3}]
    assert f["qc_flagged"]["reasons"] == {"low gain": 3, "probe tilt": 2}
    assert f["measurement"]["images_unreadable"] == 2 and f["measurement"]["sites_missing"]["parotid_left"] == 2
    assert f["analysed"]["0-16"]["patients"] == 97 - 3 - 2 and f["analysed"]["thickness"]["patients"] == 97 - 3


def test_ra_calibration_and_threshold_note(tmp_path):
    # scores drawn as calibrated probabilities (seed used only here): intercept 0 and slope 1 lie in their CIs
    rng = np.random.default_rng(8201)
    p = 1 / (1 + np.exp(-rng.normal(0, 1.5, 600)))
    df = pd.DataFrame({"patient_id": [f"P{i}" for i in range(600)], "label": (rng.random(600) < p).astype(int),
                       "age": rng.integers(30, 80, 600), "sex": rng.choice(["F", "M"], 600), "score": p})
    out = tmp_path / "out"
    assert rheumtexture(["analyze", str(_write(tmp_path, df)), "--out", str(out), "--bootstrap", "100"]) == 0
    cal = json.loads((out / "report.json").read_text())["calibration"]
    assert cal["intercept"]["ci95"][0] <= 0 <= cal["intercept"]["ci95"][1]
    assert cal["slope"]["ci95"][0] <= 1 <= cal["slope"]["ci95"][1]
    assert cal["brier"] == pytest.approx(np.mean((p - df.label) ** 2))
    html = (out / "report.html").read_text()
    assert "calibration.png" in html and "not a cut-off calibrated or chosen on this cohort" in html
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ra_qc_and_in_training_columns(tmp_path):
    df = _ra_cohort(n=30)
    df["qc"] = "ok"
    df.loc[df.patient_id == "RA000", "qc"] = "rotated 90 degrees"  # all three rows: the patient drops out
    df.loc[df.index[5], "qc"] = "uncalibrated: fallback spacing;rotated 90 degrees"
    training = df.patient_id.str[-3:].astype(int) < 10
    df["in_training"] = np.where(training, "yes", "no")
    path = _write(tmp_path, df)
    assert rheumtexture(["analyze", str(path), "--out", str(tmp_path / "new"), "--bootstrap", "50"]) == 0
    rep = json.loads((tmp_path / "new" / "report.json").read_text())
    assert rep["n_cases"] + rep["n_controls"] == 40  # patients 10-29 of each group
    assert "new patients only" in rep["analysed_patients"]
    assert rep["flow"]["qc_flagged"]["reasons"] == {"rotated 90 degrees": 4, "uncalibrated: fallback spacing": 1}
    assert {s["patients"] for s in rep["flow"]["excluded"]} == {1, 19}  # RA000 by QC, then the other 19 trained
    assert rheumtexture(["analyze", str(path), "--out", str(tmp_path / "all"), "--include-training", "--bootstrap", "50"]) == 0
    rep = json.loads((tmp_path / "all" / "report.json").read_text())
    assert rep["n_cases"] + rep["n_controls"] == 59 and "together" in rep["analysed_patients"]
    assert "together" in (tmp_path / "all" / "report.html").read_text()
    # columns absent: every row analysed, as before
    plain = _ra_cohort(n=30)
    assert rheumtexture(["analyze", str(_write(tmp_path, plain)), "--out", str(tmp_path / "plain"), "--bootstrap", "50"]) == 0
    rep = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert rep["n_cases"] + rep["n_controls"] == 60 and rep["flow"]["excluded"] == [] and "analysed_patients" not in rep
    df.loc[df.index[4], "in_training"] = "maybe"
    assert rheumtexture(["analyze", str(_write(tmp_path, df)), "--out", str(tmp_path / "bad")]) == 2


def test_sjogren_score_then_analyze_with_a_failed_gland_image(us_segmentation_trained, tmp_path):
    """A gland image that cannot be read leaves that patient's gland_score empty; analyze must still run,
    count the image in the flow table and leave the patient out of the 0-16 analysis only."""
    assert sjogrenus(["phantom", str(tmp_path / "cohort"), "--patients", "4", "--seed", "12"]) == 0
    cohort = pd.read_csv(tmp_path / "cohort" / "cohort.csv")
    broken = tmp_path / "cohort" / cohort.loc[cohort.label == 1, "parotid_left_image"].iloc[0]
    broken.write_bytes(b"not an image")
    scores = tmp_path / "scores.csv"
    assert sjogrenus(["score", str(tmp_path / "cohort" / "cohort.csv"), "--bundle", str(us_segmentation_trained),
                      "--out", str(scores)]) == 0
    assert pd.read_csv(scores)["gland_score"].isna().sum() >= 1
    # The seconds-long fixture network's mucosa layers are implausible, so qc flags rows (test_us_quality.py); this
    # test is about the unreadable image's flow, so its table goes to analyze without the qc column.
    pd.read_csv(scores, dtype=str, keep_default_na=False).drop(columns="qc").to_csv(scores, index=False)
    assert sjogrenus(["analyze", str(scores), "--out", str(tmp_path / "out"), "--bootstrap", "50"]) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    f = rep["flow"]
    assert f["given"]["patients"] == 4
    assert f["measurement"]["images_unreadable"] == 1 and f["measurement"]["sites_missing"]["parotid_left"] >= 1
    assert f["analysed"]["0-16"]["patients"] == 4 - rep["excluded"]["0-16"] <= 3


def test_ra_unknown_training_status_is_analysed_but_known_training_patients_are_not(tmp_path):
    """A bundle without a training list leaves in_training empty (unknown): those rows are analysed;
    rows known to be training patients are still left out unless --include-training."""
    df = _ra_cohort(n=30)
    training = df.patient_id.str[-3:].astype(int) < 10
    df["in_training"] = np.where(training, "yes", "")
    path = _write(tmp_path, df)
    assert rheumtexture(["analyze", str(path), "--out", str(tmp_path / "r"), "--bootstrap", "50"]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["n_cases"] + rep["n_controls"] == 40 and "not known to be in the training set" in rep["analysed_patients"]
    df["in_training"] = ""
    _write(tmp_path, df)
    assert rheumtexture(["analyze", str(path), "--out", str(tmp_path / "u"), "--bootstrap", "50"]) == 0
    assert json.loads((tmp_path / "u" / "report.json").read_text())["n_cases"] == 30
