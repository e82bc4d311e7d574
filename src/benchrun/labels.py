"""Human labels: the file a person fills in to check the judge.

A labels file is JSON Lines (``.jsonl``) or CSV (``.csv``), one row per
(item, annotator). Fields:

==============  =========  =====================================================
item_id         required   id of the judged item (opaque, see `blind_item_id`)
case_id         required   dataset case id
response        see below  the judged response text
human_score     required   integer 1-5 on the rubric's scale
human_pass      required   true/false, yes/no, 1/0 or pass/fail
failure_mode    optional   one of the rubric's failure modes (blank = not labelled)
annotator       required   who labelled the row; several annotators per item allowed
note            optional   free text
input, ideal    ignored    shown to the annotator by the template
==============  =========  =====================================================

``response`` may be left out only when the caller checks item ids against the
ledger (``known_item_ids``), because then the ledger holds the text. Rows whose
human fields (human_score, human_pass, failure_mode, annotator, note) are all
blank are unlabelled template rows and are skipped.

The file is hashed like a dataset: SHA-256 of the canonical JSON of its rows,
sorted by (item_id, annotator), so JSONL and CSV with the same content, or the
same rows in another order, have the same hash.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchrun.errors import BadInput
from benchrun.hashing import content_hash
from benchrun.io import csv_cell_out, csv_writer, load_csv, load_jsonl

T = TypeVar("T")

FIELDS = ("item_id", "case_id", "response", "human_score", "human_pass", "failure_mode", "annotator", "note")
TEMPLATE_COLUMNS = (
    "item_id", "case_id", "input", "ideal", "response",
    "human_score", "human_pass", "failure_mode", "annotator", "note",
)
_IGNORED = ("input", "ideal")
_HUMAN_FIELDS = ("human_score", "human_pass", "failure_mode", "annotator", "note")
_TRUE = {"true", "yes", "y", "1", "pass", "passed"}
_FALSE = {"false", "no", "n", "0", "fail", "failed"}


@dataclass(frozen=True)
class Label:
    """One annotator's label of one item."""

    item_id: str
    case_id: str
    annotator: str
    human_score: int
    human_pass: bool
    failure_mode: str | None = None
    response: str | None = None
    note: str | None = None
    line: int | None = None

    def canonical(self) -> dict[str, Any]:
        """The content that is hashed (no line number)."""
        return {
            "item_id": self.item_id,
            "case_id": self.case_id,
            "annotator": self.annotator,
            "human_score": self.human_score,
            "human_pass": self.human_pass,
            "failure_mode": self.failure_mode,
            "response": self.response,
            "note": self.note,
        }


@dataclass(frozen=True)
class LabelSet:
    """All labels of one file, in file order."""

    path: str
    labels: tuple[Label, ...]
    hash: str
    skipped_blank: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def item_ids(self) -> list[str]:
        """Distinct item ids in order of first appearance."""
        return list(dict.fromkeys(lab.item_id for lab in self.labels))

    @property
    def annotators(self) -> list[str]:
        return sorted({lab.annotator for lab in self.labels})

    def by_item(self) -> dict[str, list[Label]]:
        out: dict[str, list[Label]] = {}
        for lab in self.labels:
            out.setdefault(lab.item_id, []).append(lab)
        return out


def labels_hash(labels: Iterable[Label]) -> str:
    """Content hash of labels, independent of row order and file format."""
    rows = sorted((lab.canonical() for lab in labels), key=lambda r: (r["item_id"], r["annotator"]))
    return content_hash(rows)


# ----------------------------------------------------------------------------- parsing


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _blank(v: Any) -> bool:
    return _text(v) == ""


def _parse_score(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"human_score must be an integer 1-5, got {v!r}")
    if isinstance(v, (int, float)):
        f = float(v)
    else:
        s = _text(v)
        try:
            f = float(s)
        except ValueError:
            raise ValueError(f"human_score must be an integer 1-5, got {s!r}") from None
    if not f.is_integer() or not 1 <= f <= 5:
        raise ValueError(f"human_score must be an integer 1-5, got {v!r}")
    return int(f)


def parse_pass(v: Any) -> bool:
    """Read a pass/fail value: true/false, yes/no, 1/0, pass/fail (any case)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    s = _text(v).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"human_pass must be true/false, yes/no, 1/0 or pass/fail, got {_text(v)!r}")


def load_labels(
    path: str | Path,
    failure_modes: Sequence[str] | None = None,
    known_item_ids: set[str] | None = None,
    item_cases: Mapping[str, str] | None = None,
) -> LabelSet:
    """Load and validate a human labels file (``.jsonl`` or ``.csv``).

    ``failure_modes``: the rubric's failure modes; a labelled failure mode outside it is an
    error. ``known_item_ids``: ids of judged results (from the ledger); an unknown id is an
    error, and ``response`` may then be omitted. Without it, ``response`` is required.
    ``item_cases``: the case id of each known item; a row giving another case id is an error.
    Raises `BadInput` naming the file, line and item.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    allowed = set(FIELDS) | set(_IGNORED)
    required = ["item_id", "case_id", "human_score", "human_pass", "annotator"]
    if known_item_ids is None:
        required.append("response")
    rows: list[tuple[int, Any]]
    if suffix == ".jsonl":
        rows = load_jsonl(p)
    elif suffix == ".csv":
        header, csv_rows, comments = load_csv(p, restore_formulas=True)
        header_line = len(comments) + 1
        unknown = [h for h in header if h not in allowed]
        if unknown:
            raise BadInput(p, header_line, f"unknown column(s) {unknown}; allowed: {', '.join(FIELDS)} (input, ideal ignored)")
        missing = [c for c in required if c not in header]
        if missing:
            raise BadInput(p, header_line, f"CSV header is missing column(s) {missing}; see docs/judge-trust.md")
        rows = list(csv_rows)
        if not rows:
            raise BadInput(p, None, "file has a header but no rows; fill in at least one label")
    else:
        raise BadInput(p, None, f"unknown labels format '{suffix}'; use .jsonl or .csv")

    modes = set(failure_modes) if failure_modes is not None else None
    labels: list[Label] = []
    seen: dict[tuple[str, str], int] = {}
    item_info: dict[str, tuple[str, str | None, int]] = {}
    skipped = 0
    for line, raw in rows:
        if not isinstance(raw, dict):
            raise BadInput(p, line, "each line must be a JSON object with item_id, case_id, human_score, ...")
        item_id = _text(raw.get("item_id"))
        where = f"line {line} item {item_id}" if item_id else f"line {line}"
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise BadInput(p, where, f"unknown field(s) {unknown}; allowed: {', '.join(FIELDS)}")
        if all(_blank(raw.get(k)) for k in _HUMAN_FIELDS):
            skipped += 1
            continue
        for k in required:
            if _blank(raw.get(k)):
                raise BadInput(p, where, f"'{k}' is missing or empty; every labelled row needs it")
        if known_item_ids is not None and item_id not in known_item_ids:
            raise BadInput(
                p, where, f"unknown item id '{item_id}': it matches no judged result of this run; check the run id"
            )
        case_id = _text(raw.get("case_id"))
        if item_cases is not None and item_id in item_cases and case_id != item_cases[item_id]:
            raise BadInput(
                p, where, f"case_id '{case_id}' does not match item '{item_id}', which is of case "
                f"'{item_cases[item_id]}' in this run; fix the case_id or the item_id"
            )
        try:
            score = _parse_score(raw.get("human_score"))
            passed = parse_pass(raw.get("human_pass"))
        except ValueError as e:
            raise BadInput(p, where, str(e)) from None
        mode = _text(raw.get("failure_mode")) or None
        if mode is not None and modes is not None and mode not in modes:
            raise BadInput(
                p, where, f"failure_mode '{mode}' is not in the rubric; use one of: {', '.join(sorted(modes))}"
            )
        annotator = _text(raw.get("annotator"))
        key = (item_id, annotator)
        if key in seen:
            raise BadInput(
                p, where, f"annotator '{annotator}' labelled item '{item_id}' twice (first at line {seen[key]}); "
                "keep one row per annotator and item"
            )
        seen[key] = line
        response_raw = raw.get("response")
        response = None if response_raw is None or str(response_raw) == "" else str(response_raw)
        if item_id in item_info:
            first_case, first_resp, first_line = item_info[item_id]
            if case_id != first_case:
                raise BadInput(
                    p, where, f"case_id '{case_id}' differs from '{first_case}' at line {first_line} for the same item"
                )
            if response is not None and first_resp is not None and response != first_resp:
                raise BadInput(p, where, f"response differs from the one at line {first_line} for the same item")
            if first_resp is None and response is not None:
                item_info[item_id] = (first_case, response, first_line)
        else:
            item_info[item_id] = (case_id, response, line)
        labels.append(
            Label(
                item_id=item_id,
                case_id=case_id,
                annotator=annotator,
                human_score=score,
                human_pass=passed,
                failure_mode=mode,
                response=response,
                note=_text(raw.get("note")) or None,
                line=line,
            )
        )
    if not labels:
        raise BadInput(p, None, f"no labelled rows ({skipped} blank); fill in human_score, human_pass and annotator")
    return LabelSet(path=str(p), labels=tuple(labels), hash=labels_hash(labels), skipped_blank=skipped)


# ----------------------------------------------------------------------------- template


@dataclass(frozen=True)
class TemplateRow:
    """One item to label. No model name: the annotator labels blind."""

    item_id: str
    case_id: str
    input: str
    ideal: str
    response: str


def blind_item_id(*parts: str | int) -> str:
    """An opaque, stable item id ("item-" + 12 hex digits) from e.g. run id and result id.

    Use it instead of ids like "<run>:<case>:<model>:<sample>" so the template does not
    reveal which model wrote a response; recompute it to map labels back.
    """
    return "item-" + content_hash([str(x) for x in parts])[:12]


def write_label_template(
    path: str | Path,
    rows: Iterable[TemplateRow | Mapping[str, Any]],
    *,
    failure_modes: Sequence[str] | None = None,
    hide: Iterable[str] = (),
) -> int:
    """Write the CSV a person fills in; returns the number of rows written.

    Columns: item_id, case_id, input, ideal, response, then empty human_score, human_pass,
    failure_mode, annotator, note. Leading ``#`` lines explain the columns (the loader skips
    them). Model names are never written; ``hide`` lists strings (model names, aliases)
    that must not appear in item or case ids, and a `ValueError` is raised if one does.
    Rows are written in the given order (`stratified_sample` already shuffles them). Every cell is
    quoted, and text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    gets a leading ``'`` (`benchrun.io.csv_cell_out`); `load_labels` undoes it exactly.
    """
    hidden = [h.lower() for h in hide if h and h.strip()]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with p.open("w", encoding="utf-8", newline="") as fh:
        fh.write("# Label each row: human_score 1-5 per the rubric scale; human_pass yes or no\n")
        if failure_modes:
            fh.write(f"# failure_mode one of: {' / '.join(failure_modes)} (blank = not labelled)\n")
        fh.write("# annotator: your name or initials (required); note: optional\n")
        fh.write("# Do not look up which model wrote a response. Rows left blank are skipped.\n")
        writer = csv_writer(fh)
        writer.writerow(TEMPLATE_COLUMNS)
        for r in rows:
            d = {
                k: (r.get(k, "") if isinstance(r, Mapping) else getattr(r, k))
                for k in ("item_id", "case_id", "input", "ideal", "response")
            }
            d = {k: "" if v is None else str(v) for k, v in d.items()}
            for h in hidden:
                for col in ("item_id", "case_id"):
                    if h in d[col].lower():
                        raise ValueError(
                            f"{col} '{d[col]}' reveals the hidden name '{h}'; use blind_item_id() for item ids"
                        )
            cells = [d["item_id"], d["case_id"], d["input"], d["ideal"], d["response"]]
            writer.writerow([csv_cell_out(c) for c in cells] + ["", "", "", "", ""])
            count += 1
    return count


# ----------------------------------------------------------------------------- sampling


def _key_value(item: Any, key: str | Callable[[Any], Hashable]) -> Hashable:
    if callable(key):
        return key(item)
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


@dataclass
class _Stratum:
    key: tuple[Hashable, ...]
    members: list[int] = field(default_factory=list)
    take: int = 0


def stratified_sample(
    items: Sequence[T],
    n: int,
    keys: Sequence[str | Callable[[Any], Hashable]],
    seed: int = 0,
) -> list[T]:
    """Draw ``n`` items spread across strata, deterministically for a given seed.

    A stratum is the combination of the ``keys`` (attribute or mapping key names, or
    functions), e.g. ``["model", "category", "judge_pass"]``. Allocation:

    1. every stratum gets one item if ``n`` allows; if there are more strata than ``n``,
       the largest strata get one each (ties broken by the seeded random order);
    2. the rest is shared in proportion to stratum size (largest-remainder rounding),
       never taking more items than a stratum has.

    Items are drawn at random within each stratum and the result is shuffled, so models
    and categories are interleaved in the labelling template. ``n >= len(items)``
    returns all items (shuffled).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    total = len(items)
    if n == 0 or total == 0:
        return []
    strata: dict[tuple[Hashable, ...], _Stratum] = {}
    for i, it in enumerate(items):
        k = tuple(_key_value(it, key) for key in keys)
        strata.setdefault(k, _Stratum(k)).members.append(i)
    ordered = sorted(strata.values(), key=lambda s: repr(s.key))
    if n >= total:
        for s in ordered:
            s.take = len(s.members)
    else:
        tiebreak = {id(s): rng.random() for s in ordered}
        if n < len(ordered):
            for s in sorted(ordered, key=lambda s: (-len(s.members), tiebreak[id(s)]))[:n]:
                s.take = 1
        else:
            for s in ordered:
                s.take = 1
            remaining = n - len(ordered)
            while remaining > 0:
                open_ = [s for s in ordered if s.take < len(s.members)]
                size = sum(len(s.members) for s in open_)
                shares = [(s, remaining * len(s.members) / size) for s in open_]
                given = 0
                for s, share in shares:
                    add = min(int(share), len(s.members) - s.take)
                    s.take += add
                    given += add
                if given == 0:
                    by_rem = sorted(shares, key=lambda t: (-(t[1] - int(t[1])), -len(t[0].members), tiebreak[id(t[0])]))
                    for s, _ in by_rem[:remaining]:
                        s.take += 1
                        given += 1
                remaining -= given
    chosen: list[int] = []
    for s in ordered:
        chosen.extend(rng.sample(s.members, s.take))
    rng.shuffle(chosen)
    return [items[i] for i in chosen]
