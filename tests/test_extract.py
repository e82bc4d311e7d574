"""Answer extraction and matching: numbers (GSM8K style) and exact match with normalisations."""

from __future__ import annotations

import re
import string
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchrun.scoring import rules
from benchrun.scoring.extract import extract_number, normalise, numbers_match
from benchrun.spec import Case, Check

NUMBERS = [
    # (answer, extracted value, rule)
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72", "after ####"),
    ("#### 1,080", "1080", "after ####"),
    ("So the total is 5 + 7 = 12.\n#### 12\nHope this helps! 99", "12", "after ####"),
    ("The answer is 18.", "18", "after 'answer is'"),
    ("The answer is $1,234.50. Thanks for 2 hints", "1234.5", "after 'answer is'"),
    ("Step 1: 3 apples. Step 2: 4 more. Final answer: 7", "7", "after 'answer is'"),
    ("She pays 12 dollars an hour for 3 hours, so 36 dollars.", "36", "last number"),
    ("The temperature fell to -7 degrees.", "-7", "last number"),
    ("The temperature fell to \u22123 degrees.", "-3", "last number"),
    ("from 3-5 apples", "5", "last number"),  # a range's hyphen is not a minus sign
    ("He lost -$5 on the deal", "-5", "last number"),
    ("That is 3/4 of the cake", "0.75", "last number"),
    ("The discount is 25%", "25", "last number"),
    ("about .5 of a liter", "0.5", "last number"),
    ("There were 850,000 visitors", "850000", "last number"),
    ("1,2345", "2345", "last number"),  # not a thousands group: two numbers, the last wins
    ("x = 10/0 and then 7", "7", "last number"),  # division by zero is no fraction
    ("The answer is: 42 apples (43 in total)", "42", "after 'answer is'"),
    ("The answer is unclear, maybe 9", "9", "after 'answer is'"),
    ("#### the total is 12", "12", "after ####"),
]


@pytest.mark.parametrize(("answer", "value", "rule"), NUMBERS)
def test_extract_number(answer: str, value: str, rule: str) -> None:
    n = extract_number(answer)
    assert n is not None
    assert (n.shown(), n.rule) == (value, rule)


def test_extract_number_none_and_bounded() -> None:
    assert extract_number("no digits at all") is None
    assert extract_number("####") is None
    # the final answer sits at the end; a huge answer is scanned only in its tail
    n = extract_number("7 " * 50_000 + " so the answer is 9")
    assert n is not None and n.shown() == "9"
    # hostile answers: a 20,000-digit number is skipped (Python's int() refuses > 4,300 digits), not a crash
    n = extract_number("the answer is 12 " + "9" * 19_000)
    assert n is not None and n.shown() == "12"
    assert extract_number("9" * 20_000) is None


def test_numbers_match_tolerances_exact_rationals() -> None:
    assert numbers_match(Fraction("0.30"), 0.3)  # exact: no binary floating-point surprise
    assert numbers_match(Fraction(1, 10) + Fraction(2, 10), 0.3)
    assert not numbers_match(Fraction(1, 3), 0.3333)
    assert numbers_match(Fraction(1, 3), 0.3333, abs_tol=0.001)
    assert numbers_match(Fraction(101), 100, rel_tol=0.01) and not numbers_match(Fraction(102), 100, rel_tol=0.01)
    assert numbers_match(Fraction(-5), -5) and not numbers_match(Fraction(5), -5)


def _case(checks: list[dict]) -> Case:
    return Case.model_validate({"id": "c", "input": "q", "checks": checks})


def test_numeric_check_records_extracted_value_rule_and_why() -> None:
    case = _case([{"type": "numeric", "value": 1080}])
    [ok] = rules.evaluate(case, "3 * 360 = 1,080\n#### 1,080")
    assert ok.passed and ok.extracted == "1080" and ok.extracted_by == "after ####"
    [bad] = rules.evaluate(case, "The answer is 1,081.")
    assert not bad.passed and bad.extracted == "1081" and bad.extracted_by == "after 'answer is'"
    assert bad.detail == "extracted 1081 (after 'answer is', written '1,081') != 1080 (tolerance 0)"
    d = bad.to_dict()
    assert d["extracted"] == "1081" and d["extracted_by"] == "after 'answer is'"
    [none] = rules.evaluate(case, "I don't know")
    assert not none.passed and none.detail == "no number in response" and none.extracted is None
    rel = _case([{"type": "numeric", "value": 200, "rel_tolerance": 0.05}])
    assert rules.evaluate(rel, "about 209")[0].passed and not rules.evaluate(rel, "about 211")[0].passed


def test_rule_dicts_of_other_checks_unchanged() -> None:
    """Outcomes that extract nothing keep their recorded shape (no empty extracted fields)."""
    case = _case([{"type": "contains", "value": "x"}])
    assert rules.evaluate(case, "x")[0].to_dict() == {"rule": "contains 'x'", "passed": True, "detail": ""}


# --------------------------------------------------------------------------- exact match


def squad_normalize_answer(s: str) -> str:
    """SQuAD v1.1's official evaluate-v1.1.py ``normalize_answer``, verbatim (the independent reference)."""

    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


SQUAD_STRINGS = ["The Eiffel Tower", "  an apple, a pear;  THE end. ", "Denver Broncos!", "the the the",
                 "Theatre of the absurd", "A.B.C.", "it's 42 (forty-two)", "anatomy and art", "Them and the",
                 "\tNew\nYork  City\t", "Saint-Exupéry's book", "THE", ""]


@pytest.mark.parametrize("s", SQUAD_STRINGS)
def test_squad_normalisation_matches_the_official_script(s: str) -> None:
    assert normalise(s, ["case", "punctuation", "articles", "whitespace"]) == squad_normalize_answer(s)
    assert normalise(s, ["squad"]) == squad_normalize_answer(s)


def test_each_normalisation_alone() -> None:
    assert normalise("ＡＢＣ１２３", ["nfkc"]) == "ABC123"  # fullwidth forms
    assert normalise("ﬁne", ["nfkc"]) == "fine"
    assert normalise("Straße", ["case"]) == "strasse"
    assert normalise("a  b\n c", ["whitespace"]) == "a b c"
    assert normalise("«Paris»!", ["punctuation"]) == "Paris"  # Unicode punctuation too
    assert normalise("the cat", ["articles"]) == "  cat"  # articles alone leave the space (as SQuAD)
    assert normalise("The Cat", []) == "The Cat"


def test_equals_with_normalize_and_equals_any_record_why() -> None:
    case = _case([{"type": "equals", "value": "Eiffel Tower", "normalize": ["squad"]}])
    [o] = rules.evaluate(case, "The Eiffel tower.")
    assert o.passed and o.extracted == "eiffel tower"
    [o] = rules.evaluate(case, "The Louvre.")
    assert not o.passed and o.extracted == "louvre"
    assert o.detail == "'louvre' is not 'eiffel tower' (normalised: squad)"
    many = _case([{"type": "equals_any", "values": ["Paris", "Paris, France"], "normalize": ["case", "punctuation",
                                                                                            "whitespace"]}])
    assert rules.evaluate(many, "paris france")[0].passed
    assert rules.evaluate(many, "PARIS!")[0].passed
    [o] = rules.evaluate(many, "Lyon")
    assert not o.passed and "is not any of 'paris', 'paris france'" in o.detail
    plain = _case([{"type": "equals_any", "values": ["yes", "y"]}])  # no normalize: case and whitespace, as equals
    assert rules.evaluate(plain, "  YES ")[0].passed and not rules.evaluate(plain, "yes.")[0].passed
    nfkc = _case([{"type": "equals", "value": "ABC", "normalize": ["nfkc"]}])
    assert rules.evaluate(nfkc, "ＡＢＣ")[0].passed and not rules.evaluate(nfkc, "abc")[0].passed


@pytest.mark.parametrize(("check", "message"), [
    ({"type": "equals_any"}, "needs 'values'"),
    ({"type": "equals_any", "values": []}, "needs 'values'"),
    ({"type": "contains", "value": "x", "values": ["a"]}, "'values' only applies"),
    ({"type": "contains", "value": "x", "normalize": ["case"]}, "'normalize' only applies"),
    ({"type": "equals", "value": "x", "rel_tolerance": 0.1}, "'rel_tolerance' only applies"),
    ({"type": "equals", "value": "x", "normalize": ["shout"]}, "normalize"),
    ({"type": "numeric", "value": 1, "rel_tolerance": -1}, "rel_tolerance"),
])
def test_bad_match_checks(check: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Check.model_validate(check)


def test_existing_checks_dump_unchanged() -> None:
    """New optional fields are left out of the dump when unset: dataset hashes of existing files do not move."""
    c = Check.model_validate({"type": "numeric", "value": 3})
    assert c.model_dump(mode="json", by_alias=True) == {
        "type": "numeric", "value": 3, "pattern": None, "schema": None, "max": None, "tolerance": 0.0,
        "ignore_case": True}


def test_extracted_answers_visible_in_runs_show_case_json_and_html(project: Any, server: Any, tmp_path: Path) -> None:
    server.set_config({"rules": [{"model": "good", "contains": "Q1", "reply": "3 * 360 = 1,080 beetles.\n#### 1,080"},
                                 {"model": "good", "contains": "Q2", "reply": "The capital is Paris."},
                                 {"model": "bad", "contains": "Q1", "reply": "I think the answer is 1,081."},
                                 {"model": "bad", "contains": "Q2", "reply": "Lyon"}]})
    cases = [{"id": "num", "input": "Q1: how many beetles?", "checks": [{"type": "numeric", "value": 1080}]},
             {"id": "city", "input": "Q2: which city?",
              "checks": [{"type": "equals_any", "values": ["Paris", "the capital is Paris"], "normalize": ["squad"]}]}]
    project.write_dataset(cases)
    spec = project.write_spec()
    d = yaml.safe_load(spec.read_text())
    del d["rubric"], d["judge"]
    spec.write_text(yaml.safe_dump(d, sort_keys=False))
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run_id = summary["conditions"]["run_id"]
    assert [(m["model_key"], m["passed"], m["failed"]) for m in summary["models"]] == [("good", 2, 0), ("bad", 0, 2)]

    r, detail = project.cli_json("runs", "show", run_id, "--case", "num")
    assert r.returncode == 0, r.stderr
    by_model = {x["model_key"]: x for x in detail["results"]}
    [good] = by_model["good"]["rules"]
    assert (good["passed"], good["extracted"], good["extracted_by"]) == (True, "1080", "after ####")
    [bad] = by_model["bad"]["rules"]
    assert (bad["passed"], bad["extracted"], bad["extracted_by"]) == (False, "1081", "after 'answer is'")
    assert bad["detail"].startswith("extracted 1081") and by_model["bad"]["scored_by"] == "rules"
    r = project.cli("runs", "show", run_id, "--case", "city")
    assert r.returncode == 0, r.stderr
    assert "extracted 'capital is paris'" in r.stdout and "extracted 'lyon'" in r.stdout
    assert "is not any of 'paris', 'capital is paris'" in r.stdout
    r = project.cli("runs", "show", run_id, "--case", "nope")
    assert r.returncode == 2 and "no case 'nope'" in r.stderr
    html = tmp_path / "r.html"
    assert project.cli("report", run_id, "--html", str(html)).returncode == 0
    page = html.read_text()
    assert "extracted <code>1081</code> (after &#39;answer is&#39;)" in page
