"""Tables that fit the terminal: at 80 columns (a pipe, a CI log) columns go by priority and long text
is cut with an ellipsis; on a wide terminal the full table stays.

Each column has a priority: 0 is always shown; higher numbers are dropped first (the highest, and
among equals the rightmost). Before dropping anything, free text (``text=True``: a model name, a
label, an example query) is cut with "…", never below its ``min_width``, then headers switch to
their short form and the table loses its outer border; numbers and ids are never cut or wrapped. The caller prints which columns were hidden.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.measure import Measurement
from rich.table import Table

from benchrun.report.escape import SafeConsole


@dataclass(frozen=True)
class Col:
    header: str
    priority: int = 0  # 0: always shown; higher numbers are dropped first
    justify: str = "right"
    text: bool = False  # free text, may be cut with an ellipsis
    min_width: int = 10  # a text column is not cut below this
    short: str | None = None  # header when space is short
    middle: bool = False  # an identity (a model key): cut in the middle, so "prompt-v1" and "prompt-v2" stay apart


_MEASURE = SafeConsole(width=100_000, file=io.StringIO(), color_system=None)


def _width(t: Table) -> int:
    return Measurement.get(_MEASURE, _MEASURE.options, t).maximum


def fit_table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int,
              **table_kw: Any) -> tuple[Table, list[str]]:
    """A rich Table of ``rows`` (cells as markup strings or Text) no wider than ``width`` where possible.

    Returns the table and the headers of the columns left out.
    """

    def build(keep: list[int], short: bool, limits: dict[int, int]) -> Table:
        t = Table(**table_kw)
        for i in keep:
            c = cols[i]
            t.add_column(c.short if short and c.short else c.header, justify=c.justify,  # type: ignore[arg-type]
                         no_wrap=True, overflow="ellipsis" if c.text else "fold", max_width=limits.get(i))
        for r in rows:
            t.add_row(*[_middle_cut(r[i], limits[i]) if cols[i].middle and i in limits else r[i] for i in keep])
        return t

    keep = list(range(len(cols)))
    t = build(keep, False, {})
    if _width(t) <= width:
        return t, []
    natural_full = {i: max([_cell_len(c.header)] + [_cell_len(r[i]) for r in rows]) for i, c in enumerate(cols) if c.text}
    natural_short = {i: max([_cell_len(c.short or c.header)] + [_cell_len(r[i]) for r in rows])
                     for i, c in enumerate(cols) if c.text}
    short = False

    def shrunk(keep: list[int]) -> Table:
        """Text columns cut (with "…") by their share of the excess, none below its min_width."""
        natural = natural_short if short else natural_full
        t = build(keep, short, {})
        excess = _width(t) - width
        texts = [i for i in keep if i in natural]
        slack = {i: max(0, natural[i] - cols[i].min_width) for i in texts}
        total = sum(slack.values())
        if excess <= 0 or not total:
            return t
        limits = {i: natural[i] - min(slack[i], -(-excess * slack[i] // total)) for i in texts}
        return build(keep, short, limits)

    t = shrunk(keep)  # full headers, long text cut
    if _width(t) <= width:
        return t, []
    short = True
    t = shrunk(keep)
    if _width(t) > width:  # no outer border and no padding at the edges: 4 characters back
        table_kw = {**table_kw, "show_edge": False, "pad_edge": False}
        t = shrunk(keep)
    dropped: list[str] = []
    order = sorted((i for i, c in enumerate(cols) if c.priority > 0), key=lambda i: (-cols[i].priority, -i))
    for i in order:
        if _width(t) <= width:
            break
        keep.remove(i)
        dropped.append(cols[i].header)
        t = shrunk(keep)
    return t, dropped


def _middle_cut(cell: Any, limit: int) -> Any:
    """``cell`` as plain text of at most ``limit`` characters, its middle replaced by "…"."""
    from rich.text import Text

    text = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
    if len(text) <= limit or limit < 3:
        return cell
    head = (limit - 1 + 1) // 2
    tail = limit - 1 - head
    return Text(text[:head] + "…" + (text[-tail:] if tail else ""))


def _cell_len(cell: Any) -> int:
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.cell_len
    try:
        return Text.from_markup(str(cell)).cell_len
    except Exception:  # not markup after all: its plain length
        return len(str(cell))


def hidden_note(dropped: list[str], width: int) -> str | None:
    """One line saying which columns a narrow terminal hid, or None."""
    if not dropped:
        return None
    return f"(hidden at {width} columns: {', '.join(dropped)}; COLUMNS=160 or --json shows all)"
