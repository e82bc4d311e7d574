"""Paired comparison of two models on the same cases: is the gap larger than noise?

Everything here is a pure function over `Outcome` lists (one list per model). Nothing
prints, opens the ledger or calls a model. Results are frozen dataclasses that
`dataclasses.asdict` turns into JSON-ready dicts (undefined numbers are ``None``, never NaN).

What is computed and why (details in each docstring, in docs/compare.md and docs/statistics.md):

* pairing by case id: both models answered the same cases, so the per-case difference
  removes case difficulty from the comparison (a paired design is much tighter than
  comparing two independent pass rates);
* the pass-rate difference with two intervals: a paired bootstrap over cases
  (percentile) and a cluster-robust standard error (cases as clusters);
* the verdict's test: McNemar's exact test with one sample per case, and with several the
  exact paired sign-flip (permutation) test on the per-case mean differences, which is
  McNemar's test generalised (both are exact and use every sample);
* a paired t interval on the mean judge score;
* per-category / per-severity breakdowns with Benjamini-Hochberg adjusted p-values, the list
  of flipped cases;
* power of the verdict's exact test (exact enumeration): the smallest difference a number of
  cases can detect and the cases a difference needs;
* pass@k and pass^k for several samples per case, and per-case consistency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from benchrun.analysis.signflip import sign_flip_test
from benchrun.analysis.stats import (
    Interval,
    all_equal_difference_interval,
    bh_adjust,
    z_for,
)
from benchrun.errors import BadInput

SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

MCNEMAR = "McNemar exact"
BOOTSTRAP = "percentile bootstrap over cases ({n:,} resamples)"

# ----------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Outcome:
    """One scored sample of one model on one case.

    ``passed=None`` means the sample errored: the model could not answer or the answer
    could not be judged. Errored samples are left out of every rate (they are counted and
    reported, never silently treated as failures). ``score`` is the judge score, if any.
    """

    case_id: str
    sample: int
    passed: bool | None
    score: float | None
    category: str
    severity: str


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on discordant cases (one sample per case).

    ``a_only`` = cases A passes and B fails (b10), ``b_only`` = cases B passes and A fails
    (b01). Only computed when every paired case has one sample: with several samples the
    verdict uses `PairedTest` (sign-flip test), never a majority vote per case.
    ``basis`` and ``ties_excluded`` are kept for compatibility (always "single sample", 0).
    """

    a_only: int
    b_only: int
    n_discordant: int
    p_value: float
    basis: Literal["single sample"]
    ties_excluded: int


@dataclass(frozen=True)
class PairedTest:
    """The test the verdict uses: two-sided exact p-value for "A and B pass equally often".

    ``method`` is `MCNEMAR` (one sample per case) or the paired sign-flip permutation test
    (several samples: exact, or Monte Carlo when exact enumeration is too large).
    ``a_better`` / ``b_better``: cases whose per-case pass rate is higher for A / for B;
    ``n_cases``: paired cases tested; ``mean_difference``: mean of d_i = p_A,i − p_B,i.
    """

    method: str
    p_value: float
    n_cases: int
    a_better: int
    b_better: int
    mean_difference: float


@dataclass(frozen=True)
class ScoreDifference:
    """Mean judge score A - B over cases both models have a score for, with a paired t interval."""

    n_pairs: int
    mean_a: float
    mean_b: float
    difference: float
    interval: Interval | None
    p_value: float | None


@dataclass(frozen=True)
class PairedComparison:
    """Result of `paired_compare`. Rates are shares in [0, 1]; differences are A - B.

    ``test`` is what ``larger_than_noise`` is decided on; ``mcnemar`` is the same test's counts
    with one sample per case (None with several samples).
    """

    name_a: str
    name_b: str
    level: float
    n_pairs: int
    unpaired_a: int
    unpaired_b: int
    errored_cases: int
    error_samples_a: int
    error_samples_b: int
    max_samples_per_case: int
    pass_rate_a: float | None
    pass_rate_b: float | None
    difference: float | None
    bootstrap: Interval | None
    standard_error: float | None
    se_interval: Interval | None
    se_method: str
    mcnemar: McNemarResult | None
    score: ScoreDifference | None
    larger_than_noise: bool
    verdict: str
    notes: tuple[str, ...] = ()
    test: PairedTest | None = None


@dataclass(frozen=True)
class GroupComparison:
    """A `PairedComparison` restricted to one category or one severity.

    ``p_value`` is the group's own test; ``p_adjusted`` its Benjamini-Hochberg adjusted p-value
    over every group of the breakdown with at least ``min_pairs`` pairs (None for the others);
    ``flagged`` = p_adjusted < 1 - level. A group's own ``comparison.larger_than_noise`` is
    unadjusted: read ``flagged``.
    """

    dimension: Literal["category", "severity"]
    group: str
    comparison: PairedComparison
    too_few_pairs: bool
    p_value: float | None = None
    p_adjusted: float | None = None
    flagged: bool = False
    adjustment: str = "Benjamini-Hochberg over the groups with enough pairs"


@dataclass(frozen=True)
class Flip:
    """A case one model passes and the other fails (per-case majority with several samples)."""

    case_id: str
    category: str
    severity: str
    a_passed: bool
    b_passed: bool
    a_pass_rate: float
    b_pass_rate: float


@dataclass(frozen=True)
class CaseConsistency:
    """Samples of one case: ``n`` non-error samples, ``c`` passes, share agreeing with the majority."""

    case_id: str
    n: int
    c: int
    consistency: float


@dataclass(frozen=True)
class MultiSampleSummary:
    """Summary of one model's several samples per case (see `multi_sample_summary`)."""

    n_cases: int
    errored_cases: int
    error_samples: int
    min_samples: int
    max_samples: int
    pass_at_k: dict[int, float | None]
    pass_hat_k: dict[int, float | None]
    cases_used: dict[int, int]
    mean_consistency: float | None
    inconsistent_cases: int
    per_case: tuple[CaseConsistency, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------- grouping


@dataclass
class _Case:
    category: str
    severity: str
    passes: list[bool]
    scores: list[float]
    n_errors: int

    @property
    def rate(self) -> float:
        return sum(self.passes) / len(self.passes)

    def fraction(self) -> Fraction:
        """The pass rate as an exact fraction (for the exact sign-flip test)."""
        return Fraction(sum(self.passes), len(self.passes))

    def majority(self) -> bool | None:
        """True/False by majority of non-error samples; None for an exact split."""
        c, n = sum(self.passes), len(self.passes)
        if 2 * c == n:
            return None
        return 2 * c > n


def _group(outcomes: Iterable[Outcome], name: str) -> dict[str, _Case]:
    cases: dict[str, _Case] = {}
    seen: set[tuple[str, int]] = set()
    def where(o: Outcome) -> str:  # worded only for an error: an f-string per outcome is a summary's hot path
        return f"{name} case {o.case_id}"

    for o in outcomes:
        if not isinstance(o.case_id, str) or not o.case_id:
            raise BadInput(None, name, f"case id {o.case_id!r} must be a non-empty string")
        if (o.case_id, o.sample) in seen:
            raise BadInput(None, where(o), f"sample {o.sample} appears twice; give each sample of a case its own number")
        seen.add((o.case_id, o.sample))
        if o.passed is not None and not isinstance(o.passed, bool):
            raise BadInput(None, where(o), f"passed must be true, false or null (error), got {o.passed!r}")
        if o.score is not None:
            if isinstance(o.score, bool) or not isinstance(o.score, (int, float)) or not math.isfinite(o.score):
                raise BadInput(None, where(o), f"score must be a finite number or null, got {o.score!r}")
        c = cases.get(o.case_id)
        if c is None:
            c = cases[o.case_id] = _Case(o.category, o.severity, [], [], 0)
        elif (c.category, c.severity) != (o.category, o.severity):
            raise BadInput(
                None,
                where(o),
                f"samples disagree on category/severity ({c.category}/{c.severity} vs {o.category}/{o.severity}); "
                "all samples of a case must come from the same dataset version",
            )
        if o.passed is None:
            c.n_errors += 1
            continue
        c.passes.append(o.passed)
        if o.score is not None:
            c.scores.append(float(o.score))
    return cases


# ----------------------------------------------------------------------------- small statistics


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min(b, c)) * 2 for X ~ Binomial(b + c, 1/2), capped at 1.

    Under H0 (both models equally likely to win a discordant case) the count of A-only wins
    among the n = b + c discordant cases is Binomial(n, 1/2). Computed with exact integer
    arithmetic. With no discordant cases p = 1. Reference: McNemar (1947), Psychometrika
    12:153-157; exact form e.g. Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts must be >= 0")
    n = a_only + b_only
    if n == 0:
        return 1.0
    m = min(a_only, b_only)
    tail = sum(math.comb(n, k) for k in range(m + 1))
    return min(1.0, 2 * tail / 2**n)


def cluster_robust_se(differences: Sequence[float]) -> float | None:
    """Cluster-robust (CR1) standard error of the mean per-case difference, cases as clusters.

    Stack every non-error sample of both models as a row ``y = b0 + b1*[model is A] + e``,
    weighting each sample by 1 / (that model's number of samples on that case), so every
    case counts once per model and b1 = mean_i(p_A,i) - mean_i(p_B,i) = mean_i(d_i).
    The Liang-Zeger sandwich with clusters = cases gives for b1 the per-cluster influence
    (d_i - d̄)/G, hence

        Var_CR0(b1) = Σ_i (d_i - d̄)² / G²,   Var_CR1 = G/(G-1) · Var_CR0 = s_d² / G,

    i.e. SE = sd(d_i, ddof=1)/sqrt(G). With one sample per case this is the ordinary
    paired-difference standard error. Several samples of a case are correlated (same
    question), so treating samples as independent would understate the SE; averaging
    within the case first and treating cases as the unit is exactly the clustered answer.
    References: Liang & Zeger (1986), Biometrika 73:13-22; Cameron & Miller (2015),
    J. Human Resources 50:317-372 (G/(G-1) correction, t with G-1 df); Miller (2024),
    "Adding Error Bars to Evals", arXiv:2411.00640.
    Returns None for fewer than 2 cases.
    """
    g = len(differences)
    if g < 2:
        return None
    if min(differences) == max(differences):
        return 0.0  # exactly; avoids rounding noise such as 2e-17
    mean = math.fsum(differences) / g
    ss = sum((d - mean) ** 2 for d in differences)
    return math.sqrt(g / (g - 1) * ss / g**2)


def _t_ppf(level: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[Interval | None, float | None]:
    """Paired t interval for mean(a - b): d̄ ± t_{n-1, (1+level)/2} · s_d/√n, and the two-sided p-value.

    Student (1908); e.g. scipy.stats.ttest_rel. Returns (None, None) with fewer than 2 pairs.
    When all differences are equal (s_d = 0) the interval is the single point d̄ and the
    p-value is undefined (None).
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n < 2:
        return None, None
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    if sd == 0:
        return Interval(mean, mean, mean, level, "paired t (all differences equal: a point)"), None
    se = sd / math.sqrt(n)
    half = _t_ppf(level, n - 1) * se
    from scipy.stats import t

    p = float(2 * t.sf(abs(mean / se), n - 1))
    return Interval(mean, mean - half, mean + half, level, "paired t"), p


def bootstrap_mean_interval(values: Sequence[float], level: float = 0.95, n_boot: int = 10000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean: resample the values (cases) with replacement
    ``n_boot`` times and take the (1-level)/2 and (1+level)/2 quantiles of the resampled means.

    Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13. Deterministic for
    a given seed (numpy PCG64). With all values equal the interval is a single point.
    """
    import numpy as np

    if not values:
        raise ValueError("bootstrap needs at least one value")
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    d = np.asarray(values, dtype=float)
    n = d.size
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # bound memory to ~16 MB of indices per step
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        means[start : start + m] = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Interval(float(d.mean()), float(lo), float(hi), level, BOOTSTRAP.format(n=n_boot))


# ----------------------------------------------------------------------------- paired comparison


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _excludes_zero(iv: Interval | None) -> bool:
    return iv is not None and (iv.low > 0 or iv.high < 0)


def _short(method: str) -> str:
    return "McNemar" if method == MCNEMAR else "sign-flip test"


def _test_cases(ca: dict[str, _Case], cb: dict[str, _Case], paired: Sequence[str], seed: int
                ) -> tuple[PairedTest, McNemarResult | None]:
    """The verdict's test over the paired cases (see `paired_compare`)."""
    multi = any(len(ca[k].passes) > 1 or len(cb[k].passes) > 1 for k in paired)
    d = [ca[k].fraction() - cb[k].fraction() for k in paired]
    a_better = sum(1 for x in d if x > 0)
    b_better = sum(1 for x in d if x < 0)
    mean = float(sum(d, Fraction(0)) / len(d)) if d else 0.0
    if not multi:
        p = mcnemar_exact_p(a_better, b_better)
        mc = McNemarResult(a_better, b_better, a_better + b_better, p, "single sample", 0)
        return PairedTest(MCNEMAR, p, len(d), a_better, b_better, mean), mc
    p, method = sign_flip_test(d, seed=seed)
    return PairedTest(method, p, len(d), a_better, b_better, mean), None


def paired_test(a: Sequence[Outcome], b: Sequence[Outcome], seed: int = 0, name_a: str = "A",
                name_b: str = "B") -> PairedTest | None:
    """Only the test `paired_compare` decides on (no intervals), for many pairs (shortlist ties).

    None when fewer than two cases are paired.
    """
    ca, cb = _group(a, name_a), _group(b, name_b)
    paired = [k for k in sorted(set(ca) & set(cb)) if ca[k].passes and cb[k].passes]
    if len(paired) < 2:
        return None
    return _test_cases(ca, cb, paired, seed)[0]


def paired_compare(
    a: Sequence[Outcome],
    b: Sequence[Outcome],
    level: float = 0.95,
    n_boot: int = 10000,
    seed: int = 0,
    name_a: str = "A",
    name_b: str = "B",
) -> PairedComparison:
    """Compare model A with model B on the cases both answered.

    Pairing: a case is used when it appears in both lists and each model has at least one
    non-error sample on it. Cases only one model has (``unpaired_a``/``unpaired_b``) and
    cases where a model errored on every sample (``errored_cases``) are excluded and counted;
    errored samples inside a used case are dropped and counted (``error_samples_a/_b``).

    Per case i, p_m,i = share of model m's non-error samples that pass; d_i = p_A,i - p_B,i.
    The difference is d̄ = mean_i d_i (every case weighs the same, however many samples).

    * ``bootstrap``: percentile interval of d̄ over cases resampled with replacement
      (`bootstrap_mean_interval`).
    * ``standard_error``/``se_interval``: d̄ ± t_{G-1} · SE with SE from `cluster_robust_se`
      (the paired-difference SE with one sample per case; cluster-robust CR1 with several),
      clipped to [-1, 1] with a note when it reaches past (few cases).
    * When every d_i is the same both intervals would be a single point; they are then the
      conservative `bounded_mean_interval` of the d_i in [-1, 1], with a note.
    * ``test``: the verdict's test. One sample per case: McNemar's exact test on the
      discordant cases (``mcnemar`` holds its counts). Several samples: the exact paired
      sign-flip test on the d_i (`sign_flip_test`), which uses every sample and reduces to
      McNemar's test with one sample; never a per-case majority vote.
    * ``score``: paired t interval of the per-case mean judge score (`paired_t_interval`).

    ``larger_than_noise`` is True when the test's p < 1 - level (and at least 2 cases are
    paired). It rests on one pre-specified exact test, so its false-positive rate is at most
    1 - level and its power is what `mcnemar_power` computes. When an interval excludes 0 but
    the test does not reach p < 1 - level the verdict says "borderline" (treat as not shown).
    References: McNemar (1947); Fisher (1935); Miller (2024), "Adding Error Bars to Evals",
    arXiv:2411.00640 (cluster-robust intervals over questions).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ca, cb = _group(a, name_a), _group(b, name_b)
    both = sorted(set(ca) & set(cb))
    paired = [k for k in both if ca[k].passes and cb[k].passes]
    errored = len(both) - len(paired)
    unpaired_a = len(set(ca) - set(cb))
    unpaired_b = len(set(cb) - set(ca))
    err_a = sum(ca[k].n_errors for k in paired)
    err_b = sum(cb[k].n_errors for k in paired)
    max_samples = max([len(ca[k].passes) + ca[k].n_errors for k in paired] +
                      [len(cb[k].passes) + cb[k].n_errors for k in paired] + [0])
    multi = any(len(ca[k].passes) > 1 or len(cb[k].passes) > 1 for k in paired)
    se_method = "cluster-robust CR1 (cases as clusters), t with G-1 df" if multi else "paired difference, t with n-1 df"
    pct = f"{round(level * 100, 1):g}%"

    notes: list[str] = []
    if unpaired_a or unpaired_b:
        notes.append(f"{unpaired_a} case(s) only {name_a} has and {unpaired_b} only {name_b} has were left out.")
    if errored:
        notes.append(f"{errored} case(s) where a model errored on every sample were left out.")
    if err_a or err_b:
        notes.append(f"errored samples dropped inside used cases: {name_a} {err_a}, {name_b} {err_b}.")

    common = dict(
        name_a=name_a, name_b=name_b, level=level, n_pairs=len(paired), unpaired_a=unpaired_a,
        unpaired_b=unpaired_b, errored_cases=errored, error_samples_a=err_a, error_samples_b=err_b,
        max_samples_per_case=max_samples, se_method=se_method,
    )
    if not paired:
        return PairedComparison(
            **common, pass_rate_a=None, pass_rate_b=None, difference=None, bootstrap=None,
            standard_error=None, se_interval=None, mcnemar=None, score=None, larger_than_noise=False,
            verdict=f"No case was answered by both {name_a} and {name_b}; nothing to compare.",
            notes=tuple(notes),
        )

    ra = [ca[k].rate for k in paired]
    rb = [cb[k].rate for k in paired]
    d = [x - y for x, y in zip(ra, rb, strict=True)]
    n = len(d)
    diff = sum(d) / n
    se = cluster_robust_se(d)
    se_iv: Interval | None = None
    if min(d) == max(d):
        boot = all_equal_difference_interval(d, level)
        se_iv = boot if n >= 2 else None
        notes.append(f"all {n} paired case(s) differ by the same amount, so the bootstrap and standard-error "
                     f"intervals would be a single point; both show the {boot.method} instead.")
    else:
        boot = bootstrap_mean_interval(d, level, n_boot, seed)
        if se is not None:
            half = _t_ppf(level, n - 1) * se
            lo, hi = diff - half, diff + half
            if lo < -1.0 or hi > 1.0:
                se_iv = Interval(diff, max(-1.0, lo), min(1.0, hi), level, f"{se_method}, clipped to [-1, 1]")
                notes.append(f"the standard-error interval ({100 * lo:+.1f} to {100 * hi:+.1f} points) reached past "
                             "±100 points and was clipped to [-1, 1]; with so few cases read it as 'very wide'.")
            else:
                se_iv = Interval(diff, lo, hi, level, se_method)

    test, mc = _test_cases(ca, cb, paired, seed)
    if multi:
        notes.append("several samples per case: the verdict uses the exact paired sign-flip test on the per-case "
                     "pass rates, so every sample counts (no majority vote per case).")

    # judge score
    score_keys = [k for k in paired if ca[k].scores and cb[k].scores]
    score: ScoreDifference | None = None
    if score_keys:
        sa = [sum(ca[k].scores) / len(ca[k].scores) for k in score_keys]
        sb = [sum(cb[k].scores) / len(cb[k].scores) for k in score_keys]
        iv, p = paired_t_interval(sa, sb, level)
        ma_, mb_ = sum(sa) / len(sa), sum(sb) / len(sb)
        score = ScoreDifference(len(score_keys), ma_, mb_, ma_ - mb_, iv, p)

    # verdict: one exact test decides
    alpha = 1 - level
    ev_boot, ev_se, ev_test = _excludes_zero(boot), _excludes_zero(se_iv), test.p_value < alpha
    larger = ev_test and n >= 2
    pts = 100 * diff
    if abs(pts) < 0.05:
        head = f"{name_a} and {name_b} pass the same share of cases"
    else:
        head = f"{name_a} passes {abs(pts):.1f} points {'more' if diff > 0 else 'less'} than {name_b}"
    text = f"{head} ({pct} CI {100 * boot.low:.1f} to {100 * boot.high:.1f}); {_short(test.method)} {_fmt_p(test.p_value)}: "
    if n < 2:
        text += "one paired case only; too few to judge."
    elif larger:
        text += "larger than noise"
        missing = [nm for nm, ok in (("bootstrap", ev_boot), ("standard-error", ev_se)) if not ok]
        if missing:
            notes.append(f"the {' and '.join(missing)} interval includes 0 although the exact test gives "
                         f"{_fmt_p(test.p_value)}; the verdict follows the test.")
    elif ev_boot or ev_se:
        yes = ", ".join(nm for nm, ok in (("bootstrap interval", ev_boot), ("standard-error interval", ev_se)) if ok)
        text += (f"borderline (a difference by {yes}, not by {_short(test.method)} p<{alpha:g}); "
                 "treat as not shown")
    else:
        text += "within noise"
    if test.a_better + test.b_better == 0:
        notes.append("no discordant cases: these cases cannot separate the models; that is not evidence that "
                     "they are the same.")
    return PairedComparison(
        **common, pass_rate_a=sum(ra) / n, pass_rate_b=sum(rb) / n, difference=diff, bootstrap=boot,
        standard_error=se, se_interval=se_iv, mcnemar=mc, score=score, larger_than_noise=larger,
        verdict=text, notes=tuple(notes), test=test,
    )


def _severity_key(s: str) -> tuple[int, str]:
    return (SEVERITY_ORDER.get(s, len(SEVERITY_ORDER)), s)


def breakdown_compare(
    a: Sequence[Outcome],
    b: Sequence[Outcome],
    level: float = 0.95,
    n_boot: int = 10000,
    seed: int = 0,
    name_a: str = "A",
    name_b: str = "B",
    min_pairs: int = 10,
) -> list[GroupComparison]:
    """`paired_compare` per category and per severity, flagged with Benjamini-Hochberg adjustment.

    A case's group is taken from model A's outcomes (B's for cases only B has), so a case
    never lands in different groups for the two models. Groups with fewer than ``min_pairs``
    paired cases are marked ``too_few_pairs`` (chosen by size alone, before any test): they
    are shown but never flagged. The other groups' test p-values form one family (categories
    and severities together) and are adjusted with Benjamini-Hochberg (`bh_adjust`); a group is
    ``flagged`` when its adjusted p < 1 - level. Under the complete null (the models are equally
    good everywhere) that bounds the chance of any flag by 1 - level; otherwise it bounds the
    expected share of false flags. Order: categories alphabetically, then severities high,
    medium, low. Each group uses the same ``seed``.
    """
    ca_meta = {o.case_id: o for o in b}
    ca_meta.update({o.case_id: o for o in a})
    raw: list[tuple[str, str, PairedComparison]] = []
    for dim in ("category", "severity"):
        key = (lambda o: o.category) if dim == "category" else (lambda o: o.severity)
        groups = {key(o) for o in ca_meta.values()}
        order = sorted(groups) if dim == "category" else sorted(groups, key=_severity_key)
        for g in order:
            ids = {cid for cid, o in ca_meta.items() if key(o) == g}
            ga = [o for o in a if o.case_id in ids]
            gb = [o for o in b if o.case_id in ids]
            raw.append((dim, g, paired_compare(ga, gb, level, n_boot, seed, name_a, name_b)))
    family = [i for i, (_, _, c) in enumerate(raw) if c.n_pairs >= max(2, min_pairs) and c.test is not None]
    adjusted = bh_adjust([raw[i][2].test.p_value for i in family])  # type: ignore[union-attr]
    adj = dict(zip(family, adjusted, strict=True))
    out: list[GroupComparison] = []
    for i, (dim, g, cmp) in enumerate(raw):
        p_adj = adj.get(i)
        out.append(GroupComparison(
            dim, g, cmp, cmp.n_pairs < min_pairs,  # type: ignore[arg-type]
            p_value=cmp.test.p_value if cmp.test is not None else None, p_adjusted=p_adj,
            flagged=p_adj is not None and p_adj < 1 - level,
        ))
    return out


def flips(a: Sequence[Outcome], b: Sequence[Outcome]) -> list[Flip]:
    """Cases one model passes and the other fails, most severe first, then by case id.

    With several samples per case, pass/fail is the per-case majority of non-error samples;
    cases split 50/50 for either model, and cases either model errored on entirely, are not
    flips. Order: severity high, medium, low (others after, alphabetically), then case id.
    """
    ca, cb = _group(a, "A"), _group(b, "B")
    out: list[Flip] = []
    for k in set(ca) & set(cb):
        if not ca[k].passes or not cb[k].passes:
            continue
        ma, mb = ca[k].majority(), cb[k].majority()
        if ma is None or mb is None or ma == mb:
            continue
        out.append(Flip(k, ca[k].category, ca[k].severity, ma, mb, ca[k].rate, cb[k].rate))
    out.sort(key=lambda f: (*_severity_key(f.severity), f.case_id))
    return out


# ----------------------------------------------------------------------------- power of the verdict's test


def _check_power_args(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.5 < power < 1:
        raise ValueError(f"power must be in (0.5, 1), got {power}")


def default_discordance(p_a: float, p_b: float) -> float:
    """Share of cases the models disagree on if they passed cases independently:
    ψ = p_A(1 − p_B) + p_B(1 − p_A). Two models usually fail the *same* hard cases, which makes
    ψ smaller and the paired test more powerful, so assuming independence is conservative."""
    return p_a * (1 - p_b) + p_b * (1 - p_a)


def min_discordant_cases(alpha: float = 0.05) -> int:
    """The fewest discordant cases with which McNemar's exact test can give p < alpha:
    the smallest m with 2 / 2^m < alpha (6 at alpha = 0.05: with 5, p is at least 0.0625)."""
    m = 1
    while 2 / 2**m >= alpha:
        m += 1
    return m


def _reject_below(m: Sequence[int] | object, alpha: float) -> object:
    """k_m = the largest k with 2·P(X ≤ k) < alpha for X ~ Binomial(m, 1/2), or -1 (vectorised).

    McNemar's exact test rejects exactly when min(a_only, b_only) ≤ k_m."""
    import numpy as np
    from scipy.stats import binom

    ms = np.asarray(m, dtype=np.int64)
    k = binom.ppf(alpha / 2, ms, 0.5).astype(np.int64) - 1
    k = np.maximum(k, -1)
    # guard the floating-point edge: move k until 2·F(k) < alpha <= 2·F(k + 1)
    for _ in range(3):
        too_big = (k >= 0) & (2 * binom.cdf(k, ms, 0.5) >= alpha)
        k = np.where(too_big, k - 1, k)
        too_small = (k + 1 < ms) & (2 * binom.cdf(k + 1, ms, 0.5) < alpha)
        k = np.where(too_small, k + 1, k)
    return k


class _McNemarPower:
    """Exact power of the two-sided exact McNemar test at level alpha for cases that are
    A-only with probability p10 and B-only with probability p01 (independent cases).

    power(n) = Σ_m Binom(m; n, ψ) · r(m), ψ = p10 + p01, where given m discordant cases
    a_only ~ Binomial(m, q = p10/ψ) and r(m) = P(min(a_only, m − a_only) ≤ k_m)
    = F(k_m; m, q) + 1 − F(m − k_m − 1; m, q). Exact up to floating point; the sum is
    restricted to m within 9 standard deviations of nψ (the rest has mass below 1e-18).
    """

    def __init__(self, p10: float, p01: float, alpha: float) -> None:
        self.p10, self.p01, self.alpha = p10, p01, alpha
        self.psi = p10 + p01
        self._r: object | None = None
        self._r_max = -1

    def _rejection(self, m_max: int) -> object:
        import numpy as np
        from scipy.stats import binom

        if m_max > self._r_max:
            m_max = max(m_max, 2 * self._r_max, 64)
            ms = np.arange(m_max + 1)
            k = _reject_below(ms, self.alpha)
            q = self.p10 / self.psi
            k_arr = np.asarray(k)
            low = np.where(k_arr >= 0, binom.cdf(k_arr, ms, q), 0.0)
            high = np.where(k_arr >= 0, binom.sf(ms - k_arr - 1, ms, q), 0.0)
            self._r = low + high
            self._r_max = m_max
        return self._r

    def __call__(self, n: int) -> float:
        return float(self.batch(n, n)[0])

    def batch(self, first: int, last: int) -> object:
        """Power for every n in [first, last] (one vectorised evaluation)."""
        import numpy as np
        from scipy.stats import binom

        ns = np.arange(first, last + 1)
        if self.psi <= 0:
            return np.zeros(ns.size)
        sd = math.sqrt(last * self.psi * (1 - self.psi))
        lo = max(0, int(first * self.psi - 9 * sd) - 1)
        hi = min(last, int(last * self.psi + 9 * sd) + 1)
        ms = np.arange(lo, hi + 1)
        r = np.asarray(self._rejection(hi))[lo : hi + 1]
        pmf = binom.pmf(ms[None, :], ns[:, None], self.psi)  # zero where m > n
        out = np.minimum(1.0, pmf @ r)
        return np.where(ns < 1, 0.0, out)


def _cells(p_a: float, p_b: float, discordance: float | None) -> tuple[float, float]:
    for p in (p_a, p_b):
        if not 0 <= p <= 1:
            raise ValueError(f"pass rates must be in [0, 1], got {p}")
    psi = default_discordance(p_a, p_b) if discordance is None else discordance
    if discordance is not None and not 0 < discordance <= 1:
        raise ValueError(f"discordance must be in (0, 1], got {discordance}")
    delta = p_a - p_b
    if abs(delta) > psi + 1e-12:
        raise ValueError(f"a gap of {abs(delta):.3f} needs at least that share of discordant cases, got {psi:.3f}")
    return max(0.0, (psi + delta) / 2), max(0.0, (psi - delta) / 2)


def mcnemar_power(n_cases: int, p_a: float, p_b: float, alpha: float = 0.05, discordance: float | None = None) -> float:
    """Exact power of the verdict's test (two-sided exact McNemar at ``alpha``) with ``n_cases``
    paired cases when A passes p_a and B p_b of cases.

    ``discordance`` ψ is the share of cases the two models disagree on (from a pilot run); by
    default `default_discordance` (independent failures, conservative). A-only cases then occur
    with probability (ψ + δ)/2 and B-only with (ψ − δ)/2, δ = p_a − p_b. Computed by exact
    enumeration over the number of discordant cases (`_McNemarPower`), not a normal
    approximation, so it never promises a result the exact test cannot give: with fewer than
    `min_discordant_cases` cases the power is 0. With several samples per case the verdict uses
    the sign-flip test, which is at least as powerful (docs/statistics.md), so this is a lower bound.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p10, p01 = _cells(p_a, p_b, discordance)
    return _McNemarPower(p10, p01, alpha)(int(n_cases))


_SCAN_LIMIT = 50_000
_MAX_CASES = 1_000_000
_BLOCK = 128


def _n_connor(delta: float, psi: float, alpha: float, power: float) -> float:
    """Connor (1987, Biometrics 43:207-211) normal approximation, a starting point for the exact search:
    n = [z_{α/2}·√ψ + z_β·√(ψ − δ²)]² / δ²."""
    za, zb = z_for(1 - alpha), z_for(2 * power - 1)
    return (za * math.sqrt(psi) + zb * math.sqrt(max(0.0, psi - delta**2))) ** 2 / delta**2


def cases_needed(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8,
                 discordance: float | None = None) -> float:
    """The smallest number of paired cases at which the verdict's exact test reaches ``power``
    (`mcnemar_power`), as a float; ``inf`` when p_a == p_b or more than 1,000,000 would be needed.

    Exact power is not monotone in n (it saw-tooths because the test is discrete); this is the
    first n that reaches the power, found by scanning every n upwards from a point where the
    power is still below target (up to 50,000 cases past that point; beyond, bisection).
    """
    import numpy as np

    _check_power_args(alpha, power)
    p10, p01 = _cells(p_a, p_b, discordance)
    delta = p10 - p01
    if delta == 0:
        return math.inf
    approx = _n_connor(delta, p10 + p01, alpha, power)
    if approx > _MAX_CASES:
        return math.inf
    f = _McNemarPower(p10, p01, alpha)
    start = max(1, int(0.8 * approx))
    while start > 1 and f(start) >= power:
        start //= 2
    stop = min(_MAX_CASES, start + _SCAN_LIMIT)
    n = start
    while n <= stop:
        last = min(stop, n + _BLOCK - 1)
        hit = np.flatnonzero(np.asarray(f.batch(n, last)) >= power)
        if hit.size:
            return float(n + int(hit[0]))
        n = last + 1
    lo, hi = stop, min(_MAX_CASES, 2 * stop)
    while f(hi) < power:
        if hi >= _MAX_CASES:
            return math.inf
        lo, hi = hi, min(_MAX_CASES, 2 * hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid) >= power:
            hi = mid
        else:
            lo = mid
    return float(hi)


def min_detectable_difference(
    n_cases: int,
    p_base: float,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
    direction: Literal["either", "up", "down"] = "either",
) -> float:
    """Smallest pass-rate difference δ that ``n_cases`` paired cases detect with the given power,
    by the verdict's exact test (`mcnemar_power` with p_a = p_base ± δ, p_b = p_base).

    ``discordance`` as in `mcnemar_power` (default: independent failures, conservative); with
    a known ψ, δ can be at most ψ. ``direction``: "up" (p_base + δ), "down" (p_base − δ), or
    "either" (the smaller). Solved by bisection on δ (power increases with δ). Returns
    ``math.inf`` when no difference within [0, 1] reaches the power, e.g. always with fewer
    than `min_discordant_cases` cases.
    """
    _check_power_args(alpha, power)
    if n_cases < 1:
        return math.inf
    if not 0 <= p_base <= 1:
        raise ValueError(f"p_base must be in [0, 1], got {p_base}")
    if discordance is not None and not 0 < discordance <= 1:
        raise ValueError(f"discordance must be in (0, 1], got {discordance}")

    def pw(delta: float, sign: int) -> float:
        p_a = min(1.0, max(0.0, p_base + sign * delta))
        p10, p01 = _cells(p_a, p_base, discordance)
        return _McNemarPower(p10, p01, alpha)(n_cases)

    def one(sign: int) -> float:
        room = (1 - p_base) if sign > 0 else p_base
        if discordance is not None:
            room = min(room, discordance)
        if room <= 0 or pw(room, sign) < power:
            return math.inf
        lo, hi = 0.0, room
        while hi - lo > 1e-5:
            mid = (lo + hi) / 2
            if pw(mid, sign) >= power:
                hi = mid
            else:
                lo = mid
        return hi

    if direction == "up":
        return one(+1)
    if direction == "down":
        return one(-1)
    return min(one(+1), one(-1))


def _pct(p: float) -> str:
    s = f"{100 * p:.1f}"
    return (s[:-2] if s.endswith(".0") else s) + "%"


def power_sentence(n_cases: int, p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8,
                   discordance: float | None = None, samples_per_case: int = 1) -> str:
    """A plain sentence: can ``n_cases`` paired cases tell p_a from p_b with the verdict's test?

    E.g. "50 cases cannot tell 82% from 80% (the exact test's power is 3%): with 80% power they
    detect only gaps of about 18 points or more; about 6,137 cases would be needed." Method: the
    exact power of the exact McNemar test (`mcnemar_power`, `min_detectable_difference`
    measured from p_b towards p_a, `cases_needed`); the example in docs/compare.md is this
    function's output. With ``samples_per_case`` > 1 the verdict uses the sign-flip test, at
    least as powerful, and the sentence says its numbers are a lower bound.
    """
    _check_power_args(alpha, power)
    if p_a == p_b:
        return f"{_pct(p_a)} and {_pct(p_b)} are the same rate; there is nothing to detect."
    return _power_sentence(n_cases, p_a, p_b, alpha, power, discordance) + (
        "" if samples_per_case <= 1 else
        f" (Computed for one sample per case; with {samples_per_case} samples per case the sign-flip test is at "
        "least this powerful, so these numbers are a lower bound.)")


def _power_sentence(n_cases: int, p_a: float, p_b: float, alpha: float, power: float,
                    discordance: float | None) -> str:
    pw_txt = f"{round(power * 100):d}%"
    have = mcnemar_power(n_cases, p_a, p_b, alpha, discordance)
    need = cases_needed(p_a, p_b, alpha, power, discordance)
    need_txt = "more than 1,000,000 cases would be needed" if math.isinf(need) else f"about {math.ceil(need):,} cases would be needed"
    if have >= power:
        return (f"{n_cases} cases can tell {_pct(p_a)} from {_pct(p_b)}: the exact test's power is "
                f"{100 * have:.0f}% (at least {pw_txt} from {math.ceil(need):,} cases).")
    direction: Literal["up", "down"] = "up" if p_a > p_b else "down"
    mdd = min_detectable_difference(n_cases, p_b, alpha, power, discordance, direction)
    m_min = min_discordant_cases(alpha)
    if math.isinf(mdd):
        why = (f"with fewer than {m_min} cases on which the models disagree no result can reach p < {alpha:g}"
               if n_cases < m_min else f"no gap from {_pct(p_b)} reaches {pw_txt} power with so few cases")
        return f"{n_cases} cases cannot tell {_pct(p_a)} from {_pct(p_b)}: {why}; {need_txt}."
    return (f"{n_cases} cases cannot tell {_pct(p_a)} from {_pct(p_b)} (the exact test's power is "
            f"{100 * have:.0f}%): with {pw_txt} power they detect only gaps of about {100 * mdd:.0f} points or more; "
            f"{need_txt}.")


# ----------------------------------------------------------------------------- several samples


def _check_nck(n: int, c: int, k: int) -> None:
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c passes: 1 - C(n-c, k) / C(n, k) (`benchrun.analysis.passk`).

    Probability that at least one of k samples drawn without replacement passes.
    Chen et al. (2021), "Evaluating Large Language Models Trained on Code", arXiv:2107.03374, eq. 1.
    """
    from benchrun.analysis.passk import pass_at_k as unbiased

    _check_nck(n, c, k)
    return unbiased(n, c, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k from n samples with c passes: C(c, k) / C(n, k), the chance all k samples pass.

    Yao et al. (2024), "τ-bench", arXiv:2406.12045 (reliability across repeated trials).
    """
    _check_nck(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def consistency(n: int, c: int) -> float:
    """Share of a case's n samples that agree with the majority: max(c, n - c) / n (0.5 to 1)."""
    _check_nck(n, c, 1)
    return max(c, n - c) / n


def multi_sample_summary(outcomes: Sequence[Outcome], ks: Sequence[int] = (1, 3, 5)) -> MultiSampleSummary:
    """pass@k, pass^k and consistency of one model with several samples per case.

    For each k, the mean over cases that have at least k non-error samples (``cases_used[k]``);
    ``None`` when no case has k samples. Errored samples are left out (a case with 3 of 5
    samples errored counts as n = 2), not counted as failures; cases with only errors are
    ``errored_cases``. ``inconsistent_cases``: cases whose samples do not all agree.
    """
    if any(k < 1 for k in ks):
        raise ValueError("every k must be >= 1")
    cases = _group(outcomes, "model")
    used = {cid: c for cid, c in cases.items() if c.passes}
    per_case = tuple(
        CaseConsistency(cid, len(c.passes), sum(c.passes), consistency(len(c.passes), sum(c.passes)))
        for cid, c in sorted(used.items())
    )
    at: dict[int, float | None] = {}
    hat: dict[int, float | None] = {}
    n_used: dict[int, int] = {}
    for k in ks:
        rows = [pc for pc in per_case if pc.n >= k]
        n_used[k] = len(rows)
        at[k] = sum(pass_at_k(r.n, r.c, k) for r in rows) / len(rows) if rows else None
        hat[k] = sum(pass_hat_k(r.n, r.c, k) for r in rows) / len(rows) if rows else None
    sizes = [len(c.passes) + c.n_errors for c in cases.values()]
    return MultiSampleSummary(
        n_cases=len(used),
        errored_cases=len(cases) - len(used),
        error_samples=sum(c.n_errors for c in cases.values()),
        min_samples=min(sizes, default=0),
        max_samples=max(sizes, default=0),
        pass_at_k=at,
        pass_hat_k=hat,
        cases_used=n_used,
        mean_consistency=sum(p.consistency for p in per_case) / len(per_case) if per_case else None,
        inconsistent_cases=sum(1 for p in per_case if 0 < p.c < p.n),
        per_case=per_case,
    )
