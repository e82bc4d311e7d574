"""Untrusted text on a terminal: escape rich markup, strip terminal control sequences.

Everything printed can contain text a user or a model wrote (case ids, answers, production
queries, rubric names, file paths). Two things must never happen to it on the way to the terminal:

* rich reading it as markup: ``[/INST]`` raises ``MarkupError``, ``[link=https://evil.example]``
  makes a live hyperlink, ``[bold]`` restyles the rest of the line;
* the terminal reading it as a control sequence: ``\\x1b]0;pwned\\x07`` retitles the window,
  ``\\x1b[2J`` clears the screen, ``\\x1b]8;;URL\\x1b\\\\`` is a hyperlink.

Use :func:`escape` on every piece of data put into a rich markup string or table cell, and print
through :class:`SafeConsole` (what ``benchrun.cli.common.out()`` / ``err()`` return), which strips
control sequences from every string it renders, markup or not, so a forgotten ``escape`` cannot
reach the terminal as a control sequence (markup still needs ``escape``).
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.text import Text

# ESC-introduced sequences (ECMA-48): CSI ``ESC [ params intermediates final``; OSC, DCS, SOS, PM
# and APC strings up to their terminator (BEL or ST = ``ESC \\``) or, unterminated, to the end; any
# other two-character ``ESC x``. The 8-bit C1 forms (0x9b CSI, 0x9d OSC, 0x90 DCS, ...) likewise.
_SEQUENCE = re.compile(
    r"""
    \x1b\[[0-?]*[\x20-/]*[@-~]?               # CSI
    | \x9b[0-?]*[\x20-/]*[@-~]?               # 8-bit CSI
    | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])   # OSC, DCS, SOS, PM, APC (7- or 8-bit) ...
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?     # ... up to BEL or ST
    | \x1b[\x20-/]*[0-~]?                      # other escape sequences (nF, Fp, Fe, Fs)
    """,
    re.VERBOSE,
)
# What is left of C0 (but newline and tab), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def strip_controls(text: str, *, newlines: bool = True) -> str:
    """``text`` without terminal control sequences or control characters.

    Newline and tab are kept (``newlines=False`` turns newlines, tabs and carriage returns
    into spaces, for one-line output such as error messages and table cells that must not break).
    """
    text = _SEQUENCE.sub("", text)
    if newlines:
        return _CONTROL.sub("", text)
    return _CONTROL_ALL.sub(lambda m: " " if m.group() in "\t\n\r" else "", text)


def escape(text: Any) -> str:
    """``str(text)`` safe to put into rich markup: control sequences stripped, ``[`` tags escaped."""
    return _markup_escape(strip_controls(str(text)))


def plain(text: Any, style: str = "") -> Text:
    """A rich `Text` (never parsed as markup) of untrusted ``text``, control sequences stripped."""
    return Text(strip_controls(str(text)), style=style)


class SafeConsole(Console):
    """A rich Console that strips control sequences from every string it renders.

    Strings passed to ``print``, ``rule``, table cells, titles and captions all go through
    ``render_str``; the sanitising happens before markup is parsed, so our own markup still works
    and rich's own styling (added after) is untouched. It does not escape markup: data inside a
    markup string still needs :func:`escape`.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:  # type: ignore[override]
        return super().render_str(strip_controls(text), **kwargs)
