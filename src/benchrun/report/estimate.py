"""Terminal rendering of a run's cost estimate (`benchrun run SPEC --estimate`). Only presentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from benchrun.report.escape import escape as e

if TYPE_CHECKING:
    from rich.console import Console

    from benchrun.estimation import Estimate


def _money(x: float | None) -> str:
    if x is None:
        return "unknown"
    return f"${x:.4f}" if x < 1 else f"${x:,.2f}"


def _tokens(x: int | None) -> str:
    return "unbounded" if x is None else f"{x:,}"


def render_estimate(console: Console, est: Estimate) -> None:
    console.print(f"[bold]Estimate for {e(est.spec_name)}[/bold]: {est.cases} case(s) × {len(est.candidates)} "
                  f"candidate(s) × {est.samples} sample(s); nothing was called"
                  + ("" if est.cache else " (cache not read)"))
    t = Table(title="Calls, tokens and cost", title_justify="left")
    for col in ("model", "calls", "cached", "prompt tokens", "completion tokens (expected / worst)", "price per 1M",
                "expected cost", "worst-case cost"):
        t.add_column(col, justify="left" if col in ("model", "price per 1M") else "right")
    for r in est.roles:
        price = ("unknown" if r.price_source == "unknown" else
                 f"${r.input_per_1m:g} in / ${r.output_per_1m:g} out ({r.price_source})")
        ct_exp = "unknown" if r.completion_tokens_expected is None else f"{r.completion_tokens_expected:,}"
        calls = f"{r.calls}" + (f" (+{r.reask_calls_worst} re-asks worst)" if r.reask_calls_worst else "")
        name = f"{e(r.key)} ({e(r.model)})" if r.key != r.model else e(r.key)
        prompt = f"{r.prompt_tokens:,}" + (" + answers" if r.prompt_tokens_without_answers else "")
        t.add_row(name, calls, str(r.cached_calls), prompt,
                  f"{ct_exp} / {_tokens(r.completion_tokens_worst)}", e(price), _money(r.expected_cost_usd),
                  _money(r.worst_case_cost_usd))
    console.print(t)
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
