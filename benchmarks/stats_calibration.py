"""Do benchrun's statistics keep their promise? A seeded simulation study (issue 13).

    .venv/bin/python benchmarks/stats_calibration.py [--reps 1000] [--only pass_rate,kappa,...] [--seed 0]

For every interval benchrun reports it prints the empirical coverage of the 95% interval at
n = 20, 50 and 200 (cases or items), and for every decision rule its false-positive rate
under the null and its power at a stated effect, next to the method it replaced. Targets
(issue 13): coverage within 0.93-0.97 at n >= 50; false-positive rate <= 5% for every flag;
the verdict with several samples per case at least as powerful as with one. Every row is
marked ok / MISS against its target. The output is Markdown; docs/statistics.md holds a run.

Monte Carlo error: with R repetitions a rate near 0.95 has a standard error of about
sqrt(0.95 * 0.05 / R) (0.007 at R = 1000), a rate near 0.05 the same. Rows are marked MISS
only when the target is missed by more than two standard errors; the raw numbers are shown.

Models simulated (all seeded, so a run is reproducible):

* cases: case i has a latent difficulty u_i ~ N(0, 1); a model's samples on it pass
  independently with probability Phi(a + u_i), a = Phi^-1(mu) * sqrt(2), so the mean pass
  rate over cases is exactly mu and samples of a case are correlated (intra-case
  correlation about 0.2-0.3). Two models share u_i (they find the same cases hard), so a
  paired comparison has something to gain.
* judge vs humans: 2x2 tables drawn from cell probabilities with the given human pass rate,
  judge pass rate and Cohen's kappa.
* verbosity: true quality t ~ U{2, 3, 4}; every judgement is t + noise (noise uniform on
  {-1, 0, +1}) clipped to 1-5; a padded variant gets +1 with probability `bias` before noise.
* coverage floor: 20 clusters with Dirichlet(1) production shares estimated from 2,000
  production items.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from benchrun.analysis.bias import VerbosityItem, verbosity_report
from benchrun.analysis.calibration import cohen_kappa_from_table, kappa_wald_interval
from benchrun.analysis.compare import (
    Outcome,
    breakdown_compare,
    mcnemar_exact_p,
    paired_compare,
    paired_test,
)
from benchrun.analysis.shortlist import Candidate, shortlist
from benchrun.analysis.stats import SignificanceTest, clustered_wilson_interval, wilson_interval

SIZES = (20, 50, 200)


# ----------------------------------------------------------------------------- reporting


@dataclass
class Row:
    what: str
    method: str
    values: dict[int | str, float]
    kind: str  # "coverage" | "fp" | "power" | "info"


def _se(p: float, reps: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.05 * 0.95) / reps)


def _mark(row: Row, reps: int) -> str:
    if row.kind == "coverage":
        bad = [n for n, v in row.values.items() if isinstance(n, int) and n >= 50
               and not (0.93 - 2 * _se(v, reps) <= v <= 0.97 + 2 * _se(v, reps))]
        return "ok" if not bad else "MISS at n=" + ",".join(str(n) for n in bad)
    if row.kind == "fp":
        bad = [str(n) for n, v in row.values.items() if v > 0.05 + 2 * _se(0.05, reps)]
        return "ok" if not bad else "MISS at " + ",".join(bad)
    return ""


def print_table(title: str, rows: list[Row], reps: int, cols: Sequence[int | str] = SIZES,
                col_name: str = "n") -> None:
    print(f"\n### {title}\n")
    head = " | ".join(f"{col_name}={c}" if isinstance(c, int) else str(c) for c in cols)
    print(f"| quantity | method | {head} | target |")
    print("|" + "---|" * (len(cols) + 3))
    for r in rows:
        vals = " | ".join("" if c not in r.values else f"{r.values[c]:.3f}" for c in cols)
        print(f"| {r.what} | {r.method} | {vals} | {_mark(r, reps)} |")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- case model


def _a(mu: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(mu) * math.sqrt(2.0))


def draw_cases(rng: np.random.Generator, g: int, k: int, mus: Sequence[float]) -> list[np.ndarray]:
    """Per model, a (g, k) boolean array of samples; models share each case's difficulty."""
    from scipy.stats import norm

    u = rng.normal(size=g)
    return [rng.random((g, k)) < norm.cdf(_a(mu) + u)[:, None] for mu in mus]


def outcomes(passes: np.ndarray, cats: Sequence[str] | None = None, sevs: Sequence[str] | None = None,
             prefix: str = "c") -> list[Outcome]:
    out = []
    for i, row in enumerate(passes):
        cat = cats[i] if cats is not None else "g"
        sev = sevs[i] if sevs is not None else "medium"
        out += [Outcome(f"{prefix}{i:04d}", s, bool(p), None, cat, sev) for s, p in enumerate(row)]
    return out


def majority_verdict(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> bool:
    """The replaced rule: McNemar on each case's majority vote, 50/50 splits dropped."""
    k = a.shape[1]
    ca, cb = a.sum(axis=1), b.sum(axis=1)
    ma = np.where(2 * ca > k, 1, np.where(2 * ca < k, 0, -1))
    mb = np.where(2 * cb > k, 1, np.where(2 * cb < k, 0, -1))
    ok = (ma >= 0) & (mb >= 0)
    return mcnemar_exact_p(int(np.sum(ok & (ma == 1) & (mb == 0))), int(np.sum(ok & (ma == 0) & (mb == 1)))) < alpha


# ----------------------------------------------------------------------------- intervals


def sim_pass_rate(reps: int, seed: int) -> list[Row]:
    rows = []
    for mu in (0.7, 0.9):
        for k in (1, 3, 10):
            new: dict[int | str, float] = {}
            old: dict[int | str, float] = {}
            for n in SIZES:
                rng = np.random.default_rng([seed, 1, k, n, int(mu * 100)])
                hit_new = hit_old = 0
                for _ in range(reps):
                    (x,) = draw_cases(rng, n, k, [mu])
                    c = x.sum(axis=1)
                    iv = clustered_wilson_interval(c.tolist(), [k] * n).interval
                    hit_new += iv.low <= mu <= iv.high
                    w = wilson_interval(int(c.sum()), n * k)
                    hit_old += w.low <= mu <= w.high
                new[n], old[n] = hit_new / reps, hit_old / reps
            label = f"pass rate {mu:.0%}, {k} sample(s)/case"
            rows.append(Row(label, "Wilson" if k == 1 else "clustered Wilson (design effect)", new, "coverage"))
            if k > 1:
                rows.append(Row(label, "old: Wilson over samples", old, "info"))
    return rows


def sim_difference(reps: int, seed: int) -> list[Row]:
    rows = []
    delta = 0.10
    for k in (1, 3):
        boot: dict[int | str, float] = {}
        se: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 2, k, n])
            hb = hs = 0
            for _ in range(reps):
                a, b = draw_cases(rng, n, k, [0.75, 0.65])
                res = paired_compare(outcomes(a), outcomes(b), n_boot=1000, seed=int(rng.integers(1 << 30)))
                hb += res.bootstrap is not None and res.bootstrap.low <= delta <= res.bootstrap.high
                hs += res.se_interval is not None and res.se_interval.low <= delta <= res.se_interval.high
            boot[n], se[n] = hb / reps, hs / reps
        rows.append(Row(f"pass-rate difference (75% vs 65%), {k} sample(s)/case", "percentile bootstrap over cases",
                        boot, "coverage"))
        rows.append(Row(f"pass-rate difference (75% vs 65%), {k} sample(s)/case",
                        "t with cluster-robust SE" if k > 1 else "paired t", se, "coverage"))
    return rows


def kappa_cells(r: float, c: float, kappa: float) -> np.ndarray:
    """Cell probabilities (00, 01, 10, 11), humans in rows, with human pass rate r, judge pass rate c, kappa."""
    u, v = r * (1 - c), (1 - r) * c
    d = kappa * (u + v) / 2
    return np.array([(1 - r) * (1 - c) + d, v - d, u - d, r * c + d])


def sim_kappa(reps: int, seed: int) -> list[Row]:
    rows = []
    for r, c, kappa in ((0.5, 0.5, 0.6), (0.7, 0.75, 0.6), (0.8, 0.85, 0.8), (0.6, 0.6, 0.9)):
        new: dict[int | str, float] = {}
        old: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 3, n, int(100 * kappa), int(100 * r)])
            hit_new = hit_old = tot = 0
            for counts in rng.multinomial(n, kappa_cells(r, c, kappa), size=reps):
                t = counts.reshape(2, 2).tolist()
                k = cohen_kappa_from_table(t)
                if k.interval is None:
                    continue
                tot += 1
                hit_new += k.interval.low <= kappa <= k.interval.high
                w = kappa_wald_interval(t)
                hit_old += w is not None and w.low <= kappa <= w.high
            new[n], old[n] = hit_new / max(tot, 1), hit_old / max(tot, 1)
        label = f"kappa {kappa} (human pass {r:.0%}, judge pass {c:.0%})"
        rows.append(Row(label, "Jeffreys posterior", new, "coverage"))
        rows.append(Row(label, "old: Wald (FCE SE)", old, "info"))
    return rows


def judge(rng: np.random.Generator, t: int, bias: int = 0) -> float:
    return float(min(5, max(1, t + bias + int(rng.integers(-1, 2)))))


def verbosity_items(rng: np.random.Generator, n: int, bias: float, rejudge: bool = True) -> list[VerbosityItem]:
    items = []
    for i in range(n):
        t = int(rng.integers(2, 5))
        padded = {v: judge(rng, t, int(rng.random() < bias)) for v in ("restate", "list", "filler")}
        items.append(VerbosityItem(f"i{i}", judge(rng, t), padded,
                                   rejudged_scores=(judge(rng, t),) if rejudge else ()))
    return items


def true_inflation(bias: float, seed: int, draws: int = 400_000) -> float:
    rng = np.random.default_rng([seed, 99])
    t = rng.integers(2, 5, draws)

    def j(extra: np.ndarray | int) -> np.ndarray:
        return np.clip(t + extra + rng.integers(-1, 2, draws), 1, 5)

    padded = np.mean([j((rng.random(draws) < bias).astype(int)) for _ in range(3)], axis=0)
    unpadded = (j(0) + j(0)) / 2
    return float(np.mean(padded - unpadded))


def sim_inflation(reps: int, seed: int) -> list[Row]:
    rows = []
    for bias in (0.0, 0.3):
        truth = true_inflation(bias, seed)
        cov: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 4, n, int(bias * 10)])
            hit = 0
            for _ in range(reps):
                rep = verbosity_report(verbosity_items(rng, n, bias))
                hit += rep.inflation is not None and rep.inflation.low <= truth <= rep.inflation.high
            cov[n] = hit / reps
        rows.append(Row(f"verbosity inflation (bias {bias}, true {truth:+.3f})", "t interval over items", cov,
                        "coverage"))
    return rows


def sim_jsd_floor(reps: int, seed: int) -> list[Row]:
    from benchrun.coverage.report import jensen_shannon_divergence, jsd_floor

    cov: dict[int | str, float] = {}
    for m in SIZES:
        rng = np.random.default_rng([seed, 5, m])
        hit = tot = 0
        for _ in range(max(20, reps // 10)):
            p_true = rng.dirichlet(np.ones(20))
            p_est = rng.multinomial(2000, p_true) / 2000
            _, p95 = jsd_floor(p_est, m, draws=200, seed=int(rng.integers(1 << 30)), n_production=2000)
            for _ in range(10):
                tot += 1
                hit += jensen_shannon_divergence(p_est, rng.multinomial(m, p_true)) <= p95
        cov[m] = hit / tot
    return [Row("JSD floor (95th percentile of random m-case samples)",
                "200 draws of eval and production samples", cov, "coverage")]


# ----------------------------------------------------------------------------- decision rules


def sim_verdict(reps: int, seed: int) -> list[Row]:
    rows = []
    for k in (1, 3, 10):
        fp: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 6, k, n])
            hits = 0
            for _ in range(reps):
                a, b = draw_cases(rng, n, k, [0.7, 0.7])
                t = paired_test(outcomes(a), outcomes(b))
                hits += t is not None and t.p_value < 0.05
            fp[n] = hits / reps
        rows.append(Row(f"larger than noise, null (70% vs 70%), {k} sample(s)/case",
                        "McNemar exact" if k == 1 else "exact sign-flip test", fp, "fp"))
    return rows


def sim_verdict_power(reps: int, seed: int) -> list[Row]:
    rows = []
    ks = (1, 2, 3, 4, 5, 10)
    for n in (40, 200):
        new: dict[int | str, float] = {}
        old: dict[int | str, float] = {}
        for k in ks:
            rng = np.random.default_rng([seed, 7, k, n])
            hn = ho = 0
            for _ in range(reps):
                a, b = draw_cases(rng, n, k, [0.6, 0.5])
                t = paired_test(outcomes(a), outcomes(b))
                hn += t is not None and t.p_value < 0.05
                ho += majority_verdict(a, b)
            new[f"k={k}"], old[f"k={k}"] = hn / reps, ho / reps
        rows.append(Row(f"larger than noise, power, 60% vs 50%, {n} cases", "new (sign-flip; McNemar at k=1)", new,
                        "power"))
        rows.append(Row(f"larger than noise, power, 60% vs 50%, {n} cases", "old: majority-vote McNemar", old, "info"))
    return rows


def sim_trust(reps: int, seed: int) -> list[Row]:
    rows = []
    for kappa, kind in ((0.6, "fp"), (0.55, "fp"), (0.8, "power")):
        new: dict[int | str, float] = {}
        old: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 8, n, int(100 * kappa)])
            hn = ho = 0
            for counts in rng.multinomial(n, kappa_cells(0.6, 0.65, kappa), size=reps):
                t = counts.reshape(2, 2).tolist()
                k = cohen_kappa_from_table(t)
                hn += k.interval is not None and k.interval.low >= 0.6
                w = kappa_wald_interval(t)
                ho += w is not None and w.low >= 0.6
            new[n], old[n] = hn / reps, ho / reps
        what = f"trusted judge (threshold 0.6), true kappa {kappa}"
        # the rule is one-sided: at the boundary it may trust at most 2.5% of the time
        rows.append(Row(what, "lower end of Jeffreys interval >= 0.6", new, kind))
        rows.append(Row(what, "old: lower end of Wald interval", old, "info"))
    return rows


def old_verbosity_flag(items: Sequence[VerbosityItem]) -> bool:
    fails = sum(1 for it in items if any(s > it.original_score for s in it.padded_scores.values()))
    return fails / len(items) > 0.10


def sim_verbosity_flag(reps: int, seed: int) -> list[Row]:
    rows = []
    for bias, kind in ((0.0, "fp"), (0.3, "power"), (0.5, "power")):
        new: dict[int | str, float] = {}
        old: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 9, n, int(bias * 10)])
            hn = ho = 0
            for _ in range(reps):
                items = verbosity_items(rng, n, bias)
                hn += verbosity_report(items).flagged
                ho += old_verbosity_flag(items)
            new[n], old[n] = hn / reps, ho / reps
        what = f"verbosity flag, bias {bias} (noise +-1)"
        rows.append(Row(what, "exact sign test + net rate > 10%", new, kind))
        rows.append(Row(what, "old: any padded variant higher > 10%", old, "info"))
    return rows


def _candidates(arrays: list[np.ndarray]) -> tuple[list[Candidate], dict[str, list[Outcome]]]:
    cands, outs = [], {}
    for i, x in enumerate(arrays):
        key = f"m{i}"
        cl = clustered_wilson_interval(x.sum(axis=1).tolist(), [x.shape[1]] * x.shape[0])
        cands.append(Candidate(key, key, cl.interval, cost_per_1k_cases=float(i), n_effective=cl.n_effective))
        outs[key] = outcomes(x)
    return cands, outs


def _paired_fn(outs: dict[str, list[Outcome]]) -> Callable[[Candidate, Candidate], SignificanceTest | None]:
    def fn(x: Candidate, y: Candidate) -> SignificanceTest | None:
        t = paired_test(outs[x.key], outs[y.key])
        return None if t is None else SignificanceTest(t.p_value, t.method)

    return fn


def sim_shortlist(reps: int, seed: int) -> list[Row]:
    rows = []
    for label, mus, kind in (("6 equal candidates (70%)", [0.7] * 6, "fp"),
                             ("one candidate 15 points better (85% vs 5 x 70%)", [0.85] + [0.7] * 5, "power")):
        paired: dict[int | str, float] = {}
        unpaired: dict[int | str, float] = {}
        raw: dict[int | str, float] = {}
        for n in SIZES:
            rng = np.random.default_rng([seed, 10, n, len(label)])
            hp = hu = hr = 0
            for _ in range(reps):
                cands, outs = _candidates(draw_cases(rng, n, 1, mus))
                fn = _paired_fn(outs)
                res = shortlist(cands, pair_test=fn)
                res_u = shortlist(cands)
                if kind == "fp":
                    hp += len({r.rank for r in res.ranked}) > 1
                    hu += len({r.rank for r in res_u.ranked}) > 1
                    hr += any(t.p_value is not None and t.p_value < 0.05 for t in res.comparisons)
                else:
                    top = [r for r in res.ranked if r.rank == 1]
                    hp += len(top) == 1 and top[0].candidate.key == "m0"
                    top_u = [r for r in res_u.ranked if r.rank == 1]
                    hu += len(top_u) == 1 and top_u[0].candidate.key == "m0"
                    hr += all(t.p_value is not None and t.p_value < 0.05 for t in res.comparisons if "m0" in (t.a, t.b))
            paired[n], unpaired[n], raw[n] = hp / reps, hu / reps, hr / reps
        what = f"shortlist: {label}" + (": ranks differ" if kind == "fp" else ": ranked alone first")
        rows.append(Row(what, "paired test, Holm over 15 pairs", paired, kind))
        rows.append(Row(what, "two-proportion test on effective n, Holm", unpaired, kind))
        rows.append(Row(what, "old: paired test, no adjustment", raw, "info"))
    return rows


def sim_breakdown(reps: int, seed: int) -> list[Row]:
    rows = []
    for label, effect, kind in (("equal models", 0.0, "fp"), ("A 30 points better in one category", 0.3, "power")):
        new: dict[int | str, float] = {}
        old: dict[int | str, float] = {}
        for n in (50, 200, 500):
            rng = np.random.default_rng([seed, 11, n, int(effect * 10)])
            cats = [f"cat{i % 10}" for i in range(n)]
            sevs = [("high", "medium", "low")[i % 3] for i in range(n)]
            hn = ho = 0
            reps_here = max(50, reps // 4)
            for _ in range(reps_here):
                a, b = draw_cases(rng, n, 1, [0.7, 0.7])
                if effect:
                    sel = np.array([c == "cat0" for c in cats])
                    a[sel] = rng.random((int(sel.sum()), 1)) < min(1.0, 0.7 + effect)
                groups = breakdown_compare(outcomes(a, cats, sevs), outcomes(b, cats, sevs), n_boot=200)
                if kind == "fp":
                    hn += any(g.flagged for g in groups)
                    ho += any(g.comparison.larger_than_noise and not g.too_few_pairs for g in groups)
                else:
                    hn += any(g.flagged and g.group == "cat0" for g in groups)
                    ho += any(g.comparison.larger_than_noise and g.group == "cat0" for g in groups)
            new[n], old[n] = hn / reps_here, ho / reps_here
        what = f"breakdown flags (10 categories + 3 severities), {label}"
        rows.append(Row(what, "Benjamini-Hochberg", new, kind))
        rows.append(Row(what, "old: unadjusted", old, "info"))
    return rows


SECTIONS: dict[str, tuple[str, Callable[[int, int], list[Row]], Sequence[int | str], str]] = {
    "pass_rate": ("Coverage: pass rate", sim_pass_rate, SIZES, "cases"),
    "difference": ("Coverage: paired pass-rate difference", sim_difference, SIZES, "cases"),
    "kappa": ("Coverage: Cohen's kappa (judge vs humans)", sim_kappa, SIZES, "items"),
    "inflation": ("Coverage: verbosity inflation", sim_inflation, SIZES, "items"),
    "jsd": ("Coverage: JSD floor", sim_jsd_floor, SIZES, "eval cases"),
    "verdict": ("False positives: larger than noise", sim_verdict, SIZES, "cases"),
    "verdict_power": ("Power: larger than noise, by samples per case", sim_verdict_power,
                      ("k=1", "k=2", "k=3", "k=4", "k=5", "k=10"), "samples"),
    "trust": ("Trusted judge (false positives at kappa <= 0.6, power at 0.8)", sim_trust, SIZES, "items"),
    "verbosity": ("Verbosity flag", sim_verbosity_flag, SIZES, "items"),
    "shortlist": ("Shortlist ties", sim_shortlist, SIZES, "cases"),
    "breakdown": ("Breakdown flags", sim_breakdown, (50, 200, 500), "cases"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1000, help="repetitions per cell (breakdown: a quarter)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated sections: " + ",".join(SECTIONS))
    args = ap.parse_args()
    chosen = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    print(f"# stats_calibration: {args.reps} repetitions per cell, seed {args.seed}")
    misses = []
    for key in chosen:
        title, fn, cols, unit = SECTIONS[key]
        t0 = time.perf_counter()
        rows = fn(args.reps, args.seed)
        print_table(f"{title} ({unit})", rows, args.reps, cols)
        print(f"\n_{time.perf_counter() - t0:.0f} s_")
        misses += [f"{r.what} [{r.method}]: {_mark(r, args.reps)}" for r in rows if _mark(r, args.reps).startswith("MISS")]
    print("\n## Targets missed\n")
    print("\n".join(f"- {m}" for m in misses) if misses else "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
