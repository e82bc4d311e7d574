"""Paired comparison of two models on the same cases: is the gap larger than noise?

Everything here is a pure function over `Outcome` lists (one list per model). Nothing
prints, opens the ledger or calls a model. Results are frozen dataclasses that
`dataclasses.asdict` turns into JSON-ready dicts (undefined numbers are ``None``, never NaN).

What is computed and why (details in each docstring and in docs/compare.md):

* pairing by case id: both models answered the same cases, so the per-case difference
  removes case difficulty from the comparison (a paired design is much tighter than
  comparing two independent pass rates);
* the pass-rate difference with two intervals: a paired bootstrap over cases
  (percentile) and a cluster-robust standard error (cases as clusters);
* McNemar's exact test on discordant cases;
* a paired t interval on the mean judge score;
* per-category / per-severity breakdowns, the list of flipped cases;
* power: the smallest difference a number of cases can detect;
* pass@k and pass^k for several samples per case, and per-case consistency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from benchrun.analysis.stats import Interval, z_for
from benchrun.errors import BadInput

SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


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
    """McNemar's exact test on discordant cases.

    ``a_only`` = cases A passes and B fails (b10), ``b_only`` = cases B passes and A fails
    (b01). ``basis`` says whether each case is a single sample or the per-case majority of
    several samples; ``ties_excluded`` counts cases left out because a model's samples were
    split exactly 50/50 (no majority).
    """

    a_only: int
    b_only: int
    n_discordant: int
    p_value: float
    basis: Literal["single sample", "per-case majority"]
    ties_excluded: int


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
    """Result of `paired_compare`. Rates are shares in [0, 1]; differences are A - B."""

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


@dataclass(frozen=True)
class GroupComparison:
    """A `PairedComparison` restricted to one category or one severity."""

    dimension: Literal["category", "severity"]
    group: str
    comparison: PairedComparison
    too_few_pairs: bool


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

    def majority(self) -> bool | None:
        """True/False by majority of non-error samples; None for an exact split."""
        c, n = sum(self.passes), len(self.passes)
        if 2 * c == n:
            return None
        return 2 * c > n


def _group(outcomes: Iterable[Outcome], name: str) -> dict[str, _Case]:
    cases: dict[str, _Case] = {}
    seen: set[tuple[str, int]] = set()
    for o in outcomes:
        where = f"{name} case {o.case_id}"
        if not isinstance(o.case_id, str) or not o.case_id:
            raise BadInput(None, name, f"case id {o.case_id!r} must be a non-empty string")
        if (o.case_id, o.sample) in seen:
            raise BadInput(None, where, f"sample {o.sample} appears twice; give each sample of a case its own number")
        seen.add((o.case_id, o.sample))
        if o.passed is not None and not isinstance(o.passed, bool):
            raise BadInput(None, where, f"passed must be true, false or null (error), got {o.passed!r}")
        if o.score is not None:
            if isinstance(o.score, bool) or not isinstance(o.score, (int, float)) or not math.isfinite(o.score):
                raise BadInput(None, where, f"score must be a finite number or null, got {o.score!r}")
        c = cases.get(o.case_id)
        if c is None:
            c = cases[o.case_id] = _Case(o.category, o.severity, [], [], 0)
        elif (c.category, c.severity) != (o.category, o.severity):
            raise BadInput(
                None,
                where,
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
        return Interval(mean, mean, mean, level), None
    se = sd / math.sqrt(n)
    half = _t_ppf(level, n - 1) * se
    from scipy.stats import t

    p = float(2 * t.sf(abs(mean / se), n - 1))
    return Interval(mean, mean - half, mean + half, level), p


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
    return Interval(float(d.mean()), float(lo), float(hi), level)


# ----------------------------------------------------------------------------- paired comparison


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _excludes_zero(iv: Interval | None) -> bool:
    return iv is not None and (iv.low > 0 or iv.high < 0)


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
      (the paired-difference SE with one sample per case; cluster-robust CR1 with several).
    * ``mcnemar``: exact McNemar test on discordant cases; with several samples each case's
      pass/fail is its majority and 50/50 splits are excluded (`mcnemar_exact_p`).
    * ``score``: paired t interval of the per-case mean judge score (`paired_t_interval`).

    ``larger_than_noise`` is True only when both intervals exclude 0 and McNemar p < 1 - level;
    when the three disagree the verdict says "borderline". Reference for the approach:
    Miller (2024), "Adding Error Bars to Evals", arXiv:2411.00640.
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
    boot = bootstrap_mean_interval(d, level, n_boot, seed)
    se = cluster_robust_se(d)
    se_iv: Interval | None = None
    if se is not None:
        half = _t_ppf(level, n - 1) * se
        se_iv = Interval(diff, diff - half, diff + half, level)

    # McNemar on per-case pass/fail (majority when several samples)
    a_only = b_only = ties = 0
    for k in paired:
        ma, mb = ca[k].majority(), cb[k].majority()
        if ma is None or mb is None:
            ties += 1
            continue
        if ma and not mb:
            a_only += 1
        elif mb and not ma:
            b_only += 1
    mc = McNemarResult(
        a_only, b_only, a_only + b_only, mcnemar_exact_p(a_only, b_only),
        "per-case majority" if multi else "single sample", ties,
    )
    if multi:
        notes.append("several samples per case: McNemar uses each case's majority verdict"
                     + (f"; {ties} case(s) split 50/50 were left out of it." if ties else "."))

    # judge score
    score_keys = [k for k in paired if ca[k].scores and cb[k].scores]
    score: ScoreDifference | None = None
    if score_keys:
        sa = [sum(ca[k].scores) / len(ca[k].scores) for k in score_keys]
        sb = [sum(cb[k].scores) / len(cb[k].scores) for k in score_keys]
        iv, p = paired_t_interval(sa, sb, level)
        ma_, mb_ = sum(sa) / len(sa), sum(sb) / len(sb)
        score = ScoreDifference(len(score_keys), ma_, mb_, ma_ - mb_, iv, p)

    # verdict
    alpha = 1 - level
    ev_boot, ev_se, ev_mc = _excludes_zero(boot), _excludes_zero(se_iv), mc.p_value < alpha
    larger = ev_boot and ev_se and ev_mc
    pts = 100 * diff
    if abs(pts) < 0.05:
        head = f"{name_a} and {name_b} pass the same share of cases"
    else:
        head = f"{name_a} passes {abs(pts):.1f} points {'more' if diff > 0 else 'less'} than {name_b}"
    text = f"{head} ({pct} CI {100 * boot.low:.1f} to {100 * boot.high:.1f}); McNemar {_fmt_p(mc.p_value)}: "
    if n < 2:
        text += "one paired case only; too few to judge."
        larger = False
    elif larger:
        text += "larger than noise"
    elif not (ev_boot or ev_se or ev_mc):
        text += "within noise"
    else:
        checks = (("bootstrap interval", ev_boot), ("standard-error interval", ev_se), (f"McNemar p<{alpha:g}", ev_mc))
        yes = ", ".join(nm for nm, ok in checks if ok)
        no = ", ".join(nm for nm, ok in checks if not ok)
        text += f"borderline (a difference by {yes}, not by {no}); treat as not shown"
    if mc.n_discordant == 0:
        notes.append("no discordant cases: the intervals collapse towards a point; that is not certainty, "
                     "only that these cases cannot separate the models.")
    return PairedComparison(
        **common, pass_rate_a=sum(ra) / n, pass_rate_b=sum(rb) / n, difference=diff, bootstrap=boot,
        standard_error=se, se_interval=se_iv, mcnemar=mc, score=score, larger_than_noise=larger,
        verdict=text, notes=tuple(notes),
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
    """`paired_compare` per category and per severity.

    A case's group is taken from model A's outcomes (B's for cases only B has), so a case
    never lands in different groups for the two models. Groups with fewer than ``min_pairs``
    paired cases are flagged ``too_few_pairs``: their intervals are wide and the normal/t
    approximations poor. Order: categories alphabetically, then severities high, medium, low.
    Each group uses the same ``seed``. Many groups mean many tests: expect about one in
    twenty groups to look "larger than noise" by chance at the 95% level.
    """
    ca_meta = {o.case_id: o for o in b}
    ca_meta.update({o.case_id: o for o in a})
    out: list[GroupComparison] = []
    for dim in ("category", "severity"):
        key = (lambda o: o.category) if dim == "category" else (lambda o: o.severity)
        groups = {key(o) for o in ca_meta.values()}
        order = sorted(groups) if dim == "category" else sorted(groups, key=_severity_key)
        for g in order:
            ids = {cid for cid, o in ca_meta.items() if key(o) == g}
            ga = [o for o in a if o.case_id in ids]
            gb = [o for o in b if o.case_id in ids]
            cmp = paired_compare(ga, gb, level, n_boot, seed, name_a, name_b)
            out.append(GroupComparison(dim, g, cmp, cmp.n_pairs < min_pairs))  # type: ignore[arg-type]
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


# ----------------------------------------------------------------------------- power


def _n_two_proportions(p1: float, p2: float, alpha: float, power: float) -> float:
    """Cases per model to tell p1 from p2 (two-sided, unpaired; Fleiss, Levin & Paik 2003, eq. 4.14
    without continuity correction): n = [z_{α/2}·√(2·p̄q̄) + z_β·√(p1q1 + p2q2)]² / (p1 - p2)²."""
    delta = abs(p1 - p2)
    if delta == 0:
        return math.inf
    za, zb = z_for(1 - alpha), z_for(2 * power - 1)
    pbar = (p1 + p2) / 2
    return (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / delta**2


def _n_mcnemar(delta: float, psi: float, alpha: float, power: float) -> float:
    """Paired cases for McNemar's test (Connor 1987, Biometrics 43:207-211):
    n = [z_{α/2}·√ψ + z_β·√(ψ - δ²)]² / δ², ψ = share of discordant cases, δ = p_A - p_B."""
    delta = abs(delta)
    if delta == 0 or delta > psi:
        return math.inf
    za, zb = z_for(1 - alpha), z_for(2 * power - 1)
    return (za * math.sqrt(psi) + zb * math.sqrt(max(0.0, psi - delta**2))) ** 2 / delta**2


def _check_power_args(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.5 < power < 1:
        raise ValueError(f"power must be in (0.5, 1), got {power}")


def cases_needed(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8,
                 discordance: float | None = None) -> float:
    """Cases needed to detect p_a vs p_b (see `min_detectable_difference` for the method); inf if p_a == p_b."""
    _check_power_args(alpha, power)
    for p in (p_a, p_b):
        if not 0 <= p <= 1:
            raise ValueError(f"pass rates must be in [0, 1], got {p}")
    if discordance is None:
        return _n_two_proportions(p_a, p_b, alpha, power)
    if not 0 < discordance <= 1:
        raise ValueError(f"discordance must be in (0, 1], got {discordance}")
    return _n_mcnemar(p_a - p_b, discordance, alpha, power)


def _solve_increasing(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Root of an increasing function on [lo, hi] by bisection (f(lo) < 0 <= f(hi))."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return hi


def min_detectable_difference(
    n_cases: int,
    p_base: float,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
    direction: Literal["either", "up", "down"] = "either",
) -> float:
    """Smallest pass-rate difference ``n_cases`` paired cases detect with the given power.

    * ``discordance`` unknown (default): the two-proportion formula (`_n_two_proportions`,
      Fleiss et al. 2003) solved for δ with p1 = p_base and p2 = p_base ± δ. It ignores the
      pairing, which is conservative when the two models tend to pass the same cases (the
      usual situation): the paired test can then detect smaller differences.
    * ``discordance`` ψ known (share of cases the models disagree on, e.g. from a pilot run):
      Connor's (1987) McNemar formula (`_n_mcnemar`) solved for δ; δ can be at most ψ.

    ``direction``: "up" (p_base + δ), "down" (p_base - δ), or "either" (the smaller of the
    two). Normal approximation, two-sided test at level ``alpha``. Returns ``math.inf`` when
    no difference within [0, 1] reaches the power.
    """
    _check_power_args(alpha, power)
    if n_cases < 1:
        return math.inf
    if not 0 <= p_base <= 1:
        raise ValueError(f"p_base must be in [0, 1], got {p_base}")
    if discordance is not None and not 0 < discordance <= 1:
        raise ValueError(f"discordance must be in (0, 1], got {discordance}")

    def one(sign: int) -> float:
        room = (1 - p_base) if sign > 0 else p_base
        if discordance is not None:
            room = min(room, discordance)
        if room <= 0:
            return math.inf

        def needed(delta: float) -> float:
            if discordance is None:
                return _n_two_proportions(p_base, p_base + sign * delta, alpha, power)
            return _n_mcnemar(delta, discordance, alpha, power)

        # needed(δ) decreases in δ; find the δ where it falls to n_cases
        if needed(room) > n_cases:
            return math.inf
        return _solve_increasing(lambda dl: n_cases - needed(dl) if dl > 0 else -math.inf, 0.0, room)

    if direction == "up":
        return one(+1)
    if direction == "down":
        return one(-1)
    return min(one(+1), one(-1))


def _pct(p: float) -> str:
    s = f"{100 * p:.1f}"
    return (s[:-2] if s.endswith(".0") else s) + "%"


def power_sentence(n_cases: int, p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8,
                   discordance: float | None = None) -> str:
    """A plain sentence: can ``n_cases`` tell p_a from p_b at the given power?

    E.g. "50 cases cannot tell 82% from 80%: with 80% power they detect only gaps of about
    24 points or more; about 6,000 cases would be needed." Method: `min_detectable_difference`
    measured from p_b towards p_a, and `cases_needed`.
    """
    need = cases_needed(p_a, p_b, alpha, power, discordance)
    if p_a == p_b:
        return f"{p_a:.0%} and {p_b:.0%} are the same rate; there is nothing to detect."
    direction: Literal["up", "down"] = "up" if p_a > p_b else "down"
    mdd = min_detectable_difference(n_cases, p_b, alpha, power, discordance, direction)
    pw = f"{round(power * 100):d}%"
    gap = "no gap reachable" if math.isinf(mdd) else f"gaps of about {100 * mdd:.0f} points or more"
    need_txt = "no number of cases would be enough" if math.isinf(need) else f"about {math.ceil(need):,} cases"
    if need <= n_cases:
        return (f"{n_cases} cases can tell {_pct(p_a)} from {_pct(p_b)} (with {pw} power they detect {gap}; "
                f"{need_txt} would suffice).")
    return (f"{n_cases} cases cannot tell {_pct(p_a)} from {_pct(p_b)}: with {pw} power they detect only {gap}; "
            f"{need_txt} would be needed.")


# ----------------------------------------------------------------------------- several samples


def _check_nck(n: int, c: int, k: int) -> None:
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c passes: 1 - C(n-c, k) / C(n, k).

    Probability that at least one of k samples drawn without replacement passes.
    Chen et al. (2021), "Evaluating Large Language Models Trained on Code", arXiv:2107.03374, eq. 1.
    """
    _check_nck(n, c, k)
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


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
