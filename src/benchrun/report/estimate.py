"""Terminal rendering of a run's cost estimate (`benchrun run SPEC --estimate`). Only presentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchrun.report.escape import escape as e
from benchrun.report.plain import money as _money

if TYPE_CHECKING:
    from rich.console import Console

    from benchrun.estimation import Estimate


def _tokens(x: int | None) -> str:
    return "unbounded" if x is None else f"{x:,}"


def render_estimate(console: Console, est: Estimate) -> None:
    console.print(f"[bold]Estimate for {e(est.spec_name)}[/bold]: {est.cases} case(s) × {len(est.candidates)} "
                  f"candidate(s) × {est.samples} sample(s); nothing was called"
                  + ("" if est.cache else " (cache not read)"))
    from benchrun.report.fit import Col, fit_table, hidden_note

    cols = [Col("model", 0, "left", text=True, min_width=12, middle=True), Col("calls", 0, text=True, min_width=8),
            Col("cached", 3), Col("prompt tokens", 2, short="prompt"),
            Col("completion tokens (expected / worst)", 2, short="completion"),
            Col("price per 1M", 4, "left", text=True, min_width=12, short="$/1M"),
            Col("expected cost", 0, short="expected"), Col("worst-case cost", 1, short="worst")]
    rows = []
    for r in est.roles:
        price = ("unknown" if r.price_source == "unknown" else
                 f"${r.input_per_1m:g} in / ${r.output_per_1m:g} out ({r.price_source})")
        ct_exp = "unknown" if r.completion_tokens_expected is None else f"{r.completion_tokens_expected:,}"
        calls = f"{r.calls}" + (f" (+{r.reask_calls_worst} re-asks worst)" if r.reask_calls_worst else "")
        name = f"{e(r.key)} ({e(r.model)})" if r.key != r.model else e(r.key)
        prompt = f"{r.prompt_tokens:,}" + (" + answers" if r.prompt_tokens_without_answers else "")
        rows.append([name, calls, str(r.cached_calls), prompt, f"{ct_exp} / {_tokens(r.completion_tokens_worst)}",
                     e(price), _money(r.expected_cost_usd), _money(r.worst_case_cost_usd)])
    t, hidden = fit_table(cols, rows, console.width, title="Calls, tokens and cost", title_justify="left")
    console.print(t)
    if hidden:
        console.print(f"[dim]{e(hidden_note(hidden, console.width) or '')}[/dim]")
    console.print(f"total: {est.calls} call(s); expected {_money(est.expected_cost_usd)}, worst case "
                  f"{_money(est.worst_case_cost_usd)}")
    if est.unknown_prices:
        console.print(f"[yellow]price unknown for {e(', '.join(est.unknown_prices))}: neither the spec's 'price' nor "
                      "litellm's cost map has it, so the totals are unknown; add price: {input_per_1m, "
                      "output_per_1m} to the spec[/yellow]")
    for r in est.roles:
        if r.completion_tokens_expected is None and r.calls:
            console.print(f"expected for {e(r.key)}: {e(r.expected_basis)}")
    for n in est.notes:
        console.print(f"[dim]{e(n)}[/dim]")
