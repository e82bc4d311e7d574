"""Answer extraction for tasks with a right answer: deterministic, bounded, and always recorded.

Each extractor returns what it found *and the rule that found it*, so a result can say "extracted
1080 (after ####)" instead of a bare pass or fail, and a reader can audit a wrong-looking score.

Numbers (GSM8K style, as in the reference harnesses' answer parsing):

1. the first number after the last ``####`` (GSM8K's reference format), else
2. the first number after the last "answer is" / "answer:" (case-insensitive), else
3. the last number in the text.

A number may carry a sign (``-``, the minus sign ``−``), a currency sign before it (``$ € £ ¥``),
thousands separators (``1,080``; only groups of three digits), a decimal part (``0.5``, ``.5``),
a simple fraction (``3/4``), or a percent sign after it (``50%`` reads as 50, the way GSM8K writes
percentages). A minus sign counts only when it does not follow a letter or digit (``3-5`` is a range,
not minus five). Only the last 20,000 characters are searched (a bound on work per answer; the
final answer is at the end), and a number of more than 100 digits is skipped.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

MAX_SCAN = 20_000
MAX_DIGITS = 100

_NUM = re.compile(
    r"(?P<sign>[-\u2212]\s?)?(?P<cur>[$\u20ac\u00a3\u00a5]\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<dec>\.\d+)?"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d.,]))?(?P<pct>\s?%)?"
)
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    value: Fraction
    text: str  # as written in the answer
    rule: str  # which rule found it: "after ####", "after 'answer is'", "last number"

    def shown(self) -> str:
        """The value in plain decimal form (``1080``, ``0.75``), for recording and messages."""
        v = self.value
        if v.denominator == 1:
            return str(v.numerator)
        return f"{float(v):.12g}"


def _numbers(text: str) -> list[tuple[Fraction, str]]:
    out: list[tuple[Fraction, str]] = []
    for m in _NUM.finditer(text):
        if m.group("int") is None and m.group("dec") is None:
            continue
        start = m.start()
        before = text[start - 1] if start > 0 else " "
        if not m.group("sign") and (before.isdigit() or before == "."):
            continue  # the tail of a token that is not one number ("12.5.3")
        negative = bool(m.group("sign")) and not before.isalnum()  # "3-5", "x-1": a hyphen, not a sign
        digits = (m.group("int") or "0").replace(",", "") + (m.group("dec") or "")
        if len(digits) > MAX_DIGITS:
            continue  # a digit string this long is no answer to compare (and int() refuses > 4,300 digits)
        value = Fraction(digits)
        if m.group("den") is not None:
            den = int(m.group("den"))
            if den == 0 or m.group("dec"):
                continue  # "1/0", "1.5/2": not a simple fraction
            value = value / den
        out.append((-value if negative else value, m.group(0).strip()))
    return out


def extract_number(text: str) -> Number | None:
    """The answer's number by the rules in the module docstring, or None when it has none."""
    text = text[-MAX_SCAN:]
    hashes = text.rfind("####")
    if hashes >= 0:
        found = _numbers(text[hashes + 4:])
        if found:
            return Number(found[0][0], found[0][1], "after ####")
    last_is = None
    for m in _ANSWER_IS.finditer(text):
        last_is = m
    if last_is is not None:
        found = _numbers(text[last_is.end():])
        if found:
            return Number(found[0][0], found[0][1], "after 'answer is'")
    found = _numbers(text)
    if found:
        return Number(found[-1][0], found[-1][1], "last number")
    return None


def numbers_match(got: Fraction, target: float, abs_tol: float = 0.0, rel_tol: float = 0.0) -> bool:
    """``|got - target| <= max(abs_tol, rel_tol * |target|)``, exact (rational) when both tolerances are 0."""
    t = Fraction(str(target)) if isinstance(target, float) else Fraction(target)
    diff = abs(got - t)
    return diff <= Fraction(str(abs_tol)) or diff <= Fraction(str(rel_tol)) * abs(t)


# ----------------------------------------------------------------------------- exact match

NORMALISATIONS = ("nfkc", "case", "punctuation", "articles", "whitespace")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalise(text: str, steps: list[str] | tuple[str, ...]) -> str:
    """Apply the chosen normalisations in a fixed order: NFKC, case, punctuation, articles, whitespace.

    With all of case, punctuation, articles and whitespace this is SQuAD's ``normalize_answer``
    (lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace).
    ``case`` uses ``casefold`` (``lower`` for ASCII); ``punctuation`` also drops Unicode punctuation
    (category P*), which SQuAD's ASCII-only set keeps. ``squad`` is shorthand for those four.
    """
    if "squad" in steps:  # shorthand for SQuAD's normalize_answer
        steps = (*steps, "case", "punctuation", "articles", "whitespace")
    s = text
    if "nfkc" in steps:
        s = unicodedata.normalize("NFKC", s)
    if "case" in steps:
        s = s.casefold()
    if "punctuation" in steps:
        s = "".join(ch for ch in s if ch not in _PUNCT and not unicodedata.category(ch).startswith("P"))
    if "articles" in steps:
        s = _ARTICLES.sub(" ", s)
    if "whitespace" in steps:
        s = " ".join(s.split())
    return s


# ----------------------------------------------------------------------------- multiple choice

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Choice:
    """The choice an answer names (``index`` into the choices), or why none could be read (``index`` None)."""

    index: int | None
    rule: str  # which rule read it, or why the answer is unparsed

    @property
    def letter(self) -> str | None:
        return None if self.index is None else LETTERS[self.index]


_DECOR = " \t\r\n*_`'\"“”‘’"
_LONE = re.compile(r"^[(\[]?([A-Za-z])[)\].:]?$")
_MARKER = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|will be|=)?\s*(?:option|choice|letter)?\s*[:\-]?\s*[*_`'\"(\[]*"
    r"([A-Za-z])(?![A-Za-z'])[*_`'\")\].:]*"
    r"(?:\s*(?:or|and|,|/|&)\s*[*_`'\"(\[]*([A-Za-z])(?![A-Za-z']))?",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^[*_`(\[]*([A-Z])[*_`]*(?:[)\].:]|\s+-)[*_`]*(?:\s|$)")
_LEADING_LOWER = re.compile(r"^[(\[]?([a-z])\)(?:\s|$)")


_LETTER_END = re.compile(r"[*_`'\")\]]*(?:[.:,;!?]*\s*$|[.:,;!?)]*\s*\n|[.:,;!?)]+\s)")


def _ends_letter(text: str, pos: int) -> bool:
    """Whether a lower-case letter at ``pos - 1`` stands alone (end of answer, line or sentence)."""
    return _LETTER_END.match(text, pos) is not None


def choice_block(choices: list[str]) -> str:
    """The lettered block public harnesses show: ``A) first`` … one per line."""
    return "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))


def _norm_choice(s: str) -> str:
    return normalise(s, ("nfkc", "case", "punctuation", "whitespace"))


def extract_choice(answer: str, choices: list[str]) -> Choice:
    """Which choice an answer names. The first rule that applies decides, in this order:

    1. ``lone letter``: the whole answer, without markdown and quotes, is one letter, maybe in
       parentheses or followed by ``)``, ``.`` or ``:`` (``B``, ``(b)``, ``**B**``, ``B.``);
    2. ``answer marker``: "answer is", "answer:", "option", "choice" followed by a letter
       (``The answer is (B).``, ``Answer: b``, ``the correct option is C``); every marker in the
       answer must name the same letter, and "B or C" after a marker is ambiguous;
    3. ``leading letter``: the answer starts with a capital letter and ``)``, ``.``, ``:`` or `` -``
       (``B. Paris``, ``(B) Paris``, ``**C)** ...``), or with a lower-case letter and ``)``;
    4. ``choice text``: exactly one choice's text occurs in the answer (case, punctuation and
       spacing ignored; a choice contained in another counts only as the longer one);
    otherwise, or when a rule finds several different choices or a letter past the last choice, the
    answer is **unparsed** (``index`` None, ``rule`` says why). Only the first 20,000 characters are read.
    """
    n = len(choices)
    text = answer[:MAX_SCAN]
    core = text.strip(_DECOR)
    m = _LONE.match(core)
    if m:
        i = LETTERS.index(m.group(1).upper())
        return Choice(i, "lone letter") if i < n else Choice(None, f"letter {m.group(1).upper()} is not a choice")
    named: set[int] = set()
    for m in _MARKER.finditer(text):
        for k in (1, 2):
            g = m.group(k)
            if g is None or (g.islower() and not _ends_letter(text, m.end(k))):
                continue  # "the answer is a bit unclear": a lower-case word, not a letter
            i = LETTERS.index(g.upper())
            if i >= n:
                return Choice(None, f"letter {g.upper()} after an answer marker is not a choice")
            named.add(i)
    if len(named) == 1:
        return Choice(named.pop(), "answer marker")
    if len(named) > 1:
        return Choice(None, "ambiguous: answer markers name " + ", ".join(LETTERS[i] for i in sorted(named)))
    m = _LEADING.match(core) or _LEADING_LOWER.match(core)
    if m:
        i = LETTERS.index(m.group(1).upper())
        return Choice(i, "leading letter") if i < n else Choice(None, f"letter {m.group(1).upper()} is not a choice")
    hay = f" {_norm_choice(text)} "
    found = [i for i, c in enumerate(choices) if _norm_choice(c) and f" {_norm_choice(c)} " in hay]
    found = [i for i in found if not any(j != i and _norm_choice(choices[i]) in _norm_choice(choices[j])
                                         for j in found)]
    if len(found) == 1:
        return Choice(found[0], "choice text")
    if len(found) > 1:
        return Choice(None, "ambiguous: the answer contains the text of choices "
                      + ", ".join(LETTERS[i] for i in found))
    return Choice(None, "names no choice")
