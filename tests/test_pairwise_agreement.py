"""Judge-vs-human agreement on pairs (analysis/pairwise_agreement.py): MT-Bench's two agreement figures
and Cohen's kappa over {A, B, tie}, checked against scikit-learn and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from benchrun.analysis.pairwise_agreement import CLASSES, pairwise_agreement


def test_hand_counted_agreement_and_kappa_against_sklearn() -> None:
    # judge, human
    pairs = ([("model_a", "model_a")] * 7 + [("model_b", "model_b")] * 5 + [("tie", "tie")] * 2
             + [("model_a", "model_b")] * 2 + [("tie", "model_a")] * 3 + [("model_b", "tie")] * 1)
    a = pairwise_agreement(pairs)
    assert a.votes == 20
    assert a.agreement_with_ties is not None and a.agreement_with_ties.estimate == pytest.approx(14 / 20)
    # without ties: only votes where neither said tie: 7 + 5 agree, 2 disagree
    assert a.decisive_votes == 14
    assert a.agreement_without_ties is not None and a.agreement_without_ties.estimate == pytest.approx(12 / 14)
    judge, human = zip(*pairs, strict=True)
    assert a.kappa.value == pytest.approx(cohen_kappa_score(list(human), list(judge)), abs=1e-12)
    assert a.table[CLASSES.index("model_a")][CLASSES.index("tie")] == 3  # rows are people, columns the judge
    from scipy.stats import binomtest

    ci = binomtest(12, 14).proportion_ci(0.95, method="wilson")
    assert a.agreement_without_ties.low == pytest.approx(ci.low, abs=1e-9)
    with pytest.raises(ValueError, match="verdicts must be one of"):
        pairwise_agreement([("A", "model_a")])


def test_kappa_interval_over_three_classes_covers_by_simulation() -> None:
    """A judge that copies the person's verdict with probability 0.6, else answers at random: the 95% kappa
    interval on 120 votes must cover the population kappa in about 95% of 200 data sets."""
    rng = np.random.default_rng(11)
    human_p = np.array([0.4, 0.35, 0.25])
    copy = 0.6
    joint = np.array([[human_p[i] * (copy * (i == j) + (1 - copy) / 3) for j in range(3)] for i in range(3)])
    po, pe = np.trace(joint), joint.sum(1) @ joint.sum(0)
    true_kappa = (po - pe) / (1 - pe)
    reps, covered = 200, 0
    for _ in range(reps):
        cells = rng.multinomial(120, joint.ravel()).reshape(3, 3)
        pairs = [(CLASSES[j], CLASSES[i]) for i in range(3) for j in range(3) for _ in range(cells[i, j])]
        iv = pairwise_agreement(pairs).kappa.interval
        assert iv is not None
        covered += iv.low <= true_kappa <= iv.high
    # 95% nominal; with 200 reps the binomial sd is 1.5 points: accept 0.91-0.985
    assert 0.91 <= covered / reps <= 0.985, covered / reps
