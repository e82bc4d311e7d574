"""Can we trust the judge? Agreement between an LLM judge and human labels.

Pure functions over plain data: the caller pairs each judged item with its human
label(s) and gets back a `CalibrationReport`. Nothing here prints, opens the ledger
or calls a model.

Conventions used throughout:

* Confusion matrices have **humans in rows and the judge in columns**.
  ``pass_confusion[0][1]`` is therefore "human fail, judge pass": a false pass,
  the dangerous error of a lenient judge.
* Scores are on the rubric's 1-5 scale; the 5x5 ``score_confusion`` is indexed
  ``[human_score - 1][judge_score - 1]``.
* Undefined statistics (kappa when everybody put every item in the same class,
  Spearman when one side has no variance) are ``None`` with a note explaining why,
  never NaN, never a made-up 1.0.

References
----------
Brown L.D., Cai T.T., DasGupta A. (2001) Interval estimation for a binomial proportion.
    Stat Sci 16:101-133. (Jeffreys intervals: equal-tailed Beta(1/2, 1/2) posterior intervals.)
Cohen J. (1960) A coefficient of agreement for nominal scales. Educ Psychol Meas 20:37-46.
Cohen J. (1968) Weighted kappa. Psychol Bull 70:213-220.
Fleiss J.L., Cohen J., Everitt B.S. (1969) Large sample standard errors of kappa and
    weighted kappa. Psychol Bull 72:323-327.
Fleiss J.L. (1971) Measuring nominal scale agreement among many raters. Psychol Bull 76:378-382.
Krippendorff K. (2011) Computing Krippendorff's alpha-reliability. Univ. of Pennsylvania.
Landis J.R., Koch G.G. (1977) The measurement of observer agreement for categorical data.
    Biometrics 33:159-174.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from benchrun.analysis.stats import Interval, wilson_interval, z_for
from benchrun.errors import BenchrunError

KAPPA_DRAWS = 10_000
KAPPA_SEED = 20240613
KAPPA_INTERVAL = ("Jeffreys: equal-tailed interval of kappa under the Dirichlet(1/2, ..., 1/2) posterior of the "
                  "table ({draws:,} draws, fixed seed)")
KAPPA_WALD = "Wald: kappa ± z·SE (Fleiss, Cohen & Everitt 1969 SE)"

MIN_ITEMS = 20
"""Below this many labelled items `calibrate` refuses (`TooFewLabels`)."""

WARN_ITEMS = 100
"""Below this many labelled items the report carries a sample-size warning."""

SCORES = (1, 2, 3, 4, 5)


class TooFewLabels(BenchrunError):
    """Fewer than `MIN_ITEMS` judge/human pairs: no conclusion about the judge is possible."""

    exit_code = 2

    def __init__(self, n: int, minimum: int = MIN_ITEMS) -> None:
        self.n = n
        self.minimum = minimum
        super().__init__(
            f"only {n} labelled item(s) match judged results; calibration needs at least {minimum} "
            f"(100 or more for a usable confidence interval). Label more items and run calibration again."
        )


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class JudgeHumanPair:
    """One judged item with the (aggregated) human label.

    ``human_score`` must be an integer 1-5: when several annotators labelled the item,
    use `aggregate_annotators`, which takes the lower median.
    A failure mode of ``None`` means "not labelled"; such pairs are left out of the
    per-failure-mode precision/recall only.
    """

    item_id: str
    judge_score: int
    judge_pass: bool
    judge_failure_mode: str | None
    human_score: int
    human_pass: bool
    human_failure_mode: str | None


class RatingLike(Protocol):
    """Anything with the fields of a human label (e.g. `benchrun.labels.Label`)."""

    @property
    def item_id(self) -> str: ...
    @property
    def annotator(self) -> str: ...
    @property
    def human_score(self) -> int: ...
    @property
    def human_pass(self) -> bool: ...
    @property
    def failure_mode(self) -> str | None: ...


@dataclass(frozen=True)
class AggregatedLabel:
    """The consensus of all annotators of one item (see `aggregate_annotators`)."""

    item_id: str
    human_score: int
    human_pass: bool
    human_failure_mode: str | None
    n_annotators: int
    unanimous: bool


def aggregate_annotators(labels: Iterable[RatingLike]) -> dict[str, AggregatedLabel]:
    """Collapse several annotators' labels of each item into one label.

    * score: the **lower median** (``statistics.median_low``), so an even split such as
      3/4 never invents a half point and errs on the strict side;
    * pass: the **majority**; a tie counts as fail (strict);
    * failure mode: the most frequent labelled mode; a tie between modes gives ``None``
      (ambiguous, left out of failure-mode precision/recall).

    Returns a dict keyed by item id, in order of first appearance.
    """
    grouped: dict[str, list[RatingLike]] = {}
    for lab in labels:
        grouped.setdefault(lab.item_id, []).append(lab)
    out: dict[str, AggregatedLabel] = {}
    for item_id, labs in grouped.items():
        scores = [int(x.human_score) for x in labs]
        passes = [bool(x.human_pass) for x in labs]
        modes = [x.failure_mode for x in labs if x.failure_mode]
        n_pass = sum(passes)
        mode: str | None = None
        if modes:
            ranked = Counter(modes).most_common()
            if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
                mode = ranked[0][0]
        unanimous = len(set(scores)) == 1 and len(set(passes)) == 1 and len(set(modes)) <= 1
        out[item_id] = AggregatedLabel(
            item_id=item_id,
            human_score=int(statistics.median_low(scores)),
            human_pass=n_pass * 2 > len(passes),
            human_failure_mode=mode,
            n_annotators=len(labs),
            unanimous=unanimous,
        )
    return out


class JudgeVerdictLike(Protocol):
    @property
    def score(self) -> int: ...
    @property
    def passed(self) -> bool: ...
    @property
    def failure_mode(self) -> str | None: ...


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's verdict on one item, as recorded in the ledger."""

    score: int
    passed: bool
    failure_mode: str | None = None


def build_pairs(
    aggregated: Mapping[str, AggregatedLabel], judge: Mapping[str, JudgeVerdictLike]
) -> tuple[list[JudgeHumanPair], list[str]]:
    """Join human labels with judge verdicts by item id.

    Returns the pairs (in label order) and the item ids that have a label but no judge
    verdict (e.g. the judge call failed), so the caller can report them.
    """
    pairs: list[JudgeHumanPair] = []
    missing: list[str] = []
    for item_id, lab in aggregated.items():
        v = judge.get(item_id)
        if v is None:
            missing.append(item_id)
            continue
        pairs.append(
            JudgeHumanPair(
                item_id=item_id,
                judge_score=int(v.score),
                judge_pass=bool(v.passed),
                judge_failure_mode=v.failure_mode,
                human_score=lab.human_score,
                human_pass=lab.human_pass,
                human_failure_mode=lab.human_failure_mode,
            )
        )
    return pairs, missing


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class KappaResult:
    """A kappa coefficient, its asymptotic standard error and confidence interval.

    ``value`` is ``None`` when kappa is undefined (expected agreement is 1, or the reference
    rater, the humans, used a single class); ``note`` then says why. ``se`` is the large-sample
    SE of Fleiss, Cohen & Everitt (1969), reported for reference; the ``interval`` is the
    Jeffreys posterior interval (`kappa_interval`), ``method`` names it.
    """

    value: float | None
    se: float | None = None
    interval: Interval | None = None
    observed_agreement: float | None = None
    expected_agreement: float | None = None
    note: str | None = None
    method: str | None = None


def _confusion(a: Sequence[Hashable], b: Sequence[Hashable], categories: Sequence[Hashable]) -> list[list[int]]:
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    m = [[0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        if x not in index or y not in index:
            raise ValueError(f"value {x if x not in index else y!r} is not one of the categories {list(categories)}")
        m[index[x]][index[y]] += 1
    return m


def _kappa_of(p: Any) -> Any:
    """Cohen's kappa of probability tables p[..., k, k] (vectorised)."""
    import numpy as np

    rows = p.sum(axis=-1)
    cols = p.sum(axis=-2)
    po = np.trace(p, axis1=-2, axis2=-1)
    pe = np.sum(rows * cols, axis=-1)
    return (po - pe) / (1.0 - pe)


@functools.lru_cache(maxsize=8)
def _uniforms(draws: int, cells: int, seed: int) -> Any:
    import numpy as np

    u = np.random.default_rng(seed).random((draws, cells))
    u.setflags(write=False)
    return u


@functools.lru_cache(maxsize=65536)
def _jeffreys_bounds(counts: tuple[float, ...], k: int, level: float, draws: int, seed: int) -> tuple[float, float]:
    import numpy as np
    from scipy.special import gammaincinv

    g = gammaincinv(np.asarray(counts, dtype=float) + 0.5, _uniforms(draws, k * k, seed))
    p = (g / g.sum(axis=1, keepdims=True)).reshape(draws, k, k)
    kap = _kappa_of(p)
    kap = kap[np.isfinite(kap)]
    lo, hi = np.quantile(kap, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def kappa_interval(table: Sequence[Sequence[float]], level: float = 0.95, draws: int = KAPPA_DRAWS,
                   seed: int = KAPPA_SEED) -> Interval | None:
    """Jeffreys interval for Cohen's kappa: the equal-tailed ``level`` interval of kappa under the
    Dirichlet(n_ij + 1/2) posterior of the cell probabilities (Jeffreys prior on the multinomial).

    The binomial Jeffreys interval has close to nominal coverage even at small n (Brown, Cai &
    DasGupta 2001); for kappa the same construction covers 0.93-0.97 at n = 20-200 in our
    simulations (docs/statistics.md), where the Wald interval covers 0.61-0.93 at n = 20 and is
    too narrow near kappa = 1. It needs no special case at perfect agreement (the posterior
    still allows disagreement, so 20 agreeing items do not prove kappa = 1), and one more
    disagreement never raises its lower end: the posterior draws use common random numbers
    (inverse-CDF gamma draws from fixed uniforms), so moving one item off the diagonal shifts
    every draw the same way. As for the binomial Jeffreys interval (Brown et al. 2001, §4.1.2)
    the upper end is set to 1 when the raters agree on every item, and the interval always
    contains the estimate. Monte Carlo error of each end is about 0.003 with 10,000 draws;
    deterministic for a given table (fixed seed). None when kappa is undefined.
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError("kappa needs a square table")
    n = float(t.sum())
    if n <= 0:
        return None
    est = float(_kappa_of(t / n))
    if not math.isfinite(est):
        return None
    lo, hi = _jeffreys_bounds(tuple(float(x) for x in t.ravel()), t.shape[0], level, draws, seed)
    if float(np.trace(t)) == n:
        hi = 1.0
    return Interval(est, max(-1.0, min(lo, est)), min(1.0, max(hi, est)), level,
                    KAPPA_INTERVAL.format(draws=draws))


def _fce_se(p: Any, kappa: float, n: float) -> float:
    """Fleiss, Cohen & Everitt (1969) large-sample (non-null) SE of kappa for proportions p."""
    import numpy as np

    rows = p.sum(axis=1)
    cols = p.sum(axis=0)
    pe = float(rows @ cols)
    diag = np.diag(p)
    a = float(np.sum(diag * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2))
    # cell (i, j) is weighted by (p_.i + p_j.)²: column margin of i plus row margin of j
    w = (cols[:, None] + rows[None, :]) ** 2
    off = p * w
    b = (1.0 - kappa) ** 2 * float(off.sum() - np.trace(off))
    c = (kappa - pe * (1.0 - kappa)) ** 2
    return math.sqrt(max(0.0, (a + b - c) / (n * (1.0 - pe) ** 2)))


def kappa_wald_interval(table: Sequence[Sequence[float]], level: float = 0.95) -> Interval | None:
    """The Wald interval κ ± z·SE with the Fleiss-Cohen-Everitt SE, clipped to [−1, 1]: what SAS PROC
    FREQ, Stata ``kapci`` and statsmodels report. Kept for comparison only: it covers far less than
    its level at small n and collapses to a point at perfect agreement (issue 13)."""
    import numpy as np

    t = np.asarray(table, dtype=float)
    n = float(t.sum())
    if n <= 0:
        return None
    p = t / n
    kappa = float(_kappa_of(p))
    if not math.isfinite(kappa):
        return None
    se = _fce_se(p, kappa, n)
    z = z_for(level)
    return Interval(kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se), level, KAPPA_WALD)


def cohen_kappa_from_table(table: Sequence[Sequence[float]], level: float = 0.95, draws: int = KAPPA_DRAWS,
                           reference: str = "rater 1 (rows)") -> KappaResult:
    """Cohen's kappa of a k x k contingency table (rater 1, the reference, in rows; rater 2 in columns).

    κ = (p_o − p_e) / (1 − p_e), with p_o = Σ p_ii and p_e = Σ p_i. p_.i (Cohen 1960).

    ``se`` is the large-sample, non-null SE of Fleiss, Cohen & Everitt (1969), the one SAS PROC
    FREQ and Stata ``kapci`` report:

        var(κ) = [ Σ_i p_ii (1 − (p_i. + p_.i)(1 − κ))²
                   + (1 − κ)² Σ_{i≠j} p_ij (p_.i + p_j.)²
                   − (κ − p_e (1 − κ))² ] / (n (1 − p_e)²)

    The ``interval`` is the Jeffreys posterior interval (`kappa_interval`), not κ ± z·SE:
    the Wald interval covers only 0.61-0.93 at n = 20 and is not monotone near perfect
    agreement (`kappa_wald_interval` keeps it for comparison).

    Undefined (``value`` None, with a note): no items; chance agreement 1 (both raters used
    one and the same class); or the reference rater (rows: the humans in `calibrate`) used a
    single class, where κ is 0 whatever the other rater does, so it cannot measure agreement.
    When only rater 2 (the judge) is constant, κ = 0 is meaningful (the judge does not
    discriminate) and is reported.
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError("kappa needs a square table")
    n = float(t.sum())
    if n <= 0:
        return KappaResult(None, note="no items")
    p = t / n
    rows = p.sum(axis=1)
    cols = p.sum(axis=0)
    po = float(np.trace(p))
    pe = float(rows @ cols)
    if 1.0 - pe <= 1e-12:
        used = int(np.count_nonzero(rows + cols))
        why = (
            "both raters put every item in the same single class, so chance agreement is 1 and kappa is 0/0"
            if used == 1
            else "chance agreement is 1, so kappa is 0/0"
        )
        return KappaResult(None, observed_agreement=po, expected_agreement=pe, note=f"kappa is undefined: {why}")
    if int(np.count_nonzero(rows)) == 1:
        return KappaResult(
            None, observed_agreement=po, expected_agreement=pe,
            note=(f"kappa is undefined: {reference} put every item in one class, so kappa is 0 whatever the other "
                  "rater does and cannot show agreement; label a sample that includes both classes"),
        )
    kappa = (po - pe) / (1.0 - pe)
    se = _fce_se(p, kappa, n)
    interval = kappa_interval(t, level, draws)
    note = None
    if po == 1.0:
        note = (f"perfect agreement on all {round(n)} items; the interval's lower end says how much agreement "
                "that many items can vouch for")
    return KappaResult(kappa, se, interval, po, pe, note, KAPPA_INTERVAL.format(draws=draws))


def cohen_kappa(
    rater1: Sequence[Hashable], rater2: Sequence[Hashable], categories: Sequence[Hashable] | None = None,
    level: float = 0.95,
) -> KappaResult:
    """Cohen's kappa between two equally long label sequences (see `cohen_kappa_from_table`;
    ``rater1`` is the reference)."""
    if len(rater1) != len(rater2):
        raise ValueError(f"rater sequences differ in length ({len(rater1)} vs {len(rater2)})")
    cats = list(categories) if categories is not None else sorted(set(rater1) | set(rater2), key=repr)
    if not rater1:
        return KappaResult(None, note="no items")
    return cohen_kappa_from_table(_confusion(rater1, rater2, cats), level)


def weighted_kappa(
    rater1: Sequence[int], rater2: Sequence[int], categories: Sequence[int] = SCORES,
    weights: Literal["quadratic", "linear"] = "quadratic",
) -> tuple[float | None, str | None]:
    """Weighted kappa on ordered categories (Cohen 1968).

    κ_w = 1 − Σ w_ij o_ij / Σ w_ij e_ij, with disagreement weights
    w_ij = (i − j)² / (k − 1)² (quadratic) or |i − j| / (k − 1) (linear), observed
    proportions o_ij and chance proportions e_ij = o_i. o_.j. Category positions come
    from ``categories`` (default 1-5), so unused scores still count as distance.
    Returns ``(value, None)`` or ``(None, reason)`` when chance disagreement is zero.
    """
    import numpy as np

    if len(rater1) != len(rater2):
        raise ValueError(f"rater sequences differ in length ({len(rater1)} vs {len(rater2)})")
    if not rater1:
        return None, "no items"
    o = np.asarray(_confusion(rater1, rater2, list(categories)), dtype=float)
    o /= o.sum()
    e = np.outer(o.sum(axis=1), o.sum(axis=0))
    k = len(categories)
    i, j = np.indices((k, k))
    w = ((i - j) ** 2 / (k - 1) ** 2) if weights == "quadratic" else (np.abs(i - j) / (k - 1))
    denom = float((w * e).sum())
    if denom <= 1e-12:
        return None, "weighted kappa is undefined: both raters gave every item the same score"
    return 1.0 - float((w * o).sum()) / denom, None


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its two-sided p-value, or ``None`` and a note."""

    value: float | None
    p_value: float | None
    n: int
    note: str | None = None


def _pearson(x: Any, y: Any) -> float | None:
    xc = x - x.mean()
    yc = y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0.0:
        return None
    return max(-1.0, min(1.0, float(xc @ yc) / den))


def _t_p_value(r: float, df: int) -> float:
    from scipy.stats import t as t_dist

    if abs(r) >= 1.0:
        return 0.0
    tstat = r * math.sqrt(df / (1.0 - r * r))
    return float(2.0 * t_dist.sf(abs(tstat), df))


def spearman(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rank correlation ρ with a two-sided p-value.

    ρ is Pearson's r of the ranks, ties getting their average rank; the p-value uses
    t = ρ·sqrt((n − 2)/(1 − ρ²)) with n − 2 degrees of freedom (as scipy.stats.spearmanr).
    Undefined (``None``) when either side has no variance or n < 3.
    """
    import numpy as np
    from scipy.stats import rankdata

    if len(x) != len(y):
        raise ValueError(f"sequences differ in length ({len(x)} vs {len(y)})")
    n = len(x)
    if n < 3:
        return Correlation(None, None, n, "Spearman's rho needs at least 3 items")
    rx = rankdata(np.asarray(x, dtype=float))
    ry = rankdata(np.asarray(y, dtype=float))
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        side = "the judge" if np.ptp(rx) == 0 else "the humans"
        return Correlation(None, None, n, f"Spearman's rho is undefined: {side} gave every item the same score")
    r = _pearson(rx, ry)
    if r is None:
        return Correlation(None, None, n, "Spearman's rho is undefined: no variance")
    return Correlation(r, _t_p_value(r, n - 2), n)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Mean with a Student-t confidence interval: x̄ ± t_{n−1} · s/√n. ``None`` if n < 2."""
    from scipy.stats import t as t_dist

    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n < 2:
        return None
    sd = statistics.stdev(values)
    half = float(t_dist.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, level, "Student t")


def krippendorff_alpha(
    units: Sequence[Sequence[Hashable | None]], level: Literal["nominal", "ordinal", "interval"] = "nominal"
) -> float | None:
    """Krippendorff's alpha for any number of coders with missing values.

    ``units`` holds, per item, the values the coders gave (``None`` = not coded).
    Built on the coincidence matrix: each unit with m ≥ 2 values adds 1/(m − 1) to o_ck
    for every ordered pair of values from different coders. With marginals n_c and
    n = Σ n_c: α = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck, where δ² is
    0/1 (nominal), (c − k)² (interval) or (Σ_{g=c..k} n_g − (n_c + n_k)/2)² (ordinal).
    Reference: Krippendorff (2011). ``None`` when there are no pairable values or the
    expected disagreement is zero (a single value used throughout).
    """
    import numpy as np

    domain = sorted({v for u in units for v in u if v is not None}, key=lambda v: (not isinstance(v, (int, float)), v))
    idx = {v: i for i, v in enumerate(domain)}
    k = len(domain)
    if k == 0:
        return None
    o = np.zeros((k, k))
    for u in units:
        vals = [idx[v] for v in u if v is not None]
        m = len(vals)
        if m < 2:
            continue
        cnt = np.bincount(vals, minlength=k).astype(float)
        o += (np.outer(cnt, cnt) - np.diag(cnt)) / (m - 1)
    nc = o.sum(axis=1)
    n = float(nc.sum())
    if n <= 1:
        return None
    if level == "nominal":
        d2 = 1.0 - np.eye(k)
    elif level == "interval":
        vals_f = np.asarray(domain, dtype=float)
        d2 = (vals_f[:, None] - vals_f[None, :]) ** 2
    elif level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(nc)])
        d2 = np.zeros((k, k))
        for c in range(k):
            for g in range(c, k):
                d2[c, g] = d2[g, c] = (cum[g + 1] - cum[c] - (nc[c] + nc[g]) / 2.0) ** 2
    else:
        raise ValueError(f"unknown level {level!r}")
    de = float((np.outer(nc, nc) * d2).sum())
    if de <= 1e-12:
        return None
    return 1.0 - (n - 1.0) * float((o * d2).sum()) / de


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa for N items each rated by the same number m of raters.

    ``table[i][j]`` = how many raters put item i in category j. With
    P_i = (Σ_j n_ij² − m) / (m(m − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / (N m) and
    P_e = Σ p_j²: κ = (P̄ − P_e) / (1 − P_e). Reference: Fleiss (1971).
    ``None`` if undefined (P_e = 1: a single category used throughout).
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] == 0:
        return None
    m = t.sum(axis=1)
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    mm = float(m[0])
    p_i = ((t**2).sum(axis=1) - mm) / (mm * (mm - 1))
    p_bar = float(p_i.mean())
    p_j = t.sum(axis=0) / t.sum()
    pe = float((p_j**2).sum())
    if 1.0 - pe <= 1e-12:
        return None
    return (p_bar - pe) / (1.0 - pe)


# ----------------------------------------------------------------------------- human-human


@dataclass(frozen=True)
class AnnotatorAgreement:
    """How much the humans agree with each other: the ceiling for the judge.

    ``alpha_score_ordinal``: Krippendorff's alpha on 1-5 scores (ordinal metric);
    ``alpha_pass_nominal``: Krippendorff's alpha on pass/fail;
    ``fleiss_pass``: Fleiss' kappa on pass/fail over ``fleiss_items`` items that have the
    most common number of annotators (Fleiss needs a constant count);
    ``pairwise_pass_agreement``: share of annotator pairs (within items) agreeing on pass.
    """

    n_items: int
    n_annotators: int
    alpha_score_ordinal: float | None
    alpha_pass_nominal: float | None
    fleiss_pass: float | None
    fleiss_items: int
    pairwise_pass_agreement: float | None
    notes: list[str] = field(default_factory=list)


def annotator_agreement(labels: Iterable[RatingLike]) -> AnnotatorAgreement | None:
    """Human-human agreement over items labelled by at least two annotators.

    ``None`` when no item has two or more annotators.
    """
    by_item: dict[str, dict[str, RatingLike]] = {}
    for lab in labels:
        by_item.setdefault(lab.item_id, {})[lab.annotator] = lab
    multi = {k: v for k, v in by_item.items() if len(v) >= 2}
    if not multi:
        return None
    annotators = sorted({a for v in multi.values() for a in v})
    score_units = [[int(lab.human_score) for lab in v.values()] for v in multi.values()]
    pass_units = [[bool(lab.human_pass) for lab in v.values()] for v in multi.values()]
    notes: list[str] = []
    a_score = krippendorff_alpha(score_units, "ordinal")
    a_pass = krippendorff_alpha(pass_units, "nominal")
    if a_score is None:
        notes.append("alpha on scores is undefined: every annotator gave the same score to every item")
    if a_pass is None:
        notes.append("alpha on pass/fail is undefined: every annotator gave the same verdict to every item")
    counts = Counter(len(u) for u in pass_units)
    m = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    table = [[sum(1 for x in u if not x), sum(1 for x in u if x)] for u in pass_units if len(u) == m]
    fk = fleiss_kappa(table)
    if len(table) < len(pass_units):
        notes.append(
            f"Fleiss' kappa uses the {len(table)} items with {m} annotators (it needs a constant number per item)"
        )
    agree = total = 0
    for u in pass_units:
        for i in range(len(u)):
            for j in range(i + 1, len(u)):
                total += 1
                agree += u[i] == u[j]
    return AnnotatorAgreement(
        n_items=len(multi),
        n_annotators=len(annotators),
        alpha_score_ordinal=a_score,
        alpha_pass_nominal=a_pass,
        fleiss_pass=fk,
        fleiss_items=len(table),
        pairwise_pass_agreement=agree / total if total else None,
        notes=notes,
    )


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FailureModeStats:
    """Does the judge name the same failure mode as the humans?

    Over every item whose failure mode the humans labelled (a judge that named none counts as
    "none"): precision = both named it / judge named it; recall = both named it / humans named
    it (as sklearn ``precision_recall_fscore_support`` per label). ``None`` when the denominator
    is zero.
    """

    mode: str
    human_count: int
    judge_count: int
    both: int
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class CalibrationReport:
    """Everything `calibrate` found. See docs/judge-trust.md for how to read it."""

    n: int
    threshold: float
    level: float
    percent_agreement: Interval
    kappa: KappaResult
    weighted_kappa: float | None
    weighted_kappa_note: str | None
    spearman: Correlation
    pass_confusion: list[list[int]]
    score_confusion: list[list[int]]
    false_pass: int
    false_fail: int
    judge_pass_rate: float
    human_pass_rate: float
    leniency: Interval | None
    failure_modes: list[FailureModeStats]
    failure_mode_items: int
    human_agreement: AnnotatorAgreement | None
    trusted: bool
    verdict: str
    verdict_reason: str
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (no NaN: undefined values are ``None``)."""
        d = asdict(self)
        d["pass_confusion_labels"] = {"rows": "human [fail, pass]", "columns": "judge [fail, pass]"}
        d["score_confusion_labels"] = {"rows": "human score 1..5", "columns": "judge score 1..5"}
        return d


def _check_pair(p: JudgeHumanPair) -> None:
    for name in ("judge_score", "human_score"):
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int) or v not in SCORES:
            raise ValueError(f"item {p.item_id}: {name} must be an integer 1-5, got {v!r}")


def pass_kappa(pairs: Sequence[JudgeHumanPair], level: float = 0.95) -> KappaResult:
    """Cohen's kappa of judge pass/fail against the humans' (the reference, rows of the 2x2 table), with
    its Jeffreys interval: the number `calibrate` decides trust on (`cohen_kappa_from_table`). No minimum
    number of pairs, so a labelling session can show the agreement so far; `calibrate` refuses below
    `MIN_ITEMS`."""
    table = _confusion([p.human_pass for p in pairs], [p.judge_pass for p in pairs], [False, True])
    return cohen_kappa_from_table(table, level, reference="the humans")


def calibrate(
    pairs: Sequence[JudgeHumanPair],
    threshold: float = 0.6,
    level: float = 0.95,
    *,
    annotator_labels: Iterable[RatingLike] | None = None,
) -> CalibrationReport:
    """Measure agreement between the judge and humans on the same items.

    The verdict is on pass/fail, because pass/fail is what the benchmark reports:
    the judge is **trusted when the lower bound of the ``level`` (95%) confidence interval of
    Cohen's kappa is at least ``threshold``** (default 0.6, "substantial" in Landis &
    Koch 1977). Using the lower bound rather than the point estimate means a small
    label set cannot earn trust by luck; with few labels the verdict says so.

    ``annotator_labels`` (all individual labels, several per item) adds the human-human
    agreement, reported as the ceiling the judge can reasonably reach.

    Raises `TooFewLabels` below `MIN_ITEMS` pairs.
    """
    n = len(pairs)
    if n < MIN_ITEMS:
        raise TooFewLabels(n)
    for p in pairs:
        _check_pair(p)
    seen: set[str] = set()
    for p in pairs:
        if p.item_id in seen:
            raise ValueError(f"item {p.item_id} appears twice; aggregate annotators first (aggregate_annotators)")
        seen.add(p.item_id)

    hp = [p.human_pass for p in pairs]
    jp = [p.judge_pass for p in pairs]
    hs = [p.human_score for p in pairs]
    js = [p.judge_score for p in pairs]
    warnings: list[str] = []

    pass_conf = _confusion(hp, jp, [False, True])
    score_conf = _confusion(hs, js, list(SCORES))
    agree = pass_conf[0][0] + pass_conf[1][1]
    pct = wilson_interval(agree, n, level)
    kappa = pass_kappa(pairs, level)
    wk, wk_note = weighted_kappa(hs, js, SCORES, "quadratic")
    rho = spearman(js, hs)
    leniency = t_interval([float(j - h) for j, h in zip(js, hs, strict=True)], level)

    # failure modes
    # every item whose failure mode the humans labelled counts; a judge that named no mode named "none",
    # so its omissions lower recall and its false alarms lower precision
    fm_pairs = [(p.human_failure_mode, p.judge_failure_mode or "none") for p in pairs if p.human_failure_mode]
    modes = sorted({m for pair in fm_pairs for m in pair})
    fm_stats: list[FailureModeStats] = []
    for m in modes:
        h_cnt = sum(1 for h, _ in fm_pairs if h == m)
        j_cnt = sum(1 for _, j in fm_pairs if j == m)
        both = sum(1 for h, j in fm_pairs if h == m and j == m)
        fm_stats.append(
            FailureModeStats(m, h_cnt, j_cnt, both, both / j_cnt if j_cnt else None, both / h_cnt if h_cnt else None)
        )

    human_agreement = annotator_agreement(annotator_labels) if annotator_labels is not None else None

    # warnings
    if all(hp) or not any(hp):
        cls = "pass" if all(hp) else "fail"
        warnings.append(
            f"the humans marked every item '{cls}': kappa cannot show whether the judge tells good from bad "
            "answers; label a sample that includes both (stratify by judge verdict)"
        )
    if all(jp) or not any(jp):
        cls = "pass" if all(jp) else "fail"
        warnings.append(f"the judge marked every item '{cls}'")
    if kappa.interval is not None and n < WARN_ITEMS:
        warnings.append(
            f"only {n} labelled items: the {level:.0%} confidence interval of kappa is "
            f"{kappa.interval.low:.2f} to {kappa.interval.high:.2f} ({kappa.interval.width:.2f} wide); "
            "it narrows with the square root of n, so about 4x the items halve it"
        )
    elif n < WARN_ITEMS:
        warnings.append(
            f"only {n} labelled items: the {level:.0%} interval of percent agreement is "
            f"{pct.low:.2f} to {pct.high:.2f} ({pct.width:.2f} wide)"
        )
    if human_agreement is not None and human_agreement.fleiss_pass is not None and human_agreement.fleiss_pass < threshold:
        warnings.append(
            f"the annotators agree with each other only at Fleiss' kappa {human_agreement.fleiss_pass:.2f} "
            f"(below {threshold}); no judge can be expected to do better: sharpen the rubric before blaming the judge"
        )
    if leniency is not None and leniency.low > 0:
        warnings.append(f"the judge is lenient: it scores {leniency.estimate:+.2f} points above the humans on average")
    elif leniency is not None and leniency.high < 0:
        warnings.append(f"the judge is harsh: it scores {leniency.estimate:+.2f} points below the humans on average")

    # verdict
    if kappa.value is None or kappa.interval is None:
        trusted = False
        reason = f"{kappa.note}; percent agreement {pct.estimate:.0%} alone cannot establish trust"
    elif kappa.interval.low >= threshold:
        trusted = True
        reason = (
            f"kappa {kappa.value:.2f}; the lower end of its {level:.0%} interval ({kappa.interval.low:.2f}) "
            f"is at least {threshold}"
        )
    elif kappa.value >= threshold:
        trusted = False
        reason = (
            f"kappa {kappa.value:.2f} is above {threshold} but the lower end of its {level:.0%} interval "
            f"({kappa.interval.low:.2f}) is not; label more items to narrow the interval"
        )
    else:
        trusted = False
        reason = f"kappa {kappa.value:.2f} is below {threshold}"

    return CalibrationReport(
        n=n,
        threshold=threshold,
        level=level,
        percent_agreement=pct,
        kappa=kappa,
        weighted_kappa=wk,
        weighted_kappa_note=wk_note,
        spearman=rho,
        pass_confusion=pass_conf,
        score_confusion=score_conf,
        false_pass=pass_conf[0][1],
        false_fail=pass_conf[1][0],
        judge_pass_rate=sum(jp) / n,
        human_pass_rate=sum(hp) / n,
        leniency=leniency,
        failure_modes=fm_stats,
        failure_mode_items=len(fm_pairs),
        human_agreement=human_agreement,
        trusted=trusted,
        verdict="trusted" if trusted else "not trusted",
        verdict_reason=reason,
        warnings=warnings,
    )
