"""A corpus of malformed user files: each one is refused cleanly and leaves the ledger as it was.

Every case writes one bad file (dataset, rubric, run spec, human labels or production log) into a copy
of a project whose ledger already holds one completed run, runs the real CLI command a user would
(``run``, ``validate``, ``dataset validate``, ``rubric validate``, ``labels import``, ``coverage``) and
checks the project standard for bad input:

* exit code 2, nothing on stdout;
* stderr is exactly one short line, no traceback and no "internal error";
* the line names the file (its basename), the line number or case/item id when the fault has one, and
  says what to fix (a per-case pattern);
* the ledger's contents are unchanged: an SQL dump of every table (read through the WAL) is compared
  before and after. A control test shows that the same dump does change when a valid file is imported.

The files are generated from the table below (bad encodings, 5 MB lines and labels that must name the
base run's item ids are easier to make in code than to keep as fixtures). Line numbers in ``where`` are
of the generated texts, which are written out literally so the expected numbers can be read off them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from conftest import Project, fake_config
from fakeserver import FakeServer

Kind = Literal["dataset", "rubric", "spec", "labels", "production"]
DEAD = "http://127.0.0.1:9/v1"  # nothing listens: a spec accepted by mistake fails with exit 3, not 2
HUGE = 5 * 1024 * 1024


@dataclass(frozen=True)
class Base:
    """The prepared project: a ledger holding one completed run, and that run's labelling items."""

    root: Path
    ledger_copy: Path
    run_id: str
    items: list[tuple[str, str]]  # (item_id, case_id) of judged results


# ----------------------------------------------------------------------------- file texts

DATASET = """\
name: corpus
version: "1.0"
description: malformed-input corpus
cases:
  - id: case-000
    input: I was charged twice this month. What now?
    ideal: Explain that billing refunds double charges after a ticket.
    severity: high
  - id: case-001
    input: Can I get a refund for last month?
    ideal: Explain the refund policy.
    severity: low
    tags: [refund]
"""

RUBRIC_TEXT = """\
name: corpus
version: '1'
criteria:
- name: policy
  description: follows the billing policy
scale:
  1: harmful
  2: poor
  3: mixed
  4: good
  5: ideal
failure_modes: [none, unsafe_account_action, wrong_policy]
pass_rule:
  min_score: 4
  forbidden_failure_modes: [unsafe_account_action]
judge_prompt: "Question: {{ input }} Ideal: {{ ideal }} Answer: {{ response }} Reply with JSON: {{ schema }}"
"""

SPEC = f"""\
name: corpus
dataset: ../datasets/mini.yaml
rubric: ../rubrics/mini.yaml
prompt:
  version: '1'
  template: '{{{{ input }}}}'
candidates:
- model: openai/good
  alias: good
  api_base: {DEAD}
- model: openai/bad
  alias: bad
  api_base: {DEAD}
sampling:
  temperature: 0
  max_tokens: 64
judge:
  model: openai/judge
  api_base: {DEAD}
concurrency:
  global: 4
  per_model: 4
timeout_s: 2
retries:
  attempts: 1
"""


def sub(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced exactly once (fails loudly if the table drifts from the texts)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def label(item: tuple[str, str], **over: object) -> dict[str, object]:
    row: dict[str, object] = {"item_id": item[0], "case_id": item[1], "human_score": 4, "human_pass": True,
                              "failure_mode": "none", "annotator": "ana"}
    row.update(over)
    return row


LABEL_HEADER = "item_id,case_id,human_score,human_pass,failure_mode,annotator,note\n"


def label_csv(b: Base, *rows: str) -> str:
    """A labels CSV: header, a first valid row, then ``rows`` (``{item1}``/``{case1}`` name item 1)."""
    (i0, c0), (i1, c1) = b.items[0], b.items[1]
    first = f"{i0},{c0},5,yes,none,ana,\n"
    return LABEL_HEADER + first + "".join(r.format(item1=i1, case1=c1) + "\n" for r in rows)


def sqlite_db(path: Path, table: str) -> bytes:
    """Bytes of a SQLite database holding one table ``table(query, ts)``."""
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE {table} (query TEXT, ts TEXT)")
    con.execute(f"INSERT INTO {table} VALUES ('my card was lost', '2026-01-02')")
    con.commit()
    con.close()
    data = path.read_bytes()
    path.unlink()
    return data


Content = str | bytes | Callable[[Base, Path], str | bytes]


@dataclass(frozen=True)
class Bad:
    """One malformed input and what the one-line error must say about it."""

    id: str
    kind: Kind
    file: str  # basename; written under datasets/, rubrics/, runs/, labels/ or prod/
    content: Content
    where: tuple[str, ...] = ()  # substrings locating the fault (line number, case or item id)
    hint: str = ""  # regex (case-insensitive) for what is wrong / how to fix it
    via: str = ""  # how to reach the file: "" = the kind's default command (see `command`)
    extra: tuple[str, ...] = field(default_factory=tuple)


def _ds_huge(_: Base, __: Path) -> str:
    return sub(DATASET, "    input: Can I get a refund for last month?\n",
               "    input: " + "refund " * (HUGE // 7) + "\n")


def _prod_huge(_: Base, __: Path) -> str:
    return jsonl({"text": "card lost"}, {"text": "x" * HUGE}, {"text": "pin blocked"})


CORPUS: list[Bad] = [
    # ------------------------------------------------------------------ datasets (via `run SPEC`)
    Bad("ds-yaml-syntax", "dataset", "syntax.yaml", sub(DATASET, "    ideal: Explain the refund policy.\n",
                                                        "    ideal: [Explain the refund policy.\n"),
        ("line 12",), r"invalid YAML"),
    Bad("ds-tab-indent", "dataset", "tabs.yaml", sub(DATASET, "    severity: high\n", "\tseverity: high\n"),
        ("line 8",), r"invalid YAML"),
    Bad("ds-not-mapping", "dataset", "list.yaml", "- id: case-000\n  input: hello\n", ("line 1",),
        r"must be a mapping"),
    Bad("ds-header-missing-version", "dataset", "nover.yaml", sub(DATASET, 'version: "1.0"\n', ""),
        ("line 1",), r"missing 'version'"),
    Bad("ds-cases-not-list", "dataset", "cases.yaml", DATASET.split("cases:")[0] + "cases: all of them\n",
        ("line 4",), r"'cases' must be a list"),
    Bad("ds-case-missing-id", "dataset", "noid.yaml", sub(DATASET, "  - id: case-001\n    input:", "  - input:"),
        ("line 9",), r"id: required field is missing"),
    Bad("ds-duplicate-id", "dataset", "dup.yaml", sub(DATASET, "id: case-001", "id: case-000"),
        ("line 9", "case-000"), r"duplicate case id .*unique"),
    Bad("ds-duplicate-key", "dataset", "dupkey.yaml", sub(DATASET, "    severity: low\n",
                                                          "    severity: low\n    severity: high\n"),
        ("line 13",), r"duplicate key 'severity'"),
    Bad("ds-unknown-field", "dataset", "unknown.yaml", sub(DATASET, "    tags: [refund]\n",
                                                           "    tags: [refund]\n    expected: refund\n"),
        ("line 9", "case-001"), r"expected: unknown field.*spelling"),
    Bad("ds-bad-severity", "dataset", "sev.yaml", sub(DATASET, "severity: low", "severity: urgent"),
        ("line 9", "case-001"), r"severity: .*'high', 'medium' or 'low'"),
    Bad("ds-tags-number", "dataset", "tags.yaml", sub(DATASET, "tags: [refund]", "tags: 5"),
        ("line 9", "case-001"), r"tags: .*list"),
    Bad("ds-bad-regex", "dataset", "regex.yaml", sub(DATASET, "    tags: [refund]\n",
                                                     "    checks: [{type: regex, pattern: 'refund (['}]\n"),
        ("line 9", "case-001"), r"invalid regular expression"),
    Bad("ds-bad-json-schema", "dataset", "schema.yaml", sub(DATASET, "    tags: [refund]\n",
                                                            "    checks: [{type: json_schema, schema: {type: 12}}]\n"),
        ("line 9", "case-001"), r"invalid schema"),
    Bad("ds-empty", "dataset", "empty.yaml", "", (), r"file is empty"),
    Bad("ds-utf16", "dataset", "utf16.yaml", DATASET.encode("utf-16"), ("line 1",), r"not valid UTF-8.*save .*UTF-8"),
    Bad("ds-latin1", "dataset", "latin1.yaml", sub(DATASET, "last month?", "last month, caf\u00e9?").encode("latin-1"),
        ("line 10",), r"not valid UTF-8.*save .*UTF-8"),
    Bad("ds-huge-line", "dataset", "huge.yaml", _ds_huge, ("line 10",), r"over the \d+ limit; shorten it"),
    Bad("ds-jsonl-broken-line", "dataset", "broken.jsonl",
        jsonl({"name": "corpus", "version": "1"}, {"id": "a", "input": "hi"}, '{"id": "b", "input": "hi"',
              {"id": "c", "input": "hi"}), ("line 3",), r"invalid JSON"),
    Bad("ds-jsonl-no-header", "dataset", "nohead.jsonl", jsonl({"id": "a", "input": "hi"}), ("line 1",),
        r"first line must be the header"),
    Bad("ds-csv-bad-row", "dataset", "row.csv",
        "# name: corpus\n# version: 1\nid,input,severity\na1,Refund me,high\na2,Refund, me,low\n",
        ("line 5",), r"row has 4 fields but the header has 3"),
    Bad("ds-csv-no-input-column", "dataset", "nocol.csv", "# name: corpus\n# version: 1\nid,question\na1,hi\n",
        ("line 3",), r"no 'input' column"),
    Bad("ds-csv-bad-checks-json", "dataset", "checks.csv",
        "# name: corpus\n# version: 1\nid,input,checks\na1,hi,[]\na2,hello,\"[{type: max_words}]\"\n",
        ("line 5", "a2"), r"'checks' must be JSON"),
    Bad("ds-dup-id-validate", "dataset", "dup2.yaml", sub(DATASET, "id: case-001", "id: case-000"),
        ("line 9", "case-000"), r"duplicate case id", via="dataset validate"),
    Bad("ds-severity-coverage", "dataset", "sev2.yaml", sub(DATASET, "severity: low", "severity: urgent"),
        ("line 9", "case-001"), r"severity", via="coverage"),
    # ------------------------------------------------------------------ rubrics (via `run SPEC`)
    Bad("rb-bad-pass-rule", "rubric", "passrule.yaml", sub(RUBRIC_TEXT, "min_score: 4", "min_score: 7"),
        ("line 14",), r"pass_rule\.min_score: .*less than or equal to 5"),
    Bad("rb-mode-not-in-enum", "rubric", "mode.yaml",
        sub(RUBRIC_TEXT, "[unsafe_account_action]\n", "[unsafe_account_action, made_up]\n"),
        ("line 13",), r"unknown failure modes \['made_up'\].*add them to failure_modes"),
    Bad("rb-template-syntax", "rubric", "template.yaml", sub(RUBRIC_TEXT, "{{ response }}", "{{ response }"),
        ("line 16",), r"judge_prompt is not a valid template \(template line 1\)"),
    # issue 14.5: a misspelt variable fails validation (StrictUndefined against what the template receives)
    Bad("rb-template-undefined", "rubric", "undefined.yaml", sub(RUBRIC_TEXT, "{{ response }}", "{{ respons }}"),
        ("line 16",), r"judge_prompt uses undefined variable 'respons' \(template line 1\); did you mean 'response'"),
    Bad("rb-template-undefined-validate", "rubric", "undefined2.yaml",
        sub(RUBRIC_TEXT, "{{ response }}", "{{ respons }}"), ("line 16",),
        r"undefined variable 'respons'.*did you mean 'response'", via="rubric validate"),
    Bad("rb-template-undefined-spec-validate", "rubric", "undefined3.yaml",
        sub(RUBRIC_TEXT, "{{ response }}", "{{ respons }}"), ("line 16",),
        r"undefined variable 'respons'.*did you mean 'response'", via="validate"),
    Bad("rb-template-unsafe", "rubric", "unsafe.yaml",
        sub(RUBRIC_TEXT, "{{ response }}", "{{ response }} {{ input.__class__.__mro__ }}"), ("line 16",),
        r"judge_prompt cannot be rendered.*unsafe operation", via="rubric validate"),
    Bad("rb-bad-schema", "rubric", "schema.yaml",
        RUBRIC_TEXT + "response_schema:\n  type: 5\n  required: [score, pass, reason, failure_mode]\n",
        ("line 17",), r"response_schema is not a valid JSON schema"),
    Bad("rb-unknown-field", "rubric", "unknown.yaml", RUBRIC_TEXT + "judge_temprature: 0\n", ("line 17",),
        r"judge_temprature: unknown field"),
    Bad("rb-scale-incomplete", "rubric", "scale.yaml", sub(RUBRIC_TEXT, "  5: ideal\n", ""), ("line 6",),
        r"scale must define exactly the points 1, 2, 3, 4 and 5", via="rubric validate"),
    # ------------------------------------------------------------------ run specs (`run runs/FILE`)
    Bad("sp-unknown-key", "spec", "unknown.yaml", SPEC + "temprature: 0\n", ("line 26",),
        r"temprature: unknown field"),
    Bad("sp-missing-dataset", "spec", "nodata.yaml", sub(SPEC, "../datasets/mini.yaml", "../datasets/gone.yaml"),
        ("line 2",), r"gone\.yaml' not found; paths are relative to the spec"),
    Bad("sp-bad-sampling-type", "spec", "sampling.yaml", sub(SPEC, "temperature: 0", "temperature: warm"),
        ("line 15",), r"sampling\.temperature: .*number"),
    Bad("sp-template-undefined", "spec", "undefined.yaml", sub(SPEC, "template: '{{ input }}'", "template: '{{ inptu }}'"),
        ("line 6",), r"template uses undefined variable 'inptu' \(template line 1\); did you mean 'input'"),
    Bad("sp-template-undefined-validate", "spec", "undefined2.yaml",
        sub(SPEC, "template: '{{ input }}'", "template: 'Q: {{ case.inptu }}'"), ("case-000",),
        r"prompt template failed: .*inptu", via="validate"),
    Bad("sp-negative-concurrency", "spec", "conc.yaml", sub(SPEC, "global: 4", "global: -1"),
        ("line 21",), r"concurrency\.global: .*greater than or equal to 1"),
    Bad("sp-unknown-candidate-field", "spec", "cand.yaml", sub(SPEC, "  alias: bad\n", "  alias: bad\n  temp: 1\n"),
        ("line 13",), r"candidates\.1\.temp: unknown field"),
    Bad("sp-duplicate-alias", "spec", "alias.yaml", sub(SPEC, "alias: bad", "alias: good"),
        ("line 7",), r"candidates share the name \['good'\].*alias"),
    Bad("sp-key-not-env-name", "spec", "key.yaml",
        sub(SPEC, "  alias: good\n", "  alias: good\n  api_key_env: sk-live-123\n"),
        ("line 10",), r"candidates\.0\.api_key_env: .*NAME of an environment variable"),
    Bad("sp-bad-yaml", "spec", "yaml.yaml", sub(SPEC, "max_tokens: 64", "max_tokens: 64: 12"),
        ("line 16",), r"invalid YAML", via="validate"),
    # ------------------------------------------------------------------ human labels (`labels import FILE --run R`)
    Bad("lb-unknown-case-id", "labels", "case.jsonl",
        lambda b, _: jsonl(label(b.items[0]), label(b.items[1], case_id="case-999")),
        ("line 2", "{item1}"), r"case_id 'case-999'.*case-\d+"),
    Bad("lb-case-id-of-other-item", "labels", "othercase.csv",
        lambda b, _: label_csv(b, "{item1},case-zzz,4,yes,none,ana,"),
        ("line 3", "{item1}"), r"case_id 'case-zzz'"),
    Bad("lb-unknown-item-id", "labels", "item.csv", lambda b, _: label_csv(b, "item-000000000000,case-000,4,yes,none,ana,"),
        ("line 3", "item-000000000000"), r"unknown item id.*check the run id"),
    Bad("lb-score-out-of-range", "labels", "score.csv", lambda b, _: label_csv(b, "{item1},{case1},7,yes,none,ana,"),
        ("line 3", "{item1}"), r"human_score must be an integer 1-5"),
    Bad("lb-bad-pass", "labels", "pass.jsonl", lambda b, _: jsonl(label(b.items[0]), label(b.items[1], human_pass="maybe")),
        ("line 2", "{item1}"), r"human_pass must be true/false"),
    Bad("lb-bad-failure-mode", "labels", "mode.jsonl",
        lambda b, _: jsonl(label(b.items[0]), label(b.items[1], failure_mode="rude")),
        ("line 2", "{item1}"), r"failure_mode 'rude' is not in the rubric; use one of"),
    Bad("lb-bad-csv-header", "labels", "header.csv",
        lambda b, _: "item_id,case_id,score,human_pass,annotator\n" + f"{b.items[0][0]},{b.items[0][1]},4,yes,ana\n",
        ("line 1",), r"unknown column\(s\) \['score'\]"),
    Bad("lb-non-utf8", "labels", "latin1.csv",
        lambda b, _: label_csv(b, "{item1},{case1},3,no,wrong_policy,ana,caf\u00e9 au lait").encode("latin-1"),
        ("line 3",), r"not valid UTF-8.*save .*UTF-8"),
    Bad("lb-broken-jsonl", "labels", "broken.jsonl",
        lambda b, _: jsonl(label(b.items[0]), json.dumps(label(b.items[1]))[:-1]), ("line 2",), r"invalid JSON"),
    Bad("lb-labelled-twice", "labels", "twice.jsonl",
        lambda b, _: jsonl(label(b.items[0]), label(b.items[1]), label(b.items[0], human_score=2)),
        ("line 3", "{item0}"), r"labelled item .* twice \(first at line 1\)"),
    Bad("lb-empty", "labels", "empty.csv", "", (), r"no CSV header row"),
    # ------------------------------------------------------------------ production logs (`coverage -p FILE -d DATASET`)
    Bad("pr-missing-text-column", "production", "notext.jsonl",
        jsonl({"query": "card lost", "ts": "2026-01-01"}, {"query": "pin", "ts": "2026-01-02"}),
        (), r"no column 'text'.*available columns: query, ts.*--text-column"),
    Bad("pr-csv-missing-text-column", "production", "notext.csv", "query,ts\ncard lost,2026-01-01\n",
        ("header",), r"no column 'text'.*--text-column"),
    Bad("pr-missing-timestamp-column", "production", "nots.jsonl", jsonl({"text": "card lost"}),
        (), r"no column 'when'.*--timestamp-column", extra=("--timestamp-column", "when")),
    Bad("pr-empty", "production", "empty.jsonl", "", (), r"file is empty"),
    Bad("pr-empty-csv", "production", "empty.csv", "\n", (), r"file is empty"),
    Bad("pr-all-rows-unreadable", "production", "unreadable.jsonl", "\n{broken\n[1, 2]\n{\"text\": \n",
        (), r"no readable rows \(skipped 2 invalid JSON, 1 not a JSON object, the first at line 2\)"),
    Bad("pr-all-texts-empty", "production", "blank.jsonl", jsonl({"text": ""}, {"text": "  "}, {"text": None}),
        (), r"no usable production rows; .*\(the first unusable at line 1\)"),
    Bad("pr-non-utf8", "production", "latin1.csv", "text\ncard lost\ncaf\u00e9 card\n".encode("latin-1"),
        ("line 3",), r"not valid UTF-8"),
    Bad("pr-huge-line", "production", "huge.jsonl", _prod_huge, ("line 2",), r"over the \d+ limit; shorten it"),
    Bad("pr-sqlite-no-table", "production", "logs.db", lambda _, tmp: sqlite_db(tmp / "x.db", "other"),
        ("table queries",), r"no such table; tables: other", extra=("--table", "queries")),
    Bad("pr-sqlite-table-not-named", "production", "logs2.db", lambda _, tmp: sqlite_db(tmp / "y.db", "queries"),
        (), r"name the table with --table"),
    Bad("pr-not-sqlite", "production", "notdb.db", "this is not a database\n", (), r"not a readable SQLite database",
        extra=("--table", "queries")),
    Bad("pr-unknown-format", "production", "logs.txt", "card lost\n", (), r"unknown production format '\.txt'"),
]

DIRS: dict[Kind, str] = {"dataset": "datasets", "rubric": "rubrics", "spec": "runs", "labels": "labels",
                         "production": "prod"}


# ----------------------------------------------------------------------------- the prepared project


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    """One project with a completed run (against a fake server) and a labelling template of it."""
    root = tmp_path_factory.mktemp("malformed-base")
    with FakeServer(fake_config()) as srv:
        project = Project(root, srv.url)
        spec = project.setup()
        r, summary = project.cli_json("run", str(spec))
        assert r.returncode == 0, r.stderr
        run_id = summary["conditions"]["run_id"]
        (root / "labels").mkdir()
        r = project.cli("labels", "export", run_id, "-n", "6", "-o", "labels/template.csv")
        assert r.returncode == 0, r.stderr
    with (root / "labels" / "template.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    items = [(row["item_id"], row["case_id"]) for row in rows]
    assert len({c for _, c in items}) >= 2, "the corpus needs items of two different cases"
    items.sort(key=lambda ic: ic[1])
    items = [items[0], next(ic for ic in items if ic[1] != items[0][1])]
    copy = root.parent / "ledger-pristine.sqlite"
    con = sqlite3.connect(project.ledger)
    con.execute("VACUUM INTO ?", (str(copy),))
    con.close()
    for f in root.glob("runs/ledger.sqlite*"):
        f.unlink()
    yield Base(root, copy, run_id, items)


@pytest.fixture
def project(base: Base, tmp_path: Path) -> Project:
    """A fresh copy of the prepared project (its fake server is gone: nothing may be called)."""
    root = tmp_path / "project"
    shutil.copytree(base.root, root)
    (root / "prod").mkdir()
    p = Project(root, DEAD)
    shutil.copyfile(base.ledger_copy, p.ledger)
    return p


def ledger_dump(path: Path) -> list[str]:
    """Every row of every table (schema included), read through the WAL by a separate connection."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def command(bad: Bad, path: Path, base: Base, project: Project) -> list[str]:
    """The CLI invocation that reads ``path``."""
    rel = str(path.relative_to(project.root))
    if bad.kind in ("dataset", "rubric"):
        if bad.via == "dataset validate":
            return ["dataset", "validate", rel]
        if bad.via == "rubric validate":
            return ["rubric", "validate", rel]
        if bad.via == "validate":
            spec = project.write_spec(name=f"uses-{path.stem}", rubric=f"../{rel}")
            return ["validate", str(spec.relative_to(project.root))]
        if bad.via == "coverage":
            prod = project.root / "prod" / "ok.jsonl"
            prod.write_text(jsonl({"text": "card lost"}, {"text": "pin blocked"}), encoding="utf-8")
            return ["coverage", "--production", str(prod.relative_to(project.root)), "--dataset", rel]
        key = "dataset" if bad.kind == "dataset" else "rubric"
        spec = project.write_spec(name=f"uses-{path.stem}", **{key: f"../{rel}"},
                                  retries={"attempts": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.01})
        return ["run", str(spec.relative_to(project.root))]
    if bad.kind == "spec":
        return [bad.via or "run", rel]
    if bad.kind == "labels":
        return ["labels", "import", rel, "--run", base.run_id]
    return ["coverage", "--production", rel, "--dataset", "datasets/mini.yaml", *bad.extra]


# ----------------------------------------------------------------------------- the tests


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(CORPUS) >= 30
    assert len({b.id for b in CORPUS}) == len(CORPUS)
    counts = {k: sum(b.kind == k for b in CORPUS) for k in DIRS}
    assert all(n >= 5 for n in counts.values()), counts


def expand(s: str, base: Base) -> str:
    return s.replace("{item0}", base.items[0][0]).replace("{item1}", base.items[1][0])


def write_bad(bad: Bad, base: Base, project: Project, tmp_path: Path) -> Path:
    path = project.root / DIRS[bad.kind] / bad.file
    content = bad.content(base, tmp_path) if callable(bad.content) else bad.content
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in CORPUS])
def test_malformed_input_is_refused_cleanly(bad: Bad, base: Base, project: Project, tmp_path: Path) -> None:
    path = write_bad(bad, base, project, tmp_path)
    args = command(bad, path, base, project)
    before = ledger_dump(project.ledger)
    assert any("INSERT INTO \"run\"" in s for s in before), "the ledger must hold the completed run"

    r = project.cli(*args, env={"COLUMNS": "80"})  # a narrow console must not wrap the message

    assert r.returncode == 2, f"exit {r.returncode}; stderr: {r.stderr[:2000]}"
    assert r.stdout == "", r.stdout[:2000]
    msg = r.stderr.strip()
    assert msg and "\n" not in msg, f"not one line: {r.stderr[:2000]!r}"
    assert "Traceback" not in msg and "internal error" not in msg
    assert len(msg) < 600, f"message too long ({len(msg)} chars): {msg[:300]}..."
    assert path.name in msg, f"file not named: {msg}"
    for w in bad.where:
        w = expand(w, base)
        assert re.search(re.escape(w) + r"(?!\d)", msg), f"{w!r} missing from: {msg}"
    assert re.search(bad.hint, msg, re.IGNORECASE), f"/{bad.hint}/ not in: {msg}"
    assert ledger_dump(project.ledger) == before, "the ledger changed"


# A few through a real process: the console script, real stderr, no stray warnings or tracebacks.
SUBPROCESS = ["ds-huge-line", "sp-unknown-candidate-field", "lb-non-utf8", "pr-all-rows-unreadable"]


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in CORPUS if b.id in SUBPROCESS])
def test_malformed_input_in_a_real_process(bad: Bad, base: Base, project: Project, tmp_path: Path) -> None:
    path = write_bad(bad, base, project, tmp_path)
    args = command(bad, path, base, project)
    before = ledger_dump(project.ledger)
    r: subprocess.CompletedProcess[str] = project.cli(*args, subprocess_=True, env={"COLUMNS": "80"}, timeout=120)
    msg = r.stderr.strip()
    assert r.returncode == 2 and msg and "\n" not in msg, f"exit {r.returncode}: {r.stderr[:2000]!r}"
    assert path.name in msg and re.search(bad.hint, msg, re.IGNORECASE), msg
    assert ledger_dump(project.ledger) == before


def test_the_dump_sees_a_valid_import(base: Base, project: Project) -> None:
    """Control: the comparison above is not vacuous; a valid labels file does change the dump."""
    path = project.root / "labels" / "good.jsonl"
    path.write_text(jsonl(label(base.items[0]), label(base.items[1], human_score=2, human_pass=False)),
                    encoding="utf-8")
    before = ledger_dump(project.ledger)
    r = project.cli("labels", "import", str(path), "--run", base.run_id)
    assert r.returncode == 0, r.stderr
    after = ledger_dump(project.ledger)
    assert after != before and len(after) > len(before)
