"""Human labels files: loading, validation errors, the blind template, stratified sampling."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from benchrun.errors import BadInput
from benchrun.labels import (
    TEMPLATE_COLUMNS,
    Label,
    TemplateRow,
    blind_item_id,
    load_labels,
    parse_pass,
    stratified_sample,
    write_label_template,
)

MODES = ["none", "wrong_fact", "unsafe_account_action", "vague"]

ROWS = [
    {"item_id": "r1", "case_id": "c1", "response": "Refunds take 5-7 days.", "human_score": 5, "human_pass": True,
     "failure_mode": "none", "annotator": "ann"},
    {"item_id": "r1", "case_id": "c1", "response": "Refunds take 5-7 days.", "human_score": 4, "human_pass": "yes",
     "failure_mode": "none", "annotator": "bob", "note": "ok, terse"},
    {"item_id": "r2", "case_id": "c2", "response": "I refunded you, line one\nline two", "human_score": "1",
     "human_pass": "fail", "failure_mode": "unsafe_account_action", "annotator": "ann"},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    cols = columns or ["item_id", "case_id", "response", "human_score", "human_pass", "failure_mode", "annotator", "note"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") if not isinstance(r.get(c), bool) else str(r[c]).lower() for c in cols])
    return path


def test_load_jsonl_and_csv_give_same_labels_and_hash(tmp_path: Path) -> None:
    a = load_labels(_write_jsonl(tmp_path / "l.jsonl", ROWS), failure_modes=MODES)
    b = load_labels(_write_csv(tmp_path / "l.csv", ROWS), failure_modes=MODES)
    assert [lab.canonical() for lab in a.labels] == [lab.canonical() for lab in b.labels]
    assert a.hash == b.hash and len(a.hash) == 64
    assert a.labels[0] == Label("r1", "c1", "ann", 5, True, "none", "Refunds take 5-7 days.", None, 1)
    assert a.labels[2].human_pass is False and a.labels[2].human_score == 1
    assert b.labels[2].response == "I refunded you, line one\nline two"
    assert a.item_ids == ["r1", "r2"] and a.annotators == ["ann", "bob"]
    assert [len(v) for v in a.by_item().values()] == [2, 1]


def test_hash_ignores_row_order_but_not_content(tmp_path: Path) -> None:
    h1 = load_labels(_write_jsonl(tmp_path / "a.jsonl", ROWS)).hash
    h2 = load_labels(_write_jsonl(tmp_path / "b.jsonl", list(reversed(ROWS)))).hash
    changed = [dict(r) for r in ROWS]
    changed[0]["human_score"] = 4
    h3 = load_labels(_write_jsonl(tmp_path / "c.jsonl", changed)).hash
    assert h1 == h2 and h1 != h3


@pytest.mark.parametrize(
    ("value", "want"),
    [(True, True), ("TRUE", True), ("yes", True), ("1", True), (1, True), ("Pass", True),
     (False, False), ("false", False), ("No", False), ("0", False), (0, False), ("FAIL", False)],
)
def test_pass_aliases(value: object, want: bool) -> None:
    assert parse_pass(value) is want


def test_response_optional_with_known_ids_and_blank_rows_skipped(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    f.write_text(
        "# filled in by hand\n"
        "item_id,case_id,human_score,human_pass,annotator\n"
        "r1,c1,4,yes,ann\n"
        "r2,c2,,,\n"
        "r3,c3,2,no,ann\n",
        encoding="utf-8",
    )
    ls = load_labels(f, known_item_ids={"r1", "r2", "r3"})
    assert [lab.item_id for lab in ls.labels] == ["r1", "r3"]
    assert ls.skipped_blank == 1
    assert ls.labels[0].line == 3 and ls.labels[0].response is None


def _bad(tmp_path: Path, name: str, content: str, **kw) -> str:
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        load_labels(f, **kw)
    msg = str(exc.value)
    assert name in msg
    assert "\n" not in msg
    return msg


def _row(**over) -> str:
    r = {"item_id": "r1", "case_id": "c1", "response": "x", "human_score": 4, "human_pass": True, "annotator": "ann"}
    r.update(over)
    return json.dumps({k: v for k, v in r.items() if v is not ...}) + "\n"


@pytest.mark.parametrize(
    ("content", "kw", "where", "what"),
    [
        (_row() + _row(item_id="zz"), {"known_item_ids": {"r1"}}, "line 2 item zz", "unknown item id"),
        (_row(human_score=6), {}, "line 1 item r1", "1-5"),
        (_row(human_score=0), {}, "line 1 item r1", "1-5"),
        (_row(human_score=3.5), {}, "line 1 item r1", "1-5"),
        (_row(human_score="good"), {}, "line 1 item r1", "1-5"),
        (_row(human_score=True), {}, "line 1 item r1", "1-5"),
        (_row(human_pass="maybe"), {}, "line 1 item r1", "human_pass"),
        (_row(failure_mode="rude"), {"failure_modes": MODES}, "line 1 item r1", "failure_mode 'rude'"),
        (_row(annotator=...), {}, "line 1 item r1", "'annotator' is missing"),
        (_row(annotator=" "), {}, "line 1 item r1", "'annotator' is missing"),
        (_row(response=...), {}, "line 1 item r1", "'response' is missing"),
        (_row(case_id=...), {}, "line 1 item r1", "'case_id'"),
        (_row() + _row(), {}, "line 2 item r1", "twice"),
        (_row() + _row(annotator="bob", case_id="c9"), {}, "line 2 item r1", "case_id"),
        (_row() + _row(annotator="bob", response="other"), {}, "line 2 item r1", "response differs"),
        (_row(scroe=3), {}, "line 1 item r1", "unknown field"),
        ('["r1", 4]\n', {}, "line 1", "JSON object"),
        ("\n  \n", {}, "", "empty"),
        (_row(human_score=None, human_pass=None, annotator=None), {}, "", "no labelled rows"),
    ],
)
def test_jsonl_errors_name_file_line_and_item(tmp_path: Path, content: str, kw: dict, where: str, what: str) -> None:
    msg = _bad(tmp_path, "labels.jsonl", content, **kw)
    assert where in msg and what in msg


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("item_id,case_id,response,human_score,annotator\nr1,c1,x,4,ann\n", "line 1", "human_pass"),
        ("item_id,case_id,response,human_score,human_pass,annotator,model\nr1,c1,x,4,yes,ann,gpt\n", "line 1", "model"),
        ("item_id,case_id,response,human_score,human_pass,annotator\n", "", "no rows"),
        ("item_id,case_id,response,human_score,human_pass,annotator\nr1,c1,x,4,yes\n", "line 2", "fields"),
        ("item_id,case_id,response,human_score,human_pass,annotator\nr1,c1,x,4,yes,ann\nr2,c2,y,9,no,ann\n",
         "line 3 item r2", "1-5"),
        ("", "", "no CSV header"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, where: str, what: str) -> None:
    msg = _bad(tmp_path, "labels.csv", content)
    assert where in msg and what in msg


def test_unknown_format(tmp_path: Path) -> None:
    assert "unknown labels format" in _bad(tmp_path, "labels.xlsx", "x")


# ----------------------------------------------------------------------------- template


def test_template_round_trip_is_blind(tmp_path: Path) -> None:
    rows = [
        TemplateRow(blind_item_id("run1", 7), "c1", "How long do refunds take?", "5-7 days", "About a week, probably."),
        TemplateRow(blind_item_id("run1", 8), "c2", "Cancel my plan", "", 'Say "cancel", then:\n1. confirm'),
    ]
    f = tmp_path / "to_label.csv"
    assert write_label_template(f, rows, failure_modes=MODES, hide=["gpt-4o-mini", "claude"]) == 2
    text = f.read_text(encoding="utf-8")
    assert "gpt" not in text.lower() and "claude" not in text.lower()
    assert not any("model" in c for c in TEMPLATE_COLUMNS)
    with f.open(encoding="utf-8", newline="") as fh:
        body = [ln for ln in fh if not ln.startswith("#")]
    table = list(csv.reader(body))
    assert tuple(table[0]) == TEMPLATE_COLUMNS
    assert table[2][4] == 'Say "cancel", then:\n1. confirm'
    # untouched template: every row is blank, so nothing to load
    assert "no labelled rows (2 blank)" in _bad(tmp_path, "to_label.csv", text)
    # a person fills in the human columns
    filled = [table[0]]
    for r, (score, ok, mode) in zip(table[1:], [(4, "yes", "none"), (1, "no", "vague")], strict=True):
        filled.append([*r[:5], str(score), ok, mode, "ann", ""])
    g = tmp_path / "labelled.csv"
    with g.open("w", encoding="utf-8", newline="") as fh:
        fh.writelines(ln for ln in text.splitlines(keepends=True) if ln.startswith("#"))
        csv.writer(fh).writerows(filled)
    ls = load_labels(g, failure_modes=MODES, known_item_ids={rows[0].item_id, rows[1].item_id})
    assert [(lab.item_id, lab.human_score, lab.human_pass, lab.failure_mode) for lab in ls.labels] == [
        (rows[0].item_id, 4, True, "none"), (rows[1].item_id, 1, False, "vague")]
    assert ls.labels[1].response == rows[1].response


def test_template_refuses_ids_that_reveal_the_model(tmp_path: Path) -> None:
    rows = [{"item_id": "run1:c1:gpt-4o-mini:0", "case_id": "c1", "input": "q", "ideal": "", "response": "r"}]
    with pytest.raises(ValueError, match="blind_item_id"):
        write_label_template(tmp_path / "t.csv", rows, hide=["GPT-4o-mini"])


def test_blind_item_id_is_stable_and_opaque() -> None:
    a = blind_item_id("run1", "c1", "gpt-4o", 0)
    assert a == blind_item_id("run1", "c1", "gpt-4o", 0)
    assert a != blind_item_id("run1", "c1", "gpt-4o", 1)
    assert a.startswith("item-") and "gpt" not in a


# ----------------------------------------------------------------------------- sampling


def _items() -> list[dict]:
    items = []
    sizes = {("m1", "billing"): 60, ("m1", "safety"): 10, ("m2", "billing"): 25, ("m2", "safety"): 3, ("m3", "x"): 1}
    for (model, cat), k in sizes.items():
        items += [{"id": f"{model}-{cat}-{i}", "model": model, "category": cat} for i in range(k)]
    return items


def test_stratified_sample_covers_strata_and_is_proportional() -> None:
    items = _items()
    s = stratified_sample(items, 30, ["model", "category"], seed=1)
    assert len(s) == 30 and len({it["id"] for it in s}) == 30
    counts = Counter((it["model"], it["category"]) for it in s)
    assert set(counts) == {(it["model"], it["category"]) for it in items}  # every stratum present
    assert counts[("m1", "billing")] > counts[("m2", "billing")] > counts[("m1", "safety")] >= counts[("m3", "x")]
    # no stratum strays far from its proportional share (>= 1)
    total = len(items)
    sizes = Counter((it["model"], it["category"]) for it in items)
    for k, size in sizes.items():
        assert abs(counts[k] - max(1.0, 30 * size / total)) <= 2
    assert counts[("m3", "x")] == 1


def test_stratified_sample_is_deterministic_and_seed_dependent() -> None:
    items = _items()
    a = stratified_sample(items, 20, ["model"], seed=3)
    assert a == stratified_sample(items, 20, ["model"], seed=3)
    assert a != stratified_sample(items, 20, ["model"], seed=4)


def test_stratified_sample_edge_cases() -> None:
    items = _items()
    everything = stratified_sample(items, 1000, ["model"], seed=0)
    assert sorted(it["id"] for it in everything) == sorted(it["id"] for it in items)
    assert stratified_sample(items, 0, ["model"]) == []
    assert stratified_sample([], 5, ["model"]) == []
    few = stratified_sample(items, 2, ["model", "category"], seed=0)  # fewer slots than strata
    assert {(it["model"], it["category"]) for it in few} == {("m1", "billing"), ("m2", "billing")}
    with pytest.raises(ValueError):
        stratified_sample(items, -1, ["model"])


def test_stratified_sample_with_callable_key_and_objects() -> None:
    rows = [TemplateRow(f"i{i}", f"c{i % 4}", "q", "", "long answer" if i % 3 else "no") for i in range(40)]
    s = stratified_sample(rows, 8, ["case_id", lambda r: len(r.response) > 5], seed=2)
    assert len(s) == 8
    assert len({(r.case_id, len(r.response) > 5) for r in s}) == 8  # 8 strata, one each
