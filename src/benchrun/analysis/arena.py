"""Which model do people prefer? Bradley-Terry ratings from pairwise battles (pure).

A *battle* is one verdict between two models on one case: A won, B won, or a tie. From a list
of battles `rate` computes (formulas and references in docs/arena.md):

* **Bradley-Terry ratings** by maximum likelihood: P(i beats j) = σ(θ_i − θ_j), a tie counting
  as half a win for each side (as Chatbot Arena does), fitted by Newton's method with
  backtracking on the log-likelihood plus a tiny ridge penalty ``ridge/2·‖θ‖²`` (default 1e-4;
  it only matters when the maximum-likelihood estimate does not exist, e.g. a model that never
  lost, which is then said in a note). Shown on the **Elo scale**: 400·log10 odds, i.e.
  rating_i = 1000 + 400·(θ_i − θ_anchor)/ln 10, anchored at a chosen model (which gets 1000) or
  at the mean of all models (1000).
* **95% intervals** by the percentile bootstrap over **cases** (all battles of a resampled case
  go in together: battles on one case are correlated); a battle without ``case_id`` is its own
  case. The same draws give a **rank interval** per model (2.5th-97.5th percentile of its rank
  1 + #models rated higher in a draw).
* **Ties between models** as in `benchrun.analysis.shortlist`: every pair is tested (two-sided
  z-test of θ_i − θ_j with its case-bootstrap standard error, which includes the covariance of
  the two ratings, so it is the paired analogue of the shortlist's test, not interval overlap),
  the p-values are Holm-adjusted over all pairs, and a pair is tied unless p_adjusted < 0.05.
  A pair is not tested (so tied) when a model has battles on fewer than 5 cases (a bootstrap
  over so few cases cannot estimate the spread) or when the two are in different strongly
  connected components of the "scored against" graph (their gap is unbounded in the data).
  rank = 1 + #models with a higher rating that are not tied with it (Chiang et al. 2024).
* **Win-rate matrix**: for every pair that met, the row model's win rate over the column model
  (ties half), with the Wilson interval on the number of battles (battles treated as
  independent) and that number.
* **Length-controlled win rate** against a baseline (AlpacaEval 2.0, Dubois et al. 2024): per
  model, a logistic model of P(model beats baseline) = σ(α + β·z) with z the length difference
  (model − baseline) divided by its standard deviation; the LC win rate is σ(α), the predicted
  win rate at zero length difference. Beside it the raw win rate; both with case-bootstrap
  percentile intervals. Their difference is this judge's verbosity bias on these cases.
* **Per-category ratings**: the same fit on each category's battles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from benchrun.analysis.stats import Interval, holm_adjust
from benchrun.errors import BadInput

WINNERS = ("model_a", "model_b", "tie")
ELO_SCALE = 400.0 / math.log(10.0)
INITIAL = 1000.0
BOOT_METHOD = "percentile bootstrap over cases"
MIN_TEST_CASES = 5  # a pair is tested only when both models have battles on at least this many cases
WILSON_BATTLES = "Wilson score on battles"
TIE_RULE = ("tied unless the z-test of the rating difference (case-bootstrap standard error) has a "
            "Holm-adjusted p < {alpha:g} over all {n} pair(s)")


@dataclass(frozen=True)
class Battle:
    """One pairwise verdict. ``winner`` is "model_a", "model_b" or "tie"; lengths in any unit (characters,
    tokens) as long as all battles use the same."""

    model_a: str
    model_b: str
    winner: str
    case_id: str | None = None
    judge: str | None = None
    len_a: float | None = None
    len_b: float | None = None
    category: str | None = None


@dataclass(frozen=True)
class ModelRating:
    model: str
    rating: float
    interval: Interval
    rank: int
    rank_interval: tuple[int, int]
    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float  # (wins + ties/2) / battles
    tied_with: tuple[str, ...]


@dataclass(frozen=True)
class PairCell:
    """Row model ``a`` against column model ``b``: its win rate (ties half) over their ``battles``."""

    a: str
    b: str
    battles: int
    win_rate: float
    interval: Interval


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    difference: float  # rating_a − rating_b (Elo points)
    se: float | None  # bootstrap standard error of the difference (Elo points)
    p_value: float | None
    p_adjusted: float | None
    tied: bool


@dataclass(frozen=True)
class LengthControlled:
    model: str
    baseline: str
    battles: int  # battles against the baseline with both lengths known
    raw_win_rate: Interval
    lc_win_rate: Interval | None  # None when the model cannot be fitted (see note)
    length_coef: float | None  # β: change in log-odds per standard deviation of length difference
    note: str | None = None


@dataclass(frozen=True)
class CategoryRatings:
    category: str
    battles: int
    ratings: tuple[ModelRating, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArenaResult:
    ratings: tuple[ModelRating, ...]  # best first
    matrix: tuple[PairCell, ...]
    tests: tuple[PairTest, ...]
    anchor: str | None  # None: the mean of all models is 1000
    n_battles: int
    n_cases: int
    n_boot: int
    level: float
    method: str
    tie_rule: str
    notes: tuple[str, ...] = ()
    baseline: str | None = None
    length_controlled: tuple[LengthControlled, ...] = ()
    categories: tuple[CategoryRatings, ...] = ()


# ----------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _Design:
    models: tuple[str, ...]
    a: np.ndarray  # int index of model_a per battle
    b: np.ndarray
    y: np.ndarray  # score of model_a: 1, 0 or 0.5
    case: np.ndarray  # case index per battle
    n_cases: int


def _encode(battles: Sequence[Battle], models: Sequence[str] | None = None) -> _Design:
    names = tuple(sorted({m for bt in battles for m in (bt.model_a, bt.model_b)})) if models is None else tuple(models)
    idx = {m: i for i, m in enumerate(names)}
    a = np.fromiter((idx[bt.model_a] for bt in battles), dtype=np.int64, count=len(battles))
    b = np.fromiter((idx[bt.model_b] for bt in battles), dtype=np.int64, count=len(battles))
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
    y = np.fromiter((score[bt.winner] for bt in battles), dtype=float, count=len(battles))
    case_idx: dict[str, int] = {}
    case = np.empty(len(battles), dtype=np.int64)
    n = 0
    for k, bt in enumerate(battles):
        if bt.case_id is None:
            case[k] = n
            n += 1
        else:
            c = case_idx.get(bt.case_id)
            if c is None:
                c = case_idx[bt.case_id] = n
                n += 1
            case[k] = c
    return _Design(names, a, b, y, case, n)


def _check(battles: Sequence[Battle]) -> None:
    if not battles:
        raise BadInput(None, "battles", "no battles to rate; give at least one battle between two models")
    for k, bt in enumerate(battles):
        if bt.winner not in WINNERS:
            raise BadInput(None, f"battle {k + 1}", f"winner '{bt.winner}' is not one of {', '.join(WINNERS)}")
        if bt.model_a == bt.model_b:
            raise BadInput(None, f"battle {k + 1}", f"model_a and model_b are both '{bt.model_a}'; a battle needs two models")


def _components(k: int, i: np.ndarray, j: np.ndarray, strong: bool) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(k, k)).tocsr()
    n, labels = connected_components(g, directed=strong, connection="strong" if strong else "weak")
    return int(n), labels


# ----------------------------------------------------------------------------- Bradley-Terry fit


def _pair_totals(d: _Design, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Score matrices ``S[r, i, j]`` (points of i against j, ties half) and battle counts ``N[r, i, j]``
    for each row ``r`` of case ``weights`` (R × cases; None: the data as observed, R = 1)."""
    from scipy.sparse import csr_matrix

    k = len(d.models)
    ab = d.a * k + d.b
    ba = d.b * k + d.a
    rows = np.concatenate([d.case, d.case])
    cols = np.concatenate([ab, ba])
    score = csr_matrix((np.concatenate([d.y, 1.0 - d.y]), (rows, cols)), shape=(d.n_cases, k * k))
    if weights is None:
        weights = np.ones((1, d.n_cases))
    s = np.asarray((score.T @ weights.T).T).reshape(-1, k, k)
    return s, s + s.transpose(0, 2, 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _neg_loglik(theta: np.ndarray, s: np.ndarray, ridge: float) -> np.ndarray:
    diff = theta[:, :, None] - theta[:, None, :]
    return -(s * _log_sigmoid(diff)).sum(axis=(1, 2)) + 0.5 * ridge * (theta**2).sum(axis=1)


def fit_bt(s: np.ndarray, n: np.ndarray, ridge: float = 1e-4, max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry log-strengths θ (R × K, each row summing to 0) for stacked score and count matrices.

    Minimises −Σ_{i≠j} S_ij log σ(θ_i − θ_j) + ridge/2·‖θ‖² by Newton's method with step halving
    (the objective is convex). A model with no battles in a row gets θ = 0. The sum-to-zero
    constraint is imposed by adding 11ᵀ/K to the Hessian (the gradient is orthogonal to 1).
    """
    r, k, _ = s.shape
    theta = np.zeros((r, k))
    present = n.sum(axis=2) > 0
    eye = np.eye(k)
    ones = np.full((k, k), 1.0 / k)
    f = _neg_loglik(theta, s, ridge)
    active = np.ones(r, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        th, sa, na = theta[active], s[active], n[active]
        p = _sigmoid(th[:, :, None] - th[:, None, :])
        grad = (sa - na * p).sum(axis=2) - ridge * th
        info = na * p * (1.0 - p)
        hess = -info + eye * info.sum(axis=2)[:, :, None] + ridge * eye + ones
        hess = hess + eye * (~present[active])[:, :, None]
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        f_old = f[active]
        t = np.ones(len(th))
        new = th + step
        f_new = _neg_loglik(new, sa, ridge)
        for _ in range(40):
            worse = f_new > f_old + 1e-12 * np.abs(f_old)
            if not worse.any():
                break
            t[worse] *= 0.5
            new[worse] = th[worse] + t[worse, None] * step[worse]
            f_new[worse] = _neg_loglik(new[worse], sa[worse], ridge)
        idx = np.flatnonzero(active)
        theta[idx] = new
        f[idx] = f_new
        done = np.abs(t[:, None] * step).max(axis=1) < tol
        active[idx[done]] = False
    theta -= np.where(present, theta, 0.0).sum(axis=1, keepdims=True) / np.maximum(present.sum(axis=1, keepdims=True), 1)
    return np.where(present, theta, 0.0)


def _to_elo(theta: np.ndarray, present: np.ndarray, anchor: int | None) -> np.ndarray:
    """Elo-scale ratings per row; models absent from a row are NaN."""
    elo = ELO_SCALE * theta
    if anchor is None:
        centre = np.where(present, elo, 0.0).sum(axis=1, keepdims=True) / present.sum(axis=1, keepdims=True)
    else:
        centre = elo[:, anchor : anchor + 1]
    out = INITIAL + elo - centre
    out[~present] = np.nan
    if anchor is not None:
        out[~present[:, anchor]] = np.nan
    return out


def _case_weights(n_cases: int, n_boot: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Case multiplicities of ``n_boot`` bootstrap resamples (chunk × cases at a time)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        picks = rng.integers(0, n_cases, size=(m, n_cases)) + (np.arange(m) * n_cases)[:, None]
        yield np.bincount(picks.ravel(), minlength=m * n_cases).reshape(m, n_cases).astype(float)
        done += m


def _chunk_size(n_cases: int, k: int) -> int:
    return int(max(1, min(100, 4_000_000 // max(1, n_cases + k * k))))


# ----------------------------------------------------------------------------- length control


def _fit_logistic2(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-4, max_iter: int = 100
                   ) -> np.ndarray:
    """Intercept and slope of a fractional-response logistic regression of y on x, for each row of weights
    ``w`` (R × n). Newton's method with step halving; ``ridge`` keeps separated data finite."""
    r = w.shape[0]
    beta = np.zeros((r, 2))

    def nll(bb: np.ndarray) -> np.ndarray:
        eta = bb[:, :1] + bb[:, 1:] * x[None, :]
        return -(w * (y * _log_sigmoid(eta) + (1 - y) * _log_sigmoid(-eta))).sum(axis=1) + 0.5 * ridge * (bb**2).sum(1)

    f = nll(beta)
    for _ in range(max_iter):
        eta = beta[:, :1] + beta[:, 1:] * x[None, :]
        p = _sigmoid(eta)
        res = w * (y - p)
        g = np.stack([res.sum(1), (res * x).sum(1)], axis=1) - ridge * beta
        v = w * p * (1 - p)
        h00, h01, h11 = v.sum(1) + ridge, (v * x).sum(1), (v * x * x).sum(1) + ridge
        det = h00 * h11 - h01 * h01
        det = np.where(det > 0, det, np.inf)
        step = np.stack([(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det], axis=1)
        t = np.ones(r)
        new = beta + step
        f_new = nll(new)
        for _ in range(40):
            worse = f_new > f + 1e-12 * np.abs(f)
            if not worse.any():
                break
            t[worse] *= 0.5
            new[worse] = beta[worse] + t[worse, None] * step[worse]
            f_new[worse] = nll(new[worse])
        beta, f = new, f_new
        if np.abs(t[:, None] * step).max() < 1e-10:
            break
    return beta


@dataclass
class _LCData:
    model: str
    sel: np.ndarray  # battle indices against the baseline with both lengths
    x: np.ndarray  # standardised length difference (model − baseline)
    y: np.ndarray  # model's score (ties half)
    note: str | None
    boot_raw: list[np.ndarray]
    boot_lc: list[np.ndarray]


def _lc_prepare(battles: Sequence[Battle], d: _Design, baseline: str) -> tuple[list[_LCData], list[str]]:
    notes: list[str] = []
    out: list[_LCData] = []
    bi = d.models.index(baseline)
    missing_len = 0
    for m in d.models:
        if m == baseline:
            continue
        mi = d.models.index(m)
        sel_list: list[int] = []
        diff: list[float] = []
        ys: list[float] = []
        for k in np.flatnonzero(((d.a == mi) & (d.b == bi)) | ((d.a == bi) & (d.b == mi))):
            bt = battles[int(k)]
            if bt.len_a is None or bt.len_b is None:
                missing_len += 1
                continue
            model_is_a = d.a[k] == mi
            sel_list.append(int(k))
            diff.append((bt.len_a - bt.len_b) if model_is_a else (bt.len_b - bt.len_a))
            ys.append(float(d.y[k]) if model_is_a else 1.0 - float(d.y[k]))
        x = np.asarray(diff, dtype=float)
        note = None
        if len(x) == 0:
            note = f"no battles against {baseline} with both lengths"
        elif len(x) < 2 or float(np.std(x)) == 0.0:
            note = "the length difference does not vary, so its effect cannot be separated"
        else:
            x = x / float(np.std(x, ddof=1))
        out.append(_LCData(m, np.asarray(sel_list, dtype=np.int64), x, np.asarray(ys, dtype=float), note, [], []))
    if missing_len:
        notes.append(f"{missing_len} battle(s) against the baseline have no len_a/len_b and are left out of the "
                     "length-controlled win rate")
    return out, notes


# ----------------------------------------------------------------------------- the analysis


def _wilson(p: float, n: int, level: float) -> tuple[float, float]:
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _ratings(d: _Design, anchor: str | None, n_boot: int, seed: int, level: float, ridge: float,
             lc: list[_LCData] | None = None) -> tuple[list[ModelRating], list[PairTest], str, list[str]]:
    k = len(d.models)
    notes: list[str] = []
    s, n = _pair_totals(d, None)
    theta = fit_bt(s, n, ridge)
    present = n.sum(axis=2) > 0
    ai = None if anchor is None else d.models.index(anchor)
    point = _to_elo(theta, present, ai)[0]
    ii, jj = np.nonzero(s[0] > 0)
    n_strong, component = _components(k, ii, jj, strong=True)
    if n_strong > 1:
        notes.append("the maximum-likelihood ratings do not exist: some model(s) never lost (or never won) against "
                     "the rest, so the gaps at the ends are set by the ridge penalty and are only lower bounds")
    boot = np.empty((n_boot, k))
    done = 0
    for w in _case_weights(d.n_cases, n_boot, seed, _chunk_size(d.n_cases, k)):
        sb, nb = _pair_totals(d, w)
        tb = fit_bt(sb, nb, ridge)
        boot[done : done + len(w)] = _to_elo(tb, nb.sum(axis=2) > 0, ai)
        if lc:
            for item in lc:
                if item.note is not None:
                    continue
                cw = w[:, d.case[item.sel]]
                tot = cw.sum(1)
                item.boot_raw.append(np.where(tot > 0, (cw * item.y).sum(1) / np.where(tot > 0, tot, 1), np.nan))
                beta = _fit_logistic2(item.x, item.y, cw)
                item.boot_lc.append(np.where(tot > 0, _sigmoid(beta[:, 0]), np.nan))
        done += len(w)
    absent = int(np.isnan(boot).any(axis=1).sum())
    if absent:
        notes.append(f"{absent} of {n_boot} bootstrap draw(s) left out some model entirely (few cases): its "
                     "interval uses the draws that include it")
    # ranks per draw: 1 + number rated higher (absent models rank last)
    filled = np.where(np.isnan(boot), -np.inf, boot)
    ranks = 1 + (filled[:, None, :] > filled[:, :, None]).sum(axis=2)
    # pair tests
    alpha = 1 - level
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw: list[tuple[float, float | None, float | None]] = []
    model_cases = [len(np.unique(d.case[(d.a == i) | (d.b == i)])) for i in range(k)]
    untestable = 0
    for i, j in pairs:
        diff = boot[:, i] - boot[:, j]
        diff = diff[~np.isnan(diff)]
        se = float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0
        est = float(point[i] - point[j])
        if component[i] != component[j] or min(model_cases[i], model_cases[j]) < MIN_TEST_CASES:
            untestable += 1
            raw.append((est, None, None))
        elif se > 0:
            raw.append((est, se, math.erfc(abs(est) / se / math.sqrt(2.0))))
        else:
            raw.append((est, None, None))
    if untestable:
        notes.append(f"{untestable} pair(s) not tested, so counted as tied: a model with battles on fewer than "
                     f"{MIN_TEST_CASES} cases, or ratings whose gap the data cannot bound (no maximum-likelihood "
                     "estimate between them)")
    tested = [t for t, r in enumerate(raw) if r[2] is not None]
    adj = dict(zip(tested, holm_adjust([raw[t][2] for t in tested]), strict=True))  # type: ignore[misc]
    tests: list[PairTest] = []
    tied_sets: dict[int, set[int]] = {i: set() for i in range(k)}
    for t, (i, j) in enumerate(pairs):
        est, se, p = raw[t]
        pa = adj.get(t)
        is_tied = pa is None or pa >= alpha
        if is_tied:
            tied_sets[i].add(j)
            tied_sets[j].add(i)
        sign = 1 if est >= 0 else -1
        a, b = (i, j) if sign > 0 else (j, i)
        tests.append(PairTest(d.models[a], d.models[b], abs(est), se, p, pa, is_tied))
    counts = _counts(d)
    out: list[ModelRating] = []
    for i, m in enumerate(d.models):
        rank = 1 + sum(1 for j in range(k) if point[j] > point[i] and j not in tied_sets[i])
        lo, hi = _pct(boot[:, i], level)
        r_lo = int(np.quantile(ranks[:, i], (1 - level) / 2, method="lower"))
        r_hi = int(np.quantile(ranks[:, i], (1 + level) / 2, method="higher"))
        w_, l_, t_ = counts[i]
        nb_ = w_ + l_ + t_
        out.append(ModelRating(m, float(point[i]), Interval(float(point[i]), lo, hi, level, BOOT_METHOD), rank,
                               (r_lo, r_hi), nb_, w_, l_, t_, (w_ + 0.5 * t_) / nb_ if nb_ else math.nan,
                               tuple(sorted(d.models[j] for j in tied_sets[i]))))
    out.sort(key=lambda r: (-r.rating, r.model))
    tie_rule = TIE_RULE.format(alpha=alpha, n=len(tested))
    return out, tests, tie_rule, notes


def _counts(d: _Design) -> list[tuple[int, int, int]]:
    k = len(d.models)
    wins = np.bincount(d.a[d.y == 1], minlength=k) + np.bincount(d.b[d.y == 0], minlength=k)
    losses = np.bincount(d.a[d.y == 0], minlength=k) + np.bincount(d.b[d.y == 1], minlength=k)
    ties = np.bincount(d.a[d.y == 0.5], minlength=k) + np.bincount(d.b[d.y == 0.5], minlength=k)
    return [(int(wins[i]), int(losses[i]), int(ties[i])) for i in range(k)]


def win_matrix(d: _Design, level: float = 0.95) -> list[PairCell]:
    s, n = _pair_totals(d, None)
    cells: list[PairCell] = []
    k = len(d.models)
    for i in range(k):
        for j in range(k):
            nij = round(float(n[0, i, j]))
            if i == j or nij == 0:
                continue
            p = float(s[0, i, j]) / nij
            lo, hi = _wilson(p, nij, level)
            cells.append(PairCell(d.models[i], d.models[j], nij, p, Interval(p, lo, hi, level, WILSON_BATTLES)))
    return cells


def rate(battles: Sequence[Battle], anchor: str | None = None, baseline: str | None = None, n_boot: int = 1000,
         seed: int = 0, level: float = 0.95, ridge: float = 1e-4, by_category: bool = True) -> ArenaResult:
    """Rate the models in ``battles`` (see the module docstring for every method)."""
    _check(battles)
    d = _encode(battles)
    for name, role in ((anchor, "anchor"), (baseline, "baseline")):
        if name is not None and name not in d.models:
            raise BadInput(None, f"--{role}", f"model '{name}' is in no battle; choose one of {', '.join(d.models[:10])}")
    if n_boot < 2:
        raise BadInput(None, "n_boot", "need at least 2 bootstrap draws")
    n_weak, labels = _components(len(d.models), d.a, d.b, strong=False)
    if n_weak > 1:
        groups = [sorted(m for m, lab in zip(d.models, labels, strict=True) if lab == g)[:3] for g in range(2)]
        raise BadInput(None, "battles", f"the models fall into {n_weak} groups that never meet (e.g. {', '.join(groups[0])} "
                       f"and {', '.join(groups[1])}): ratings across groups mean nothing; add battles between them "
                       "or rate each group separately")
    lc_data, lc_notes = _lc_prepare(battles, d, baseline) if baseline is not None else ([], [])
    ratings, tests, tie_rule, notes = _ratings(d, anchor, n_boot, seed, level, ridge, lc_data)
    notes += lc_notes
    lcs: list[LengthControlled] = []
    for item in lc_data:
        nb = len(item.sel)
        raw = float(item.y.mean()) if nb else math.nan
        if item.note is not None:
            lcs.append(LengthControlled(item.model, baseline or "", nb, Interval(raw, math.nan, math.nan, level,
                                        BOOT_METHOD), None, None, item.note))
            continue
        beta = _fit_logistic2(item.x, item.y, np.ones((1, nb)))[0]
        raw_iv = Interval(raw, *_pct(np.concatenate(item.boot_raw), level), level, BOOT_METHOD)
        lc_iv = Interval(float(_sigmoid(beta[:1])[0]), *_pct(np.concatenate(item.boot_lc), level), level, BOOT_METHOD)
        lcs.append(LengthControlled(item.model, baseline or "", nb, raw_iv, lc_iv, float(beta[1])))
    cats: list[CategoryRatings] = []
    if by_category:
        names = sorted({bt.category for bt in battles if bt.category is not None})
        for c in names:
            sub = [bt for bt in battles if bt.category == c]
            ds = _encode(sub)
            cnotes: list[str] = []
            if len(ds.models) < 2:
                continue
            nw, _ = _components(len(ds.models), ds.a, ds.b, strong=False)
            if nw > 1:
                cats.append(CategoryRatings(c, len(sub), (), ("the models in this category never all meet; not rated",)))
                continue
            ca = anchor if anchor in ds.models else None
            if anchor is not None and ca is None:
                cnotes.append(f"anchor {anchor} has no battles here: the mean is 1000")
            r, _, _, n2 = _ratings(ds, ca, n_boot, seed, level, ridge)
            cats.append(CategoryRatings(c, len(sub), tuple(r), tuple(cnotes + n2)))
    method = (f"Bradley-Terry maximum likelihood (ties half a win), Elo scale 400·log10 odds, "
              f"{'anchor ' + anchor + ' = 1000' if anchor else 'mean = 1000'}; {int(level * 100)}% intervals: "
              f"{BOOT_METHOD} ({n_boot} draws over {d.n_cases} cases)")
    return ArenaResult(tuple(ratings), tuple(win_matrix(d, level)), tuple(tests), anchor, len(battles), d.n_cases,
                       n_boot, level, method, tie_rule, tuple(notes), baseline, tuple(lcs), tuple(cats))
