"""Judge-human calibration statistics, checked against sklearn, scipy, statsmodels,
the krippendorff package and published worked examples."""

from __future__ import annotations

import json
import math
import random
import warnings

import krippendorff
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from benchrun.analysis.calibration import (
    MIN_ITEMS,
    AggregatedLabel,
    JudgeHumanPair,
    JudgeVerdict,
    TooFewLabels,
    aggregate_annotators,
    annotator_agreement,
    build_pairs,
    calibrate,
    cohen_kappa,
    cohen_kappa_from_table,
    fleiss_kappa,
    kappa_wald_interval,
    krippendorff_alpha,
    spearman,
    weighted_kappa,
)
from benchrun.errors import BenchrunError
from benchrun.labels import Label

# ----------------------------------------------------------------------------- helpers


def _random_ratings(seed: int, n: int, agree: float) -> tuple[list[int], list[int]]:
    """Human scores and judge scores that agree with probability ``agree``."""
    rng = random.Random(seed)
    human = [rng.randint(1, 5) for _ in range(n)]
    judge = [h if rng.random() < agree else rng.randint(1, 5) for h in human]
    return human, judge


def _pairs(human: list[int], judge: list[int], modes_h=None, modes_j=None) -> list[JudgeHumanPair]:
    out = []
    for i, (h, j) in enumerate(zip(human, judge, strict=True)):
        out.append(
            JudgeHumanPair(
                item_id=f"i{i}",
                judge_score=j,
                judge_pass=j >= 4,
                judge_failure_mode=modes_j[i] if modes_j else None,
                human_score=h,
                human_pass=h >= 4,
                human_failure_mode=modes_h[i] if modes_h else None,
            )
        )
    return out


# ----------------------------------------------------------------------------- Cohen's kappa


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_cohen_kappa_matches_sklearn_binary_and_multiclass(seed: int) -> None:
    human, judge = _random_ratings(seed, 150, 0.6)
    ours = cohen_kappa(human, judge, categories=[1, 2, 3, 4, 5])
    assert ours.value == pytest.approx(cohen_kappa_score(human, judge), abs=1e-12)
    hp = [h >= 4 for h in human]
    jp = [j >= 4 for j in judge]
    assert cohen_kappa(hp, jp).value == pytest.approx(cohen_kappa_score(hp, jp), abs=1e-12)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_quadratic_weighted_kappa_matches_sklearn(seed: int) -> None:
    human, judge = _random_ratings(seed, 120, 0.5)
    ours, note = weighted_kappa(human, judge, (1, 2, 3, 4, 5), "quadratic")
    assert note is None
    ref = cohen_kappa_score(human, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert ours == pytest.approx(ref, abs=1e-12)
    lin, _ = weighted_kappa(human, judge, (1, 2, 3, 4, 5), "linear")
    assert lin == pytest.approx(cohen_kappa_score(human, judge, labels=[1, 2, 3, 4, 5], weights="linear"), abs=1e-12)


def test_weighted_kappa_uses_the_full_1_to_5_scale_even_when_some_scores_are_unused() -> None:
    # only scores 2 and 4 appear: the distance between them is still 2 of 4 steps
    human = [2, 4, 2, 4, 2, 4, 4, 2]
    judge = [2, 4, 4, 4, 2, 2, 4, 2]
    ours, _ = weighted_kappa(human, judge)
    ref = cohen_kappa_score(human, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert ours == pytest.approx(ref, abs=1e-12)


def test_kappa_se_and_ci_match_fleiss_paik_example_in_statpsych() -> None:
    # statpsych::ci.kappa(.05, 31, 12, 4, 58) (Bonett; formula of Fleiss & Paik 2003):
    # Cohen kappa 0.6756757, SE 0.07344761, 95% CI 0.5317210 .. 0.8196303
    r = cohen_kappa_from_table([[31, 12], [4, 58]])
    assert r.value == pytest.approx(0.6756757, abs=1e-7)
    assert r.se == pytest.approx(0.07344761, abs=1e-8)
    w = kappa_wald_interval([[31, 12], [4, 58]])  # the published CI is the Wald one (kept for comparison)
    assert w is not None
    assert w.low == pytest.approx(0.5317210, abs=1e-7)
    assert w.high == pytest.approx(0.8196303, abs=1e-7)


def test_kappa_se_matches_stata_kapci_published_output() -> None:
    # Statalist 2009-12 msg00320, `kapci` analytical: N=1932, kappa .3411969207847029,
    # se .0262913719660408, 95% CI .2896667786271169 .. .3927270629422889
    r = cohen_kappa_from_table([[1395, 118], [261, 158]])
    assert r.value == pytest.approx(0.3411969207847029, abs=1e-12)
    assert r.se == pytest.approx(0.0262913719660408, abs=1e-12)
    w = kappa_wald_interval([[1395, 118], [261, 158]])
    assert w is not None
    assert w.low == pytest.approx(0.2896667786271169, abs=1e-9)
    assert w.high == pytest.approx(0.3927270629422889, abs=1e-9)
    # at n = 1932 the default (Jeffreys) interval agrees with the Wald one to about 0.005
    assert r.interval is not None
    assert r.interval.low == pytest.approx(w.low, abs=0.006) and r.interval.high == pytest.approx(w.high, abs=0.006)


def test_kappa_se_matches_statsmodels_on_4x4_sas_skin_condition_table() -> None:
    table = [[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]]  # SAS PROC FREQ "Agreement Study"
    ref = sm_cohens_kappa(np.asarray(table))
    r = cohen_kappa_from_table(table)
    assert r.value == pytest.approx(ref.kappa, abs=1e-12)
    assert r.se == pytest.approx(ref.std_kappa, abs=1e-12)
    w = kappa_wald_interval(table)
    assert w is not None
    assert w.low == pytest.approx(ref.kappa_low, abs=1e-9)
    assert w.high == pytest.approx(ref.kappa_upp, abs=1e-9)
    assert r.interval is not None and r.interval.low < r.value < r.interval.high


def test_kappa_all_one_class_is_undefined_not_one() -> None:
    r = cohen_kappa([True] * 30, [True] * 30)
    assert r.value is None
    assert r.interval is None
    assert r.note is not None and "undefined" in r.note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score([1] * 30, [1] * 30))  # sklearn agrees: nan, not 1.0


def test_kappa_judge_constant_humans_mixed_is_zero_like_sklearn() -> None:
    human = [True] * 20 + [False] * 10
    judge = [True] * 30
    r = cohen_kappa(human, judge)
    assert r.value == pytest.approx(cohen_kappa_score(human, judge), abs=1e-12)
    assert r.value == pytest.approx(0.0, abs=1e-12)


def test_kappa_perfect_agreement_interval_does_not_collapse() -> None:
    # the asymptotic SE is 0 at perfect agreement (statsmodels agrees), so a Wald interval would be [1, 1];
    # the Jeffreys posterior interval still says how much 20 items can vouch for
    r = cohen_kappa([True] * 10 + [False] * 10, [True] * 10 + [False] * 10)
    assert r.value == pytest.approx(1.0)
    assert sm_cohens_kappa(np.array([[10, 0], [0, 10]])).std_kappa == pytest.approx(0.0, abs=1e-12)
    assert r.interval is not None
    assert r.interval.high == 1.0
    assert 0.3 < r.interval.low < 0.7  # 20 items cannot prove more
    assert r.note is not None and "perfect agreement" in r.note
    assert r.method is not None and "Jeffreys" in r.method
    # so 20 perfectly agreeing items do not earn trust at threshold 0.7
    rep = calibrate(_pairs([5] * 10 + [1] * 10, [5] * 10 + [1] * 10), threshold=0.7)
    assert rep.trusted is False


def test_kappa_empty_input() -> None:
    assert cohen_kappa([], []).value is None
    assert weighted_kappa([], [])[0] is None


def test_weighted_kappa_undefined_when_everyone_gives_one_score() -> None:
    value, note = weighted_kappa([3] * 25, [3] * 25)
    assert value is None and note is not None and "undefined" in note


# ----------------------------------------------------------------------------- Spearman


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    human, judge = _random_ratings(seed, 60, 0.5)  # 1-5 scores: heavily tied
    ours = spearman(judge, human)
    ref = stats.spearmanr(judge, human)
    assert ours.value == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_spearman_no_variance_is_none() -> None:
    r = spearman([4] * 25, list(range(25)))
    assert r.value is None and r.p_value is None
    assert r.note is not None and "same score" in r.note
    with pytest.warns(stats.ConstantInputWarning):
        assert math.isnan(stats.spearmanr([4] * 25, list(range(25))).statistic)


def test_spearman_too_few() -> None:
    assert spearman([1, 2], [2, 1]).value is None


# ----------------------------------------------------------------------------- Krippendorff / Fleiss


def test_krippendorff_matches_published_example_and_package() -> None:
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 coders x 12 units,
    # published alphas: nominal 0.743, ordinal 0.815, interval 0.849.
    nan = np.nan
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    units = [[int(row[u]) for row in data if not np.isnan(row[u])] for u in range(12)]
    for level, published in (("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)):
        ours = krippendorff_alpha(units, level)
        assert ours == pytest.approx(published, abs=5e-4)
        assert ours == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement=level), abs=1e-12)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_krippendorff_matches_package_on_random_data_with_missing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=40)
    data = np.where(rng.random((3, 40)) < 0.7, truth, rng.integers(1, 6, size=(3, 40))).astype(float)
    data[rng.random((3, 40)) < 0.2] = np.nan
    units = [[int(v) for v in data[:, u] if not np.isnan(v)] for u in range(40)]
    for level in ("nominal", "ordinal", "interval"):
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert krippendorff_alpha(units, level) == pytest.approx(ref, abs=1e-12)


def test_krippendorff_undefined_cases() -> None:
    assert krippendorff_alpha([[3, 3], [3, 3, 3]], "ordinal") is None  # one value only
    assert krippendorff_alpha([[1], [2]], "nominal") is None  # nothing pairable
    assert krippendorff_alpha([], "nominal") is None


def test_fleiss_matches_statsmodels_and_published_example() -> None:
    # Fleiss (1971)-style example used on Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, κ = 0.210
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    ours = fleiss_kappa(table)
    assert ours == pytest.approx(sm_fleiss_kappa(np.asarray(table), method="fleiss"), abs=1e-12)
    assert ours == pytest.approx(0.210, abs=5e-4)


def test_fleiss_undefined_and_bad_input() -> None:
    assert fleiss_kappa([[3, 0], [3, 0]]) is None
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 1], [1, 1]])  # 3 vs 2 raters


# ----------------------------------------------------------------------------- annotators


def _label(item: str, who: str, score: int, passed: bool, mode: str | None = None) -> Label:
    return Label(item_id=item, case_id=item, annotator=who, human_score=score, human_pass=passed, failure_mode=mode)


def test_aggregate_annotators_median_low_majority_and_ties() -> None:
    labels = [
        _label("a", "x", 3, True, "none"), _label("a", "y", 4, False, "vague"),  # even split
        _label("b", "x", 2, False, "wrong"), _label("b", "y", 5, True, "wrong"), _label("b", "z", 4, True, "none"),
        _label("c", "x", 5, True, "none"),
    ]
    agg = aggregate_annotators(labels)
    assert list(agg) == ["a", "b", "c"]
    assert agg["a"].human_score == 3 and agg["a"].human_pass is False and agg["a"].human_failure_mode is None
    assert agg["b"].human_score == 4 and agg["b"].human_pass is True and agg["b"].human_failure_mode == "wrong"
    assert agg["b"].n_annotators == 3 and not agg["b"].unanimous
    assert agg["c"] == AggregatedLabel("c", 5, True, "none", 1, True)


def test_annotator_agreement_matches_packages() -> None:
    rng = random.Random(5)
    labels = []
    for i in range(30):
        base = rng.randint(1, 5)
        for who in ("ann", "bob", "cyd"):
            s = base if rng.random() < 0.7 else rng.randint(1, 5)
            labels.append(_label(f"i{i}", who, s, s >= 4))
    labels.append(_label("single", "ann", 3, False))  # one annotator only: not pairable
    ag = annotator_agreement(labels)
    assert ag is not None and ag.n_items == 30 and ag.n_annotators == 3
    scores = np.array([[float(lab.human_score) for lab in labels if lab.annotator == w and lab.item_id != "single"]
                       for w in ("ann", "bob", "cyd")])
    passes = (scores >= 4).astype(float)
    assert ag.alpha_score_ordinal == pytest.approx(
        krippendorff.alpha(reliability_data=scores, level_of_measurement="ordinal"), abs=1e-12)
    assert ag.alpha_pass_nominal == pytest.approx(
        krippendorff.alpha(reliability_data=passes, level_of_measurement="nominal"), abs=1e-12)
    table = np.column_stack([(passes == 0).sum(axis=0), (passes == 1).sum(axis=0)])
    assert ag.fleiss_pass == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)
    assert ag.fleiss_items == 30


def test_annotator_agreement_none_without_overlap() -> None:
    assert annotator_agreement([_label("a", "x", 3, True), _label("b", "y", 4, True)]) is None


def test_build_pairs_reports_missing_judge_verdicts() -> None:
    agg = aggregate_annotators([_label("a", "x", 4, True), _label("b", "x", 2, False)])
    pairs, missing = build_pairs(agg, {"a": JudgeVerdict(5, True, "none")})
    assert missing == ["b"]
    assert pairs == [JudgeHumanPair("a", 5, True, "none", 4, True, None)]


# ----------------------------------------------------------------------------- calibrate


def test_calibrate_refuses_below_minimum() -> None:
    human, judge = _random_ratings(1, MIN_ITEMS - 1, 0.9)
    with pytest.raises(TooFewLabels) as exc:
        calibrate(_pairs(human, judge))
    assert isinstance(exc.value, BenchrunError)
    assert str(MIN_ITEMS - 1) in str(exc.value) and str(MIN_ITEMS) in str(exc.value)
    assert calibrate(_pairs(*_random_ratings(1, MIN_ITEMS, 0.9))).n == MIN_ITEMS


def test_calibrate_numbers_match_independent_libraries() -> None:
    human, judge = _random_ratings(42, 80, 0.65)
    modes = ["none", "wrong", "vague", "unsafe"]
    rng = random.Random(3)
    mh = [rng.choice(modes) for _ in human]
    mj = [m if rng.random() < 0.6 else rng.choice(modes) for m in mh]
    mh[0] = None  # one unlabelled failure mode: left out of precision/recall
    rep = calibrate(_pairs(human, judge, mh, mj))
    hp = [h >= 4 for h in human]
    jp = [j >= 4 for j in judge]
    assert rep.n == 80
    assert rep.percent_agreement.estimate == pytest.approx(np.mean(np.array(hp) == np.array(jp)))
    assert rep.kappa.value == pytest.approx(cohen_kappa_score(hp, jp), abs=1e-12)
    assert rep.weighted_kappa == pytest.approx(
        cohen_kappa_score(human, judge, labels=[1, 2, 3, 4, 5], weights="quadratic"), abs=1e-12)
    sp = stats.spearmanr(judge, human)
    assert rep.spearman.value == pytest.approx(sp.statistic, abs=1e-12)
    assert rep.pass_confusion == confusion_matrix(hp, jp, labels=[False, True]).tolist()
    assert rep.score_confusion == confusion_matrix(human, judge, labels=[1, 2, 3, 4, 5]).tolist()
    assert rep.false_pass == sum(1 for h, j in zip(hp, jp, strict=True) if not h and j)
    diffs = np.array(judge, dtype=float) - np.array(human, dtype=float)
    lo, hi = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
    assert rep.leniency is not None
    assert rep.leniency.estimate == pytest.approx(diffs.mean())
    assert rep.leniency.low == pytest.approx(lo) and rep.leniency.high == pytest.approx(hi)
    used_h, used_j = mh[1:], mj[1:]
    labels_sorted = sorted(set(used_h) | set(used_j))
    prec, rec, _, support = precision_recall_fscore_support(used_h, used_j, labels=labels_sorted, zero_division=0)
    assert rep.failure_mode_items == 79
    for fm, p, r, s in zip(rep.failure_modes, prec, rec, support, strict=True):
        assert fm.human_count == s
        assert (fm.precision or 0.0) == pytest.approx(p)
        assert (fm.recall or 0.0) == pytest.approx(r)
    json.dumps(rep.to_dict(), allow_nan=False)


def test_calibrate_verdict_uses_lower_confidence_bound() -> None:
    # 40 items, judge agrees on 34: kappa 0.7 but the interval is wide
    human = [5] * 20 + [2] * 20
    judge = [5] * 17 + [2] * 3 + [2] * 17 + [5] * 3
    rep = calibrate(_pairs(human, judge), threshold=0.6)
    assert rep.kappa.value == pytest.approx(cohen_kappa_score([h >= 4 for h in human], [j >= 4 for j in judge]))
    assert rep.kappa.value > 0.6
    assert rep.kappa.interval is not None and rep.kappa.interval.low < 0.6
    assert rep.trusted is False and rep.verdict == "not trusted"
    assert "lower end" in rep.verdict_reason
    assert any("40 labelled items" in w and "wide" in w for w in rep.warnings)
    # the same agreement on 10x the items is trusted, with no sample-size warning
    rep_big = calibrate(_pairs(human * 10, judge * 10), threshold=0.6)
    assert rep_big.kappa.interval is not None and rep_big.kappa.interval.low >= 0.6
    assert rep_big.trusted is True and rep_big.verdict == "trusted"
    assert not any("labelled items" in w for w in rep_big.warnings)


def test_calibrate_all_one_class_is_not_trusted_and_does_not_crash() -> None:
    human = [5] * 30
    judge = [5] * 30
    rep = calibrate(_pairs(human, judge))
    assert rep.percent_agreement.estimate == 1.0
    assert rep.kappa.value is None
    assert rep.weighted_kappa is None and rep.weighted_kappa_note is not None
    assert rep.spearman.value is None
    assert rep.trusted is False
    assert "undefined" in rep.verdict_reason
    assert any("humans marked every item 'pass'" in w for w in rep.warnings)
    assert any("judge marked every item 'pass'" in w for w in rep.warnings)
    json.dumps(rep.to_dict(), allow_nan=False)


def test_calibrate_detects_lenient_judge() -> None:
    human = [1, 2, 3, 4] * 10
    judge = [min(5, h + 1) for h in human]
    rep = calibrate(_pairs(human, judge))
    assert rep.leniency is not None and rep.leniency.low > 0
    assert any("lenient" in w for w in rep.warnings)


def test_calibrate_rejects_duplicates_and_bad_scores() -> None:
    pairs = _pairs(*_random_ratings(2, 25, 0.8))
    with pytest.raises(ValueError, match="twice"):
        calibrate([*pairs, pairs[0]])
    bad = [*pairs[:-1], JudgeHumanPair("x", 6, True, None, 3, True, None)]
    with pytest.raises(ValueError, match="1-5"):
        calibrate(bad)


def test_calibrate_reports_human_ceiling() -> None:
    human, judge = _random_ratings(9, 30, 0.8)
    pairs = _pairs(human, judge)
    # two annotators who disagree a lot on pass/fail
    labels = []
    for i, h in enumerate(human):
        labels.append(_label(f"i{i}", "x", h, h >= 4))
        labels.append(_label(f"i{i}", "y", h, (h >= 4) if i % 2 else not (h >= 4)))
    rep = calibrate(pairs, annotator_labels=labels)
    assert rep.human_agreement is not None and rep.human_agreement.n_items == 30
    assert rep.human_agreement.fleiss_pass is not None and rep.human_agreement.fleiss_pass < 0.6
    assert any("annotators agree" in w for w in rep.warnings)
