"""Cohort statistics shared by RheumTexture and SjogrenUS, following pROC, SciPy and statsmodels.

Conventions (documented once here, repeated in the README section "Cohort statistics"):

* AUROC and its variance are DeLong's, as pROC's ``auc``/``ci.auc``/``var`` compute them: the 95% CI
  is the normal approximation ``auc +- z(0.975) * sqrt(var)`` on the AUC scale (no logit), clipped to [0, 1].
  The direction is fixed by the caller (``higher`` = cases score higher, pROC ``direction = "<"``; ``lower``
  = pROC ``direction = ">"``) instead of pROC's automatic choice, so a worse-than-chance score shows AUC < 0.5.
* Cut-offs are reported as values of the measure itself, not pROC's midpoint thresholds: for integer scores
  a cut-off ``c`` means "positive if score >= c" (pROC's threshold is the midpoint ``c - 0.5`` for a
  unit-step score); for a measure whose low values are abnormal a cut-off ``t`` means "positive if value
  <= t" (pROC with ``direction = ">"`` reports the midpoint between ``t`` and the next observed value).
  The sensitivity/specificity pairs are identical; every tied maximum of Youden's J is listed.
* Proportions carry Wilson score 95% intervals (no continuity correction).
* DeLong edge cases as pROC: zero variance gives z = 0 (equal AUCs) or +-inf with p = 0; a single case or
  control leaves variance, CI and test undefined with the reason (pROC: NA/NaN).
* Paired cut-off comparisons use McNemar's test as R ``mcnemar.test`` (``paired``); bootstrap CIs and optimism
  are stratified and seeded (``bootstrap``); calibration (``calibration``), reader agreement as R ``irr``
  (``agreement``) and the STARD participant flow (``flow``) each have their own module.
"""
