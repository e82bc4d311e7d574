"""How well a pairwise judge agrees with people on the same pairs (pure).

Input: one (judge verdict, human verdict) per human vote, each in model terms ``model_a`` |
``model_b`` | ``tie`` (the judge's verdict is its both-orders verdict). Reported as the MT-Bench
paper does (Zheng et al. 2023, §4.2, Table 3):

* **agreement without ties** ("w/o tie"): over the votes where neither the judge nor the person said
  tie, the share where they picked the same answer;
* **agreement with ties** ("w/ tie"): over all votes, the share of identical verdicts, tie being a
  verdict of its own;

both with Wilson score intervals (votes treated as independent), and **Cohen's kappa** over the three
classes {A, B, tie} (κ = (p_o − p_e)/(1 − p_e), Cohen 1960; people as the reference rater, in rows),
with the Jeffreys posterior interval of `benchrun.analysis.calibration.kappa_interval` (the same as
pointwise calibration reports; its coverage is measured in docs/statistics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchrun.analysis.calibration import KappaResult, cohen_kappa_from_table
from benchrun.analysis.stats import Interval, wilson_interval

CLASSES = ("model_a", "model_b", "tie")


@dataclass(frozen=True)
class PairwiseAgreement:
    votes: int
    agreement_with_ties: Interval | None
    decisive_votes: int  # votes where neither side said tie
    agreement_without_ties: Interval | None
    kappa: KappaResult
    table: tuple[tuple[int, int, int], ...]  # rows: human, columns: judge, in CLASSES order


def pairwise_agreement(pairs: Sequence[tuple[str, str]], level: float = 0.95) -> PairwiseAgreement:
    """Agreement of ``(judge, human)`` verdicts; `ValueError` on a verdict outside `CLASSES`."""
    idx = {c: i for i, c in enumerate(CLASSES)}
    table = [[0, 0, 0] for _ in CLASSES]
    for judge, human in pairs:
        if judge not in idx or human not in idx:
            raise ValueError(f"verdicts must be one of {', '.join(CLASSES)}, got {judge!r} and {human!r}")
        table[idx[human]][idx[judge]] += 1
    n = len(pairs)
    same = sum(table[i][i] for i in range(3))
    decisive = [(j, h) for j, h in pairs if j != "tie" and h != "tie"]
    same_decisive = sum(1 for j, h in decisive if j == h)
    return PairwiseAgreement(
        votes=n,
        agreement_with_ties=wilson_interval(same, n, level) if n else None,
        decisive_votes=len(decisive),
        agreement_without_ties=wilson_interval(same_decisive, len(decisive), level) if decisive else None,
        kappa=cohen_kappa_from_table(table, level, reference="people (rows)"),
        table=tuple((r[0], r[1], r[2]) for r in table),
    )
