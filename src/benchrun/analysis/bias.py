"""Known biases of LLM judges: position, verbosity and self-preference.

Pure functions over plain data. The judge calls themselves happen elsewhere (the
runner records the verdicts); this module only builds the probe inputs
(`pad_variants`) and analyses recorded verdicts.

References
----------
Zheng L. et al. (2023) Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena. NeurIPS
    Datasets and Benchmarks. (position bias: swap the two answers and keep a win only when
    both orders agree; verbosity bias: the "repetitive list" attack; self-enhancement bias.)
Wang P. et al. (2023) Large Language Models are not Fair Evaluators. arXiv:2305.17926.
Panickssery A., Bowman S., Feng S. (2024) LLM Evaluators Recognize and Favor Their Own
    Generations. arXiv:2404.13076.
Good P. (2005) Permutation, Parametric and Bootstrap Tests of Hypotheses, 3rd ed. Springer.
    (conditional permutation tests within strata, used for the verbosity flag.)
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchrun.analysis.calibration import Correlation, _pearson, _t_p_value, t_interval
from benchrun.analysis.stats import Interval, wilson_interval
from benchrun.errors import BadInput

Verdict = Literal["A>B", "B>A", "tie"]
VERDICTS: tuple[str, ...] = ("A>B", "B>A", "tie")

# ----------------------------------------------------------------------------- position bias


@dataclass(frozen=True)
class PairVerdict:
    """A pairwise comparison judged in both orders.

    ``verdict_ab``: verdict with answer A shown first, in terms of A and B.
    ``verdict_ba_raw``: verdict with B shown first, **in displayed positions**: "A>B" there
    means the answer shown first (that is, B) won. Use `flip` to turn it into A/B terms.
    ``label``: the human verdict in A/B terms, or ``None`` when unlabelled.
    """

    pair_id: str
    label: Verdict | None
    verdict_ab: Verdict
    verdict_ba_raw: Verdict


def flip(verdict: Verdict) -> Verdict:
    """Swap the roles of the two positions: "A>B" <-> "B>A"; "tie" stays."""
    if verdict == "A>B":
        return "B>A"
    if verdict == "B>A":
        return "A>B"
    if verdict == "tie":
        return "tie"
    raise ValueError(f"unknown verdict {verdict!r}; expected one of {VERDICTS}")


def both_orders_verdict(ab: Verdict, ba_raw: Verdict) -> Verdict:
    """The MT-Bench conservative rule (Zheng et al. 2023, §3.4): an answer wins only when
    it wins in both presentation orders; any disagreement between the orders is a tie."""
    ba = flip(ba_raw)
    return ab if ab == ba else "tie"


@dataclass(frozen=True)
class PositionBiasReport:
    """Position-bias measurements over pairs judged in both orders.

    ``consistency``: share of pairs whose verdict survives the swap (same A/B verdict in
    both orders, tie-tie included), with a Wilson interval.
    ``biased_first`` / ``biased_second``: share of pairs where the first (second) displayed
    answer won in *both* orders, i.e. the verdict followed the position, not the answer
    (MT-Bench Table 2).
    ``first_position_win_rate``: among all decisive (non-tie) verdicts in either order, the
    share that picked the answer shown first; 0.5 means no position preference. The two
    verdicts of one pair are not independent, so its interval is somewhat too narrow;
    ``None`` when every verdict was a tie.
    ``accuracy_first_order`` / ``accuracy_both_orders``: agreement with human labels using
    only the A-first verdict, and using the both-orders rule; ``None`` without labels.
    """

    n: int
    consistency: Interval
    biased_first: float
    biased_second: float
    first_position_win_rate: Interval | None
    decisive_verdicts: int
    labelled: int
    accuracy_first_order: Interval | None
    accuracy_both_orders: Interval | None
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def position_bias_report(pairs: Sequence[PairVerdict], level: float = 0.95) -> PositionBiasReport:
    """Summarise position bias of a judge over pairs judged in both orders."""
    n = len(pairs)
    if n == 0:
        raise ValueError("no pair verdicts to analyse")
    for p in pairs:
        for v in (p.verdict_ab, p.verdict_ba_raw, *(() if p.label is None else (p.label,))):
            if v not in VERDICTS:
                raise ValueError(f"pair {p.pair_id}: unknown verdict {v!r}; expected one of {VERDICTS}")
    consistent = sum(1 for p in pairs if p.verdict_ab == flip(p.verdict_ba_raw))
    first_both = sum(1 for p in pairs if p.verdict_ab == "A>B" and p.verdict_ba_raw == "A>B")
    second_both = sum(1 for p in pairs if p.verdict_ab == "B>A" and p.verdict_ba_raw == "B>A")
    displayed = [v for p in pairs for v in (p.verdict_ab, p.verdict_ba_raw)]
    decisive = [v for v in displayed if v != "tie"]
    first_wins = sum(1 for v in decisive if v == "A>B")
    labelled = [p for p in pairs if p.label is not None]
    acc1 = acc2 = None
    if labelled:
        k1 = sum(1 for p in labelled if p.verdict_ab == p.label)
        k2 = sum(1 for p in labelled if both_orders_verdict(p.verdict_ab, p.verdict_ba_raw) == p.label)
        acc1 = wilson_interval(k1, len(labelled), level)
        acc2 = wilson_interval(k2, len(labelled), level)
    return PositionBiasReport(
        n=n,
        consistency=wilson_interval(consistent, n, level),
        biased_first=first_both / n,
        biased_second=second_both / n,
        first_position_win_rate=wilson_interval(first_wins, len(decisive), level) if decisive else None,
        decisive_verdicts=len(decisive),
        labelled=len(labelled),
        accuracy_first_order=acc1,
        accuracy_both_orders=acc2,
        level=level,
    )


_VERDICT_ALIASES = {
    "a>b": "A>B", "a": "A>B", "b>a": "B>A", "b": "B>A", "tie": "tie", "=": "tie", "a=b": "tie", "draw": "tie",
}


def parse_verdict(value: Any) -> Verdict | None:
    """Normalise a recorded verdict: "A>B"/"A", "B>A"/"B", "tie"/"="/"draw" (any case).

    Returns ``None`` for an empty value and raises ``ValueError`` for anything else.
    """
    if value is None:
        return None
    s = str(value).strip().lower().replace(" ", "")
    if s == "":
        return None
    if s not in _VERDICT_ALIASES:
        raise ValueError(f"verdict {value!r} is not one of A>B, B>A, tie")
    return _VERDICT_ALIASES[s]  # type: ignore[return-value]


def load_pair_verdicts(path: str | Path) -> list[PairVerdict]:
    """Load recorded both-order verdicts from JSON Lines or CSV.

    Fields: ``pair_id`` (unique), ``verdict_ab``, ``verdict_ba_raw`` (displayed positions,
    see `PairVerdict`), optional ``label`` (human verdict in A/B terms).
    """
    from benchrun.io import load_csv, load_jsonl

    p = Path(path)
    suffix = p.suffix.lower()
    rows: list[tuple[int, Any]]
    if suffix == ".jsonl":
        rows = load_jsonl(p)
    elif suffix == ".csv":
        header, csv_rows, _ = load_csv(p, restore_formulas=True)
        for col in ("pair_id", "verdict_ab", "verdict_ba_raw"):
            if col not in header:
                raise BadInput(p, 1, f"CSV header has no '{col}' column; needed: pair_id, verdict_ab, verdict_ba_raw")
        rows = [(ln, r) for ln, r in csv_rows]
        if not rows:
            raise BadInput(p, None, "file has a header but no rows")
    else:
        raise BadInput(p, None, f"unknown format '{suffix}'; use .jsonl or .csv")
    allowed = {"pair_id", "label", "verdict_ab", "verdict_ba_raw"}
    out: list[PairVerdict] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        if not isinstance(raw, dict):
            raise BadInput(p, line, "each line must be a JSON object with pair_id, verdict_ab, verdict_ba_raw")
        pid_raw = raw.get("pair_id")
        pid = "" if pid_raw is None else str(pid_raw).strip()
        where = f"line {line} pair {pid}" if pid else f"line {line}"
        extra = sorted(set(raw) - allowed)
        if extra and suffix == ".jsonl":
            raise BadInput(p, where, f"unknown field(s) {extra}; allowed: {sorted(allowed)}")
        if not pid:
            raise BadInput(p, where, "pair_id is missing or empty")
        if pid in seen:
            raise BadInput(p, where, f"duplicate pair_id '{pid}' (first at line {seen[pid]}); ids must be unique")
        seen[pid] = line
        parsed: dict[str, Verdict | None] = {}
        for key in ("verdict_ab", "verdict_ba_raw", "label"):
            try:
                parsed[key] = parse_verdict(raw.get(key))
            except ValueError as e:
                raise BadInput(p, where, f"{key}: {e}") from None
        ab, ba = parsed["verdict_ab"], parsed["verdict_ba_raw"]
        if ab is None or ba is None:
            missing = "verdict_ab" if ab is None else "verdict_ba_raw"
            raise BadInput(p, where, f"{missing} is missing; both orders must be judged")
        out.append(PairVerdict(pid, parsed["label"], ab, ba))
    return out


# ----------------------------------------------------------------------------- verbosity bias

_FILLER_OPEN = "This is a good question, and it deserves a careful and complete answer."
_FILLER_CLOSE = (
    "It is worth keeping all of the above in mind. "
    "I hope this explanation is helpful and clear, and that it fully addresses what you asked."
)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    out = []
    for s in parts:
        s = s.strip().lstrip("-*•0123456789.) ").strip()
        if s:
            out.append(s)
    return out


def pad_variants(question: str, answer: str) -> dict[str, str]:
    """Longer versions of ``answer`` that add length but no information.

    * ``restate``: the question restated before the answer;
    * ``list``: the answer followed by its own points repeated as a bulleted summary
      (the MT-Bench "repetitive list" attack, Zheng et al. 2023 §3.3);
    * ``filler``: generic, content-free sentences before and after the answer.

    Deterministic and model-free: the same inputs always give the same variants, so a
    judge's change of score can only come from length and form.
    """
    answer = answer.strip()
    q = " ".join(question.split())
    points = _sentences(answer) or [answer]
    bullets = "\n".join(f"- {s}" for s in points)
    return {
        "restate": f'You asked: "{q}" Here is the answer to that question.\n\n{answer}',
        "list": f"{answer}\n\nTo summarise the key points:\n{bullets}",
        "filler": f"{_FILLER_OPEN}\n\n{answer}\n\n{_FILLER_CLOSE}",
    }


@dataclass(frozen=True)
class VerbosityItem:
    """The judge's scores of one unpadded answer and of its padded variants.

    ``original_score``: the judge's score of the unpadded answer; ``rejudged_scores``: further,
    independent judgements of the *same unpadded* answer by the same judge with the same
    sampling (the noise floor: how much the judge's score moves when nothing changes);
    ``padded_scores``: one score per padding variant. ``human_score`` (optional) is the human
    score of the answer and ``original_words`` its length in words; both are needed for the
    length correlation.
    """

    item_id: str
    original_score: float
    padded_scores: Mapping[str, float]
    human_score: float | None = None
    original_words: int | None = None
    rejudged_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class Shares:
    """How often a comparison came out higher / equal / lower, each with a Wilson interval, over ``n`` items."""

    n: int
    higher: Interval
    equal: Interval
    lower: Interval


def _shares(signs: Sequence[int], level: float) -> Shares:
    n = len(signs)
    return Shares(n, wilson_interval(sum(1 for x in signs if x > 0), n, level),
                  wilson_interval(sum(1 for x in signs if x == 0), n, level),
                  wilson_interval(sum(1 for x in signs if x < 0), n, level))


def _sign(x: float) -> int:
    return 1 if x > 1e-12 else (-1 if x < -1e-12 else 0)


@dataclass(frozen=True)
class VerbosityReport:
    """Verbosity-bias measurements (see `verbosity_report`).

    ``padded`` = per item, mean padded score vs mean unpadded score: higher / equal / lower
    shares. ``net_rate`` = share higher − share lower, the part of "padding scored higher" that
    judge noise does not explain (noise alone makes higher and lower equally likely).
    ``p_value`` (one-sided, "padded higher" beyond "padded lower") from ``test_method``.
    ``flagged`` when p_value < 1 - level **and** net_rate > ``flag_above``.
    ``noise_floor``: re-judged unpadded vs first judgement of the same answer (None without
    re-judgements). ``per_variant``: each padding style vs the mean unpadded score.
    ``repetitive_list_rate``: secondary, MT-Bench style: share of items whose "list" variant
    (the repetitive-list attack) scored strictly higher than the first judgement of the
    unpadded answer; it includes judge noise, so read it against ``noise_floor``.
    ``inflation``: mean (padded − unpadded) score with a t interval. ``length_partial``:
    rank-based (Spearman) partial correlation of answer length and judge score given the
    human score, when human scores and lengths are given.
    """

    n: int
    padded: Shares
    net_rate: float
    p_value: float
    test_method: str
    flagged: bool
    flag_above: float
    noise_floor: Shares | None
    per_variant: dict[str, Shares]
    repetitive_list_rate: Interval | None
    inflation: Interval | None
    mean_inflation: float
    length_partial: Correlation | None
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def partial_correlation(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> Correlation:
    """Pearson partial correlation of x and y controlling for z, with a two-sided p-value.

    Computed by the residual method: regress x on z and y on z by least squares (with an
    intercept) and correlate the residuals. This equals
    r_xy·z = (r_xy − r_xz r_yz) / sqrt((1 − r_xz²)(1 − r_yz²)).
    p-value: t = r·sqrt((n − 3)/(1 − r²)) with n − 3 degrees of freedom (one control).
    ``None`` when n < 4 or a residual has no variance.
    """
    import numpy as np

    if not (len(x) == len(y) == len(z)):
        raise ValueError("x, y and z must have the same length")
    n = len(x)
    if n < 4:
        return Correlation(None, None, n, "partial correlation needs at least 4 items")
    xa, ya, za = (np.asarray(v, dtype=float) for v in (x, y, z))
    design = np.column_stack([np.ones(n), za])

    def resid(v: Any) -> Any:
        beta, *_ = np.linalg.lstsq(design, v, rcond=None)
        r = v - design @ beta
        # exact-fit residuals are rounding noise; treat them as zero
        r[np.abs(r) < 1e-9 * max(1.0, float(np.abs(v).max()))] = 0.0
        return r

    rx, ry = resid(xa), resid(ya)
    r = _pearson(rx, ry)
    if r is None:
        return Correlation(None, None, n, "partial correlation is undefined: after removing the human score, "
                           "length or judge score has no variance left")
    return Correlation(r, _t_p_value(r, n - 3), n)


def partial_spearman(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> Correlation:
    """Rank-based (Spearman) partial correlation of x and y controlling for z.

    Each variable is replaced by its ranks (ties get the average rank) and the Pearson partial
    correlation of the ranks is taken (`partial_correlation`), which equals the partial
    correlation formula applied to Spearman's coefficients:
    ρ_xy·z = (ρ_xy − ρ_xz ρ_yz) / sqrt((1 − ρ_xz²)(1 − ρ_yz²)) (Conover 1999, *Practical
    Nonparametric Statistics*, §5.5). Robust to a few very long answers and to a judge score
    that is ordinal. p-value: t with n − 3 degrees of freedom (approximate).
    """
    from scipy.stats import rankdata

    if not (len(x) == len(y) == len(z)):
        raise ValueError("x, y and z must have the same length")
    return partial_correlation(*(list(rankdata(list(v))) for v in (x, y, z)))


def _item_null(unpadded: Sequence[float], padded: Sequence[float]) -> tuple[int, dict[int, float]]:
    """The observed sign of mean(padded) − mean(unpadded) and its exact null distribution.

    Under H0 (padding changes nothing) the item's judgements are exchangeable: every way of
    choosing which len(unpadded) of the pooled scores were the unpadded ones is equally likely.
    """
    pooled = [*unpadded, *padded]
    u = len(unpadded)
    counts = {-1: 0, 0: 0, 1: 0}
    combos = list(itertools.combinations(range(len(pooled)), u))
    total = math.fsum(pooled)
    for idx in combos:
        su = math.fsum(pooled[i] for i in idx)
        counts[_sign((total - su) / (len(pooled) - u) - su / u)] += 1
    obs = _sign(math.fsum(padded) / len(padded) - math.fsum(unpadded) / u)
    return obs, {k: v / len(combos) for k, v in counts.items()}


def verbosity_sign_test(items: Sequence[VerbosityItem]) -> tuple[float, int]:
    """One-sided exact test that padding raises scores more often than it lowers them.

    Per item, s_i = sign(mean padded score − mean unpadded score) ∈ {−1, 0, +1}; the statistic
    is S = Σ s_i = #higher − #lower (a sign test). Its null distribution is exact and needs no
    assumption about the judge's noise (symmetric or not, ties or not): conditionally on an
    item's pooled scores, every assignment of which judgements were "unpadded" is equally
    likely when padding has no effect (a permutation test within items; Good 2005, §3.5), so
    each item contributes an independent {−1, 0, +1} variable with known probabilities, and
    P(S ≥ s) follows by convolution. When an item's unpadded answer was judged once and its
    variants once each, this is the classical sign test on "padded vs unpadded" except that
    it stays exact with ties and with the clipping at the ends of the scale. Returns (p, S).
    """
    import numpy as np

    dist = np.ones(1)  # S = 0 with certainty before any item
    offset = 0
    s_obs = 0
    for it in items:
        if not it.padded_scores:
            continue
        obs, null = _item_null([it.original_score, *it.rejudged_scores], list(it.padded_scores.values()))
        s_obs += obs
        new = np.zeros(dist.size + 2)
        new[0 : dist.size] += dist * null[-1]
        new[1 : dist.size + 1] += dist * null[0]
        new[2 : dist.size + 2] += dist * null[1]
        dist = new
        offset += 1
    if offset == 0:
        return 1.0, 0
    values = np.arange(-offset, offset + 1)
    return float(min(1.0, dist[values >= s_obs].sum())), s_obs


VERBOSITY_TEST = ("one-sided sign test of padded vs unpadded scores per item, exact by permutation of "
                  "the judgements within each item")


def verbosity_report(
    items: Sequence[VerbosityItem], level: float = 0.95, flag_above: float = 0.10
) -> VerbosityReport:
    """Does padding an answer (longer, no new information) raise the judge's score beyond its noise?

    For each item with at least one padded score: unpadded = [first judgement, re-judgements],
    padded = the variants' scores; the item counts as higher / equal / lower by the sign of
    mean(padded) − mean(unpadded). A judge with noise but no length effect makes "higher" and
    "lower" equally likely, so the evidence is how far "higher" exceeds "lower":
    `verbosity_sign_test` gives the one-sided exact p-value, and ``net_rate`` = share higher −
    share lower estimates the share of items padding really helps. ``flagged`` only when
    p < 1 - level and net_rate > ``flag_above`` (default 10%), so a judge with pure noise is
    flagged at most 1 - level of the time (the old "any variant scored higher" rule flagged
    every noisy judge).
    """
    n_all = len(items)
    if n_all == 0:
        raise ValueError("no verbosity items to analyse")
    notes: list[str] = []
    used = [it for it in items if it.padded_scores]
    if len(used) < n_all:
        notes.append(f"{n_all - len(used)} item(s) have no padded score and were left out")
    if not used:
        raise ValueError("no verbosity item has a padded score")
    deltas = [math.fsum(it.padded_scores.values()) / len(it.padded_scores)
              - math.fsum([it.original_score, *it.rejudged_scores]) / (1 + len(it.rejudged_scores)) for it in used]
    signs = [_sign(d) for d in deltas]
    padded = _shares(signs, level)
    net = padded.higher.estimate - padded.lower.estimate
    p, _ = verbosity_sign_test(used)
    rej = [it for it in used if it.rejudged_scores]
    noise = _shares([_sign(it.rejudged_scores[0] - it.original_score) for it in rej], level) if rej else None
    if noise is None:
        notes.append("no re-judged unpadded answers: the judge's noise floor was not measured (the test is still "
                     "exact, but there is nothing to compare the padded rates with)")
    variants = sorted({k for it in used for k in it.padded_scores})
    per_variant = {}
    for v in variants:
        scored = [it for it in used if v in it.padded_scores]
        per_variant[v] = _shares([_sign(it.padded_scores[v] - math.fsum([it.original_score, *it.rejudged_scores])
                                        / (1 + len(it.rejudged_scores))) for it in scored], level)
    with_list = [it for it in used if "list" in it.padded_scores]
    list_rate = (wilson_interval(sum(1 for it in with_list if it.padded_scores["list"] > it.original_score),
                                 len(with_list), level) if with_list else None)
    inflation = t_interval(deltas, level)
    flagged = p < 1 - level and net > flag_above
    if not flagged and padded.higher.high > flag_above:
        notes.append(f"not flagged, yet the interval for 'padded scored higher' reaches {padded.higher.high:.0%}: "
                     f"{len(used)} item(s) cannot rule out a bias of that size; add items for a firmer answer")
    mean_infl = math.fsum(deltas) / len(deltas)
    if inflation is not None and inflation.high < 0:
        notes.append(f"padding LOWERS this judge's scores (mean {mean_infl:+.2f} points, interval entirely below 0): "
                     "it punishes length rather than rewarding it; check that long but correct answers are not "
                     "marked down")
    with_h = [it for it in used if it.human_score is not None and it.original_words is not None]
    partial: Correlation | None = None
    if with_h:
        partial = partial_spearman(
            [float(it.original_words) for it in with_h],  # type: ignore[arg-type]
            [it.original_score for it in with_h],
            [float(it.human_score) for it in with_h],  # type: ignore[arg-type]
        )
    return VerbosityReport(
        n=len(used),
        padded=padded,
        net_rate=net,
        p_value=p,
        test_method=VERBOSITY_TEST,
        flagged=flagged,
        flag_above=flag_above,
        noise_floor=noise,
        per_variant=per_variant,
        repetitive_list_rate=list_rate,
        inflation=inflation,
        mean_inflation=mean_infl,
        length_partial=partial,
        level=level,
        notes=notes,
    )


# ----------------------------------------------------------------------------- self-preference

# (family, pattern searched in the lower-cased model name after provider prefixes are removed).
# Order matters: the first match wins (a DeepSeek distill of Qwen counts as deepseek).
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("smollm", r"smollm"),
    ("deepseek", r"deepseek"),
    ("openai", r"(?:^|[^a-z])(?:gpt|chatgpt|davinci)|^o[1-9](?:$|[-_.:])"),
    ("anthropic", r"claude"),
    ("google", r"gemini|gemma|palm|bison"),
    ("qwen", r"qwen|qwq"),
    ("mistral", r"mistral|mixtral|codestral|ministral|magistral|pixtral|devstral"),
    ("meta", r"llama"),
    ("microsoft", r"(?:^|[^a-z])phi-?\d"),
    ("cohere", r"command-?r|(?:^|[^a-z])command(?:$|[-_])|(?:^|[^a-z])aya(?:$|[-_])"),
    ("xai", r"grok"),
    ("yi", r"(?:^|[^a-z])yi-"),
)


def _bare_model(name: str) -> str:
    """Lower-case model name without provider prefixes ("openai/", "ollama/", "local/",
    "openrouter/anthropic/", HF orgs) or an Ollama ":tag"."""
    s = name.strip().lower()
    s = s.rsplit("/", 1)[-1]
    if ":" in s and not s.startswith(("anthropic.", "us.", "eu.")):
        s = s.split(":", 1)[0]
    return s


def model_family(name: str) -> str:
    """The model family of a litellm model string, e.g. "openai/gpt-4o-mini" -> "openai".

    A model of no known family is "unknown": a shared name prefix ("hr-judge", "hr-good": a
    team's own names for endpoints) says nothing about where the weights come from.
    """
    bare = _bare_model(name)
    for fam, pat in _FAMILIES:
        if re.search(pat, bare):
            return fam
    return "unknown"


def same_family(judge_model: str, candidate_model: str) -> bool:
    """True when the judge and the candidate come from the same known model family, so the
    judge may favour the candidate's style (self-preference; Zheng et al. 2023,
    Panickssery et al. 2024). A heuristic on names: it warns, it does not prove; unknown
    families never match (no false warning from a shared prefix)."""
    fam = model_family(judge_model)
    return fam != "unknown" and fam == model_family(candidate_model)
