"""Golden tests of RheumImagingLib.stats against the reference tools' own published test values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from RheumImagingLib.errors import InputError
from RheumImagingLib.stats import cutoffs, groups, logistic, paired, roc
from RheumImagingLib.stats.aggregate import per_patient
from RheumImagingLib.stats.proportions import wilson
from RheumImagingLib.stats.table import read_scores

from conftest import REPO

# pROC's aSAH data (Turck et al. 2010, 113 patients), converted from pROC's data/aSAH.RData:
# outcome (1 = Poor), s100b, ndka, wfns (ordinal 1-5, heavily tied).
ASAH = pd.read_csv(REPO / "Testing" / "Data" / "aSAH.csv")


def test_asah_data_is_pROCs():
    assert len(ASAH) == 113 and ASAH.outcome.sum() == 41


def test_auroc_and_delong_ci_match_pROC():
    # pROC tests/testthat/test-ci.auc.R: expected.ci.auc for r.ndka
    a = roc.auroc(ASAH.outcome, ASAH.ndka)
    assert [a.ci95[0], a.estimate, a.ci95[1]] == pytest.approx([0.501244999271703, 0.611957994579946, 0.722670989888189], abs=1e-12)
    # pROC documentation/tests: auc(aSAH$outcome, aSAH$s100b) = 0.7313686, DeLong CI 0.6301-0.8326
    s = roc.auroc(ASAH.outcome, ASAH.s100b)
    assert s.estimate == pytest.approx(0.7313686, abs=1e-7)
    assert s.ci95 == pytest.approx((0.6301, 0.8326), abs=1e-4)


def test_auroc_direction_lower_mirrors_higher():
    # pROC test-ci.auc.R: ci.auc(aSAH$outcome, -aSAH$ndka) with direction ">" equals the original
    assert roc.auroc(ASAH.outcome, -ASAH.ndka, direction="lower").ci95 == roc.auroc(ASAH.outcome, ASAH.ndka).ci95


@pytest.mark.parametrize("first,second,z,p", [
    # pROC tests/testthat/test-roc.test.R, "roc.test statistic and p are as expected with defaults"
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882),   # wfns: tied ordinal score
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054),
])
def test_paired_delong_test_matches_pROC(first, second, z, p):
    t = roc.delong_test(ASAH.outcome, ASAH[first], ASAH[second])
    assert t.z == pytest.approx(z, abs=1e-10)
    assert t.p == pytest.approx(p, abs=1e-12)


def test_delong_identical_curves_gives_z0_p1():
    # pROC test-roc.test.R: "DeLong roc.test works when curves are identical"
    t = roc.delong_test(ASAH.outcome, ASAH.wfns, ASAH.wfns)
    assert (t.z, t.p) == (0.0, 1.0)


def test_delong_zero_variance_with_different_aucs_is_infinite_as_pROC():
    # pROC R/delong.R delong.paired.test: z = d / sig, reset to 0 only when d == 0 and sig == 0; here sig = 0
    # (a perfect score and a constant one have constant placements) and d = 0.5, so z = +Inf and p = 2 * pnorm(-Inf) = 0
    t = roc.delong_test([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 1])
    assert (t.auc1, t.auc2) == (1.0, 0.5)
    assert t.z == float("inf") and t.p == 0.0
    assert roc.delong_test([0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6]).z == float("-inf")


@pytest.mark.parametrize("labels", [[0, 0, 0, 1], [0, 1, 1, 1]])
def test_single_case_or_control_gives_undefined_not_zero_width(labels):
    # pROC ci_auc_delong returns NA when m <= 1 || n <= 1; the paired test divides by m - 1 (NaN)
    a = roc.auroc(labels, [1, 2, 3, 4])
    assert a.estimate == 1.0 and a.ci95 is None and a.variance is None and "single" in a.undefined
    t = roc.delong_test(labels, [1, 2, 3, 4], [4, 3, 2, 1])
    assert t.z is None and t.p is None and "single" in t.as_dict()["undefined"]


def test_mcnemar_matches_R_documentation_example():
    # R ?mcnemar.test, Agresti (1990) p. 350, presidential approval: matrix(c(794, 86, 150, 570), nrow = 2);
    # discordant 150 and 86. With continuity correction (|150 - 86| - 1)^2 / 236 = 3969 / 236 = 16.818 on 1 df;
    # without it 4096 / 236 = 17.356, p = 3.099e-05 (PSU STAT 504 notes on the same data)
    first = [1] * 794 + [1] * 150 + [0] * 86 + [0] * 570
    second = [1] * 794 + [0] * 150 + [1] * 86 + [0] * 570
    r = paired.mcnemar(first, second)
    assert r["discordant"] == [150, 86] and r["statistic"] == pytest.approx(3969 / 236)
    assert r["p"] == pytest.approx(4.115e-05, rel=1e-3)
    from scipy.stats import chi2
    assert chi2.sf(4096 / 236, 1) == pytest.approx(3.099e-05, rel=1e-3)


def test_mcnemar_follows_R_edge_rules():
    # Navarro, Learning statistics with R, 12.8: discordant 25 and 5 -> McNemar's chi-squared = 12.033, p = 0.0005226
    r = paired.mcnemar([1] * 25 + [0] * 5 + [1] * 5, [0] * 25 + [1] * 5 + [1] * 5)
    assert r["statistic"] == pytest.approx(12.033, abs=5e-4) and r["p"] == pytest.approx(0.0005226, rel=1e-3)
    # R applies the correction only when b != c: b == c gives 0 and p = 1; no discordant pair is NaN in R
    assert paired.mcnemar([1, 0, 1], [0, 1, 1])["statistic"] == 0.0
    none = paired.mcnemar([1, 0], [1, 0])
    assert none["statistic"] is None and "no discordant" in none["undefined"]


def test_ci_is_clipped_to_unit_interval():
    a = roc.auroc([0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.8, 0.19])
    assert 0 <= a.ci95[0] and a.ci95[1] <= 1.0
    assert roc.auroc([0, 0, 1, 1], [1, 2, 3, 4]).ci95 == (1.0, 1.0)


def test_youden_integer_cutoff_on_tied_ordinal_score():
    # aSAH wfns by outcome (Good/Poor): 1: 37/2, 2: 20/12, 3: 3/1, 4: 8/8, 5: 4/18. J is largest for
    # "wfns >= 4" (26/41 + 60/72 - 1 = 0.4675), which pROC reports as the midpoint threshold 3.5.
    cut = cutoffs.youden_at_least(ASAH.outcome, ASAH.wfns)
    assert cut["cutoff"] == 4 and cut["tied_cutoffs"] == [4.0]
    assert cut["sensitivity"]["count"] == [26, 41] and cut["specificity"]["count"] == [60, 72]
    assert cut["youden_j"] == pytest.approx(26 / 41 + 60 / 72 - 1)


def test_youden_reports_all_tied_maxima():
    cut = cutoffs.youden_at_least([0, 0, 1, 1], [1, 3, 2, 4])
    assert cut["tied_cutoffs"] == [2.0, 4.0] and cut["cutoff"] == 2.0
    low = cutoffs.youden_at_most([1, 1, 0, 0], [0.30, 0.35, 0.40, 0.50])
    assert low["cutoff"] == 0.35 and low["sensitivity"]["estimate"] == 1.0 and low["specificity"]["estimate"] == 1.0


@pytest.mark.parametrize("x,n,lo,hi", [
    # Newcombe RG (1998) Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe(x, n, lo, hi):
    assert wilson(x, n) == pytest.approx((lo, hi), abs=5e-5)


def test_mann_whitney_matches_scipy_documentation():
    # SciPy mannwhitneyu docstring example (Conover): males vs females, U1 = 17, exact two-sided p = 0.1111
    r = groups.mann_whitney([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert r["U"] == 17 and r["p"] == pytest.approx(0.11111, abs=1e-5) and r["method"] == "exact"
    tied = groups.mann_whitney([1, 2, 2, 3, 4], [2, 3, 5, 6])
    assert tied["method"].startswith("asymptotic")


def test_group_summaries():
    m = groups.mean_ci([1.0, 2.0, 3.0])
    assert m["mean"] == 2.0 and m["ci95"] == pytest.approx([2 - 4.302653 / np.sqrt(3), 2 + 4.302653 / np.sqrt(3)], abs=1e-5)
    assert groups.median_iqr([1, 2, 3, 4, 5]) == {"median": 3.0, "iqr": [2.0, 4.0], "n": 5}
    assert groups.welch_t([1, 2, 3, 4], [2, 4, 6, 8, 10])["p"] < 0.2


def test_logit_matches_statsmodels_spector_stata_results():
    # statsmodels/discrete/tests/results/results_discrete.py, class Spector.logit (Stata 11)
    data = sm.datasets.spector.load_pandas()
    fit = logistic.fit_logit(data.endog, data.exog[["GPA", "TUCE", "PSI"]], min_epv=0)
    assert any("low events per variable: EPV 3.7" in note for note in fit["notes"])  # 11 events / 3 slopes
    params = [2.82611297201, .0951576702557, 2.37868772835]
    bse = [1.26294114526, .141554207662, 1.06456430165]
    for name, b, se in zip(["GPA", "TUCE", "PSI"], params, bse):
        t = fit["terms"][name]
        assert t["odds_ratio"] == pytest.approx(np.exp(b), rel=1e-6)
        assert t["ci95"] == pytest.approx([np.exp(b - 1.959964 * se), np.exp(b + 1.959964 * se)], rel=1e-5)
    assert fit["terms"]["const"]["coef"] == pytest.approx(-13.0213483201, rel=1e-6)


def test_logit_refuses_too_few_events_per_variable():
    data = sm.datasets.spector.load_pandas()   # 11 events, 3 slopes: EPV 3.7 < 5
    with pytest.raises(logistic.ModelError, match="too few events per variable"):
        logistic.fit_logit(data.endog, data.exog[["GPA", "TUCE", "PSI"]])


def test_logit_refuses_perfect_separation():
    rng = np.random.default_rng(0)
    x = np.r_[rng.uniform(0, 1, 60), rng.uniform(2, 3, 60)]
    y = np.r_[np.zeros(60), np.ones(60)]
    with pytest.raises(logistic.ModelError, match="separation"):
        logistic.fit_logit(y, pd.DataFrame({"x": x}))


def test_logit_quasi_separation_is_a_model_error_not_a_printed_warning():
    import warnings

    rng = np.random.default_rng(1)
    x = np.r_[np.ones(40), np.zeros(80)]  # every x = 1 is an event, x = 0 mixed: quasi-complete separation
    y = np.r_[np.ones(40), rng.integers(0, 2, 80)]
    X = pd.DataFrame({"above": x, "age": rng.normal(50, 10, 120)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning statsmodels lets out would be printed to the user's console
        with pytest.raises(logistic.ModelError, match="separation"):
            logistic.fit_logit(y, X)


def test_logit_refuses_missing_covariates():
    X = pd.DataFrame({"score": np.linspace(0, 1, 100), "age": np.r_[np.full(99, 50.0), np.nan]})
    with pytest.raises(logistic.ModelError, match="covariate 'age' is missing in row 100"):
        logistic.fit_logit(np.r_[np.zeros(50), np.ones(50)], X)


def test_per_patient_aggregation():
    t = pd.DataFrame({"patient_id": ["a", "a", "b"], "label": [1, 1, 0], "score": [0.2, 0.6, 0.3]})
    assert per_patient(t, ["score"], "mean", constant_columns=("label",))["score"].tolist() == pytest.approx([0.4, 0.3])
    assert per_patient(t, ["score"], "max")["score"].tolist() == [0.6, 0.3]
    t.loc[1, "label"] = 0
    with pytest.raises(InputError, match="'label' differs"):
        per_patient(t, ["score"], constant_columns=("label",))


@pytest.mark.parametrize("body,message", [
    ("patient_id,label,score\np1,1,0.3\n", "missing column(s) 'age'"),
    ("patient_id,label,age,score\np1,1,50,0.3\np2,1,60,0.4\n", "only cases"),
    ("patient_id,label,age,score\np1,1,50,0.3\np2,0,sixty,0.4\n", "column 'age', row 2: 'sixty' is not a number"),
    ("patient_id,label,age,score\np1,1,50,NaN\np2,0,60,0.4\n", "column 'score', row 1: 'NaN' is not a finite"),
    ("patient_id,label,age,score\np1,1,50,0.3\np2,0,,0.4\n", "column 'age', row 2: empty cell"),
    ("patient_id,label,age,score\np1,2,50,0.3\np2,0,60,0.4\n", "column 'label', row 1: 2 is not 0 or 1"),
])
def test_table_errors_name_column_and_row(tmp_path, body, message):
    path = tmp_path / "scores.csv"
    path.write_text(body)
    with pytest.raises(InputError) as exc:
        read_scores(path, numeric=("label", "age", "score"), required=("patient_id", "label", "age", "score"))
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_logit_names_a_constant_term():
    """A threshold above or below every score leaves nothing to compare: say so, not a singular-matrix trace."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"score_above_threshold": np.ones(60), "age": rng.normal(55, 10, 60)})
    with pytest.raises(logistic.ModelError, match="'score_above_threshold' has the same value"):
        logistic.fit_logit(rng.integers(0, 2, 60), X)
