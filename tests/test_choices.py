"""Multiple choice: letter extraction (a table of real-looking answers), choices/answer in cases,
the lettered block in the prompt, and unparsed answers counted per model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchrun.errors import BadInput
from benchrun.scoring.extract import choice_block, extract_choice
from benchrun.spec import Case, load_dataset
from conftest import Project
from fakeserver import FakeServer

CHOICES = ["Paris", "London", "Berlin", "Madrid"]
TABLE = [
    ("B", "B", "lone letter"),
    ("b", "B", "lone letter"),
    ("(B)", "B", "lone letter"),
    ("B)", "B", "lone letter"),
    ("B.", "B", "lone letter"),
    ("**B**", "B", "lone letter"),
    ("`C`", "C", "lone letter"),
    ("  D\n", "D", "lone letter"),
    ("[A]", "A", "lone letter"),
    ('"B"', "B", "lone letter"),
    ("E", None, "not a choice"),
    ("Answer: b", "B", "answer marker"),
    ("Answer: B", "B", "answer marker"),
    ("The answer is B.", "B", "answer marker"),
    ("The answer is (C).", "C", "answer marker"),
    ("The correct answer is **D**.", "D", "answer marker"),
    ("I think the answer is: A", "A", "answer marker"),
    ("The correct option is C, Berlin.", "C", "answer marker"),
    ("Option B is correct because London is the capital.", "B", "answer marker"),
    ("Let me think. Paris is in France... Final answer: B", "B", "answer marker"),
    ("Answer: B\nExplanation: London is the capital of the UK.", "B", "answer marker"),
    ("The answer is B. Answer: B", "B", "answer marker"),
    ("The answer is B or C.", None, "ambiguous"),
    ("The answer is A. Actually, the answer is C.", None, "ambiguous"),
    ("The answer is a bit unclear, but London seems right.", "B", "choice text"),
    ("answer: e", None, "not a choice"),
    ("B. London", "B", "leading letter"),
    ("B) London", "B", "leading letter"),
    ("(B) London", "B", "leading letter"),
    ("**C.** Berlin", "C", "leading letter"),
    ("D: Madrid", "D", "leading letter"),
    ("b) london", "B", "leading letter"),
    ("A - Paris", "A", "leading letter"),
    ("London", "B", "choice text"),
    ("It is london.", "B", "choice text"),
    ("The capital is Berlin, of course.", "C", "choice text"),
    ("Paris or London, I am not sure.", None, "ambiguous"),
    ("I don't know.", None, "names no choice"),
    ("", None, "names no choice"),
    ("None of these.", None, "names no choice"),
    ("Both A and C could be right.", None, "names no choice"),
    ("I would go with Madrid!", "D", "choice text"),
    ("A", "A", "lone letter"),
    ("As an AI, I think London.", "B", "choice text"),
    ("I'd say B, but C is also possible.", None, "names no choice"),
    ("The answer is E.", None, "not a choice"),
    ("Answer: B and C", None, "ambiguous"),
]


def test_table_is_large_and_has_ambiguous_rows() -> None:
    assert len(TABLE) >= 40
    assert sum(1 for _t, letter, _r in TABLE if letter is None) >= 10


@pytest.mark.parametrize(("answer", "letter", "rule"), TABLE)
def test_extract_choice(answer: str, letter: str | None, rule: str) -> None:
    got = extract_choice(answer, CHOICES)
    assert got.letter == letter, got
    assert rule in got.rule, got


def test_choice_block_is_lettered() -> None:
    assert choice_block(["Paris", "London"]) == "A) Paris\nB) London"


@pytest.mark.parametrize(("answer", "index"), [("B", 1), ("b", 1), (1, 1), (0, 0), ("London", 1), ("D", 3)])
def test_answer_as_letter_index_or_text(answer: Any, index: int) -> None:
    case = Case.model_validate({"id": "q", "input": "Capital of the UK?", "choices": CHOICES, "answer": answer})
    assert case.answer_index() == index


@pytest.mark.parametrize(("extra", "message"), [
    ({"choices": CHOICES}, "'choices' and 'answer' go together"),
    ({"answer": "B"}, "'choices' and 'answer' go together"),
    ({"choices": CHOICES, "answer": "E"}, "names choice 5 but there are 4"),
    ({"choices": CHOICES, "answer": 4}, "outside 0..3"),
    ({"choices": CHOICES, "answer": "Rome"}, "is not a letter, an index or the text"),
    ({"choices": ["only"], "answer": "A"}, "between 2 and 26"),
    ({"choices": ["Paris", "paris"], "answer": "A"}, "same text"),
])
def test_bad_choice_cases_are_bad_input_naming_the_case(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump({"name": "d", "version": "1",
                                 "cases": [{"id": "ok", "input": "x", "must_include": ["x"]},
                                           {"id": "mc-7", "input": "Capital?", **extra}]}))
    with pytest.raises(BadInput) as e:
        load_dataset(p)
    assert "case mc-7" in str(e.value) and message in str(e.value), str(e.value)


def test_cases_without_choices_dump_as_before() -> None:
    case = Case.model_validate({"id": "q", "input": "x"})
    d = case.model_dump(mode="json")
    assert "choices" not in d and "answer" not in d


def test_multiple_choice_run_counts_unparsed_per_model(tmp_path: Path) -> None:
    questions = [("Capital of the UK?", "B"), ("Capital of Germany?", "C"), ("Capital of Spain?", "D"),
                 ("Capital of France?", "A")]
    rules = [
        # "good": right, in four different forms
        {"model": "^good$", "contains": "UK?", "reply": "The answer is (B)."},
        {"model": "^good$", "contains": "Germany?", "reply": "**C**"},
        {"model": "^good$", "contains": "Spain?", "reply": "D. Madrid"},
        {"model": "^good$", "contains": "France?", "reply": "Paris"},
        # "vague": one right, one wrong, two unparsed (no choice; two choices)
        {"model": "^vague$", "contains": "UK?", "reply": "Answer: b"},
        {"model": "^vague$", "contains": "Germany?", "reply": "Answer: A"},
        {"model": "^vague$", "contains": "Spain?", "reply": "I am not sure."},
        {"model": "^vague$", "contains": "France?", "reply": "The answer is A or B."},
    ]
    with FakeServer({"rules": rules}) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset([{"id": f"q{i}", "input": q, "choices": CHOICES, "answer": a}
                               for i, (q, a) in enumerate(questions)])
        spec = project.write_spec(
            prompt={"version": "1", "template": "{{ input }}\n{{ choices_block }}\nAnswer with the letter only."},
            candidates=[{"model": "openai/good", "alias": "good", "api_base": srv.url},
                        {"model": "openai/vague", "alias": "vague", "api_base": srv.url}])
        d = yaml.safe_load(spec.read_text())
        del d["rubric"], d["judge"]
        spec.write_text(yaml.safe_dump(d, sort_keys=False))
        r, summary = project.cli_json("run", str(spec))
        assert r.returncode == 0, r.stderr
        sent = next(q for q in srv.requests() if q.model == "good" and "UK?" in q.messages[-1]["content"])
        assert sent.messages[-1]["content"] == ("Capital of the UK?\nA) Paris\nB) London\nC) Berlin\nD) Madrid\n"
                                               "Answer with the letter only.")
        assert srv.stats()["by_model"] == {"good": 4, "vague": 4}
        m = {x["model_key"]: x for x in summary["models"]}
        assert (m["good"]["passed"], m["good"]["failed"], m["good"]["unparsed"]) == (4, 0, 0)
        assert (m["vague"]["passed"], m["vague"]["failed"], m["vague"]["unparsed"]) == (1, 3, 2)
        assert summary["choice_cases"] == 4
        run_id = summary["conditions"]["run_id"]
        r = project.cli("runs", "show", run_id)
        assert "unparsed" in r.stdout and "4 multiple-choice case(s)" in r.stdout
        r, detail = project.cli_json("runs", "show", run_id, "--case", "q3")
        vague = next(x for x in detail["results"] if x["model_key"] == "vague")
        [o] = vague["rules"]
        assert o["unparsed"] is True and o["detail"] == "unparsed: ambiguous: answer markers name A, B"
        good = next(x for x in detail["results"] if x["model_key"] == "good")
        assert good["rules"][0]["extracted"] == "A" and good["rules"][0]["extracted_by"] == "choice text"
        r, cmp = project.cli_json("compare", "good", "vague", "--run", run_id)
        assert r.returncode == 0, r.stderr
        [w] = [w for w in cmp["warnings"] if w.startswith("MOSTLY UNPARSED")]
        assert "in 2 of the 3 result(s) where good and vague differ" in w


def test_unparsed_warning_only_when_most_differences_are_unparsed() -> None:
    from benchrun.report.comparison import unparsed_warning

    def row(case: str, key: str, status: str, unparsed: bool = False) -> dict[str, Any]:
        rule = {"rule": "choice A", "passed": status == "passed", "detail": ""}
        if unparsed:
            rule["unparsed"] = True
        return {"case_id": case, "sample_index": 0, "model_key": key, "status": status, "rules": json.dumps([rule])}

    a = [row(f"c{i}", "a", "passed") for i in range(4)]
    wrong = [row("c0", "b", "failed"), row("c1", "b", "failed"), row("c2", "b", "failed", unparsed=True),
             row("c3", "b", "passed")]
    assert unparsed_warning(a, wrong, "a", "b", None, "a", "b") is None  # 1 of 3 differences: knowledge
    vague = [row("c0", "b", "failed", True), row("c1", "b", "failed", True), row("c2", "b", "failed"),
             row("c3", "b", "passed")]
    assert "in 2 of the 3 result(s)" in (unparsed_warning(a, vague, "a", "b", None, "a", "b") or "")
    half = [row("c0", "b", "failed", True), row("c1", "b", "failed"), row("c2", "b", "passed"),
            row("c3", "b", "passed")]
    assert unparsed_warning(a, half, "a", "b", None, "a", "b") is None  # exactly half is not "mostly"
    assert unparsed_warning(a, a, "a", "a", None, "a", "a") is None  # no differences
