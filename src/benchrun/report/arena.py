"""`benchrun arena`: the plain data of an `ArenaResult` (for --json) and its terminal rendering (rich).

Model names, categories and notes come from the user's battles file: every one goes through
`benchrun.report.escape.escape` (markup escaped, control sequences stripped) before it is printed,
so a name like ``[bold]x`` or ``[link=…]`` prints as text.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from benchrun.analysis.arena import ArenaResult, ModelRating
from benchrun.analysis.pairwise_agreement import PairwiseAgreement
from benchrun.analysis.stats import Interval

if TYPE_CHECKING:
    from rich.console import Console

    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _iv(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {"estimate": _num(iv.estimate), "low": _num(iv.low), "high": _num(iv.high), "level": iv.level,
            "method": iv.method}


def _model(r: ModelRating) -> dict[str, Any]:
    return {"model": r.model, "rating": r.rating, "interval": {"low": _num(r.interval.low), "high": _num(r.interval.high)},
            "rank": r.rank, "rank_interval": list(r.rank_interval), "battles": r.battles, "wins": r.wins,
            "losses": r.losses, "ties": r.ties, "win_rate": _num(r.win_rate), "tied_with": list(r.tied_with)}


def arena_payload(res: ArenaResult) -> dict[str, Any]:
    """JSON-ready dict: ``models`` is one record per model (best first); the rest describes the method."""
    return {
        "models": [_model(r) for r in res.ratings],
        "method": res.method,
        "tie_rule": res.tie_rule,
        "anchor": res.anchor,
        "battles": res.n_battles,
        "cases": res.n_cases,
        "bootstrap_draws": res.n_boot,
        "level": res.level,
        "notes": list(res.notes),
        "matrix": [{"a": c.a, "b": c.b, "battles": c.battles, "win_rate": c.win_rate, "interval": _iv(c.interval)}
                   for c in res.matrix],
        "pair_tests": [{"a": t.a, "b": t.b, "difference": t.difference, "se": t.se, "p_value": t.p_value,
                        "p_adjusted": t.p_adjusted, "tied": t.tied} for t in res.tests],
        "baseline": res.baseline,
        "length_controlled": [{"model": x.model, "baseline": x.baseline, "battles": x.battles,
                               "raw_win_rate": _iv(x.raw_win_rate), "lc_win_rate": _iv(x.lc_win_rate),
                               "length_coef": x.length_coef, "note": x.note} for x in res.length_controlled],
        "categories": [{"category": c.category, "battles": c.battles, "models": [_model(r) for r in c.ratings],
                        "notes": list(c.notes)} for c in res.categories],
    }


def agreement_payload(a: PairwiseAgreement) -> dict[str, Any]:
    k = a.kappa
    return {"votes": a.votes, "agreement_with_ties": _iv(a.agreement_with_ties), "decisive_votes": a.decisive_votes,
            "agreement_without_ties": _iv(a.agreement_without_ties),
            "kappa": {"value": k.value, "interval": _iv(k.interval), "se": k.se, "note": k.note, "method": k.method},
            "table": {"rows": "people", "columns": "judge", "classes": ["model_a", "model_b", "tie"],
                      "counts": [list(r) for r in a.table]}}


def run_arena_payload(store: Ledger, run: Run, *, anchor: str | None = None, baseline: str | None = None,
                      draws: int = 1000, seed: int = 0, human: bool = False) -> dict[str, Any]:
    """`arena_payload` of a pairwise run's battles (or, with ``human``, its imported human votes), with
    ``run_id``, ``judges`` (position consistency and tie share per judge), ``unjudged_pairs``, ``rated`` and
    ``human_agreement`` (None without votes). ``baseline`` defaults to the run's ``judge.pairs.baseline``."""
    import json

    from benchrun.analysis.arena import rate
    from benchrun.errors import BadInput, UsageError
    from benchrun.pairwise_labels import human_votes
    from benchrun.pairwise_run import run_battles
    from benchrun.spec import LoadedSpec, PairsBaseline

    rb = run_battles(run, store.results(run.id), store.pair_judgements(run.id))
    if not rb.battles:
        raise UsageError(f"run {run.id} has no pair judged in both orders ({rb.errors} failed); "
                         f"resume it with: benchrun run --resume {run.id}")
    rows = rb.battles
    hv = human_votes(store, run)
    if human:
        if hv is None:
            raise UsageError(f"run {run.id} has no human votes; `benchrun labels export {run.id} --pairwise`, "
                             "fill it in, then `benchrun labels import FILE --run RUN_ID`")
        rows = hv[0]
    if baseline is None:
        judge = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot)).spec.judge
        if judge is not None and isinstance(judge.pairs, PairsBaseline):
            baseline = judge.pairs.baseline
    try:
        res = rate(rows, anchor=anchor, baseline=baseline, n_boot=draws, seed=seed)
    except BadInput as e:  # the analysis names the option or the problem; add the run
        raise BadInput(f"run {run.id}", e.where, e.what) from None
    payload = arena_payload(res)
    payload.update(run_id=run.id, judges=[c.to_dict() for c in rb.consistency], unjudged_pairs=rb.errors,
                   rated="human votes" if human else "judge verdicts (both-orders rule)", human_agreement=None)
    if hv is not None and hv[1]:
        from benchrun.analysis.pairwise_agreement import pairwise_agreement

        payload["human_agreement"] = agreement_payload(pairwise_agreement(hv[1]))
    return payload


def run_arena_section(store: Ledger, run: Run, summary: dict[str, Any]) -> dict[str, Any] | None:
    """What a run's page or report shows of its ratings: `run_arena_payload` with the defaults of
    `benchrun arena RUN_ID` for a pairwise run with judgements (``{"error": ...}`` when no pair was judged
    in both orders), None for any other run."""
    from benchrun.errors import UsageError

    if "pairwise" not in summary or not store.pair_judgements(run.id):
        return None
    try:
        return run_arena_payload(store, run)
    except UsageError as e:  # no pair judged in both orders: say so on the page
        return {"error": str(e)}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ratings_table(title: str, models: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from benchrun.report.escape import escape

    t = Table(title=escape(title), title_justify="left")
    for col in ("rank", "model", "rating", "95% interval", "rank range", "battles", "W/L/T", "win rate", "tied with"):
        t.add_column(col, justify="left" if col in ("model", "tied with") else "right")
    for m in models:
        iv = m["interval"]
        ivs = "n/a" if iv["low"] is None else f"[{iv['low']:.0f}, {iv['high']:.0f}]"
        lo, hi = m["rank_interval"]
        tied = m["tied_with"]
        t.add_row(str(m["rank"]), escape(m["model"]), f"{m['rating']:.0f}", ivs, f"{lo}-{hi}" if lo != hi else str(lo),
                  str(m["battles"]), f"{m['wins']}/{m['losses']}/{m['ties']}", _pct(m["win_rate"]),
                  escape(", ".join(tied[:4]) + (f" +{len(tied) - 4}" if len(tied) > 4 else "")))
    return t


def render_arena(console: Console, d: dict[str, Any], matrix_limit: int = 12) -> None:
    from rich.table import Table

    from benchrun.report.escape import escape

    src = f" of run {escape(d['run_id'])}" if d.get("run_id") else ""
    console.print(f"[bold]Arena{src}[/bold]: {d['battles']} battles on {d['cases']} cases, {len(d['models'])} models")
    for j in d.get("judges") or []:
        lo, hi = j["consistency_interval"]
        fp = j["first_position_win_rate"]
        console.print(f"judge {escape(j['judge'])}: position consistency {_pct(j['consistency'])} "
                      f"[{_pct(lo)}, {_pct(hi)}] over {j['pairs']} pairs judged in both orders; "
                      f"ties under the both-orders rule {_pct(j['tie_share'])}; "
                      f"answer shown first won {_pct(fp)} of decisive verdicts")
    if d.get("rated"):
        console.print(f"rated: {escape(d['rated'])}")
    ha = d.get("human_agreement")
    if ha:
        def ivs(iv: dict[str, Any] | None) -> str:
            return "n/a" if iv is None else f"{_pct(iv['estimate'])} [{_pct(iv['low'])}, {_pct(iv['high'])}]"

        k = ha["kappa"]
        kap = "n/a" if k["value"] is None else (f"{k['value']:.2f}" + (
            f" [{k['interval']['low']:.2f}, {k['interval']['high']:.2f}]" if k["interval"] else ""))
        console.print(f"judge vs people on {ha['votes']} vote(s): agreement without ties {ivs(ha['agreement_without_ties'])} "
                      f"({ha['decisive_votes']} decisive), with ties {ivs(ha['agreement_with_ties'])}; "
                      f"Cohen's kappa over A/B/tie {kap}" + (f" ({escape(k['note'])})" if k["note"] else ""))
    if d.get("unjudged_pairs"):
        console.print(f"note: {d['unjudged_pairs']} pair(s) without a verdict in both orders are left out; "
                      "resume the run to judge them")
    console.print(escape(d["method"]))
    console.print(f"ties: {escape(d['tie_rule'])}; rank = 1 + models rated higher and not tied")
    console.print(_ratings_table("Ratings", d["models"]))
    names = [m["model"] for m in d["models"]]
    if len(names) <= matrix_limit:
        cells = {(c["a"], c["b"]): c for c in d["matrix"]}
        t = Table(title="Win rate of row over column (ties half), Wilson 95% interval on battles, battles",
                  title_justify="left")
        t.add_column("")
        for n in names:
            t.add_column(escape(n), justify="right")
        for a in names:
            row = [escape(a)]
            for b in names:
                c = cells.get((a, b))
                iv = (c or {}).get("interval") or {}
                row.append("" if c is None else f"{_pct(c['win_rate'])} [{100 * iv['low']:.0f}-{100 * iv['high']:.0f}] "
                                                f"n={c['battles']}")
            t.add_row(*row)
        console.print(t)
    else:
        console.print(f"(win-rate matrix of {len(names)} models: see --json)")
    if d["length_controlled"]:
        t = Table(title=f"Length-controlled win rate against {escape(d['baseline'])} (AlpacaEval 2.0 style)",
                  title_justify="left")
        for col in ("model", "battles", "raw win rate", "95% interval", "LC win rate", "95% interval",
                    "length coef (per sd)", "raw − LC"):
            t.add_column(col, justify="left" if col == "model" else "right")
        for x in d["length_controlled"]:
            raw, lc = x["raw_win_rate"], x["lc_win_rate"]
            if lc is None:
                t.add_row(escape(x["model"]), str(x["battles"]), _pct(raw["estimate"]), "", "n/a", "", "", "")
                continue
            t.add_row(escape(x["model"]), str(x["battles"]), _pct(raw["estimate"]),
                      f"[{_pct(raw['low'])}, {_pct(raw['high'])}]", _pct(lc["estimate"]),
                      f"[{_pct(lc['low'])}, {_pct(lc['high'])}]", f"{x['length_coef']:+.2f}",
                      f"{100 * (raw['estimate'] - lc['estimate']):+.1f} pts")
        console.print(t)
        for x in d["length_controlled"]:
            if x["note"]:
                console.print(f"  note ({escape(x['model'])}): {escape(x['note'])}")
    for c in d["categories"]:
        if c["models"]:
            console.print(_ratings_table(f"Category {c['category']} ({c['battles']} battles)", c["models"]))
        for n in c["notes"]:
            console.print(f"  note ({escape(c['category'])}): {escape(n)}")
    for n in d["notes"]:
        console.print(f"note: {escape(n)}")
