"""Generic JSON Lines (with --map), OpenAI Evals samples and promptfoo test files: fixtures in the original
layouts (tests/data/hf_jsonl, openai_evals, promptfoo), bad files named with their line, runs end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from benchrun.errors import BadInput
from benchrun.importers import get_importer
from benchrun.importers.jsonl import parse_map
from benchrun.spec import Dataset
from conftest import Project
from fakeserver import FakeServer

DATA = Path(__file__).parent / "data"
MAP = {"input": "question", "answer": "target", "category": "subject", "id": "uid"}


def test_jsonl_answer_kinds_become_checks() -> None:
    data = get_importer("jsonl")(DATA / "hf_jsonl" / "trivia-train.jsonl", field_map=MAP)
    ds = Dataset.model_validate(data)
    assert [c.id for c in ds.cases] == ["t1", "t2", "t3", "t4"]
    assert ds.case("t1").checks[0].type == "equals" and ds.case("t1").checks[0].value == "Canberra"
    assert ds.case("t2").checks[0].type == "numeric" and ds.case("t2").checks[0].value == 8
    assert ds.case("t3").checks[0].values == ["red", "green", "blue"] and ds.case("t3").ideal == "red"
    assert ds.case("t4").choices is None  # choices not mapped: the 'options' field is ignored
    assert ds.case("t1").category == "geography" and ds.case("t3").metadata["source_line"] == 4
    src = data["source"]
    assert src["format"] == "jsonl" and src["notes"] == ["--map input=question,answer=target,category=subject,id=uid"]
    assert src["sha256"] == hashlib.sha256((DATA / "hf_jsonl" / "trivia-train.jsonl").read_bytes()).hexdigest()


def test_jsonl_multiple_choice_with_dotted_fields() -> None:
    fm = parse_map(["input=question.stem,answer=label", "choices=options,category=subject"])
    ds = Dataset.model_validate(get_importer("jsonl")(DATA / "hf_jsonl" / "mc-test.jsonl", field_map=fm))
    assert [c.answer_index() for c in ds.cases] == [2, 1, 1]  # an index, a letter, a choice's text
    assert ds.cases[1].input == "Água ferve a que temperatura ao nível do mar?"
    assert [c.id for c in ds.cases] == ["mc-test-00001", "mc-test-00002", "mc-test-00003"]  # no id mapped


def test_parquet_without_pyarrow_or_with_it(tmp_path: Path) -> None:
    try:
        import pyarrow as pa  # type: ignore[import-not-found]
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        p = tmp_path / "x.parquet"
        p.write_bytes(b"PAR1")
        with pytest.raises(BadInput) as e:
            get_importer("jsonl")(p, field_map={"input": "q"})
        assert str(e.value) == (f"{p}: reading Parquet needs pyarrow; install it (pip install pyarrow) "
                                "or export the data as JSON Lines")
        return
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"q": ["one?", "two?"], "a": ["1", "2"]}), p)
    ds = Dataset.model_validate(get_importer("jsonl")(p, field_map={"input": "q", "answer": "a"}))
    assert [c.checks[0].value for c in ds.cases] == ["1", "2"]
    # an HF-datasets style export: a list column of choices, an integer label, nested struct fields
    mc = tmp_path / "mc.parquet"
    pq.write_table(pa.table({"question": [{"stem": "Capital of France?"}, {"stem": "2 + 2?"}],
                             "options": [["Paris", "Rome"], ["3", "4"]], "label": [0, 1],
                             "subject": ["geo", "math"]}), mc)
    ds = Dataset.model_validate(get_importer("jsonl")(
        mc, field_map={"input": "question.stem", "choices": "options", "answer": "label", "category": "subject"}))
    assert [(c.input, c.choices, c.answer_index(), c.category) for c in ds.cases] == [
        ("Capital of France?", ["Paris", "Rome"], 0, "geo"), ("2 + 2?", ["3", "4"], 1, "math")]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(BadInput) as e:
        get_importer("jsonl")(broken, field_map={"input": "q"})
    assert "not a readable Parquet file" in str(e.value)


def test_openai_evals_messages_and_ideal_lists() -> None:
    data = get_importer("openai-evals")(DATA / "openai_evals" / "samples.jsonl")
    ds = Dataset.model_validate(data)
    first, second, third = ds.cases
    assert [m.role for m in first.input] == ["system", "user"]  # type: ignore[union-attr]
    assert first.checks[0].type == "equals_any" and first.checks[0].values == ["blue"]
    assert [m.role for m in second.input] == ["system", "user", "assistant", "user"]  # type: ignore[union-attr]
    assert second.checks[0].values == ["Japan", "Nippon"] and second.metadata["example_messages_as_turns"] == 2
    assert third.input == "Q: 2+2=\nA:" and third.ideal == "4"
    assert data["source"]["notes"] == ["2 system message(s) named example_user/example_assistant became "
                                       "user/assistant turns"]


def test_promptfoo_assertions_mapped_and_unsupported_kept() -> None:
    data = get_importer("promptfoo")(DATA / "promptfoo" / "tests.yaml")
    ds = Dataset.model_validate(data)
    paris, week, js, tone = ds.cases
    assert paris.input == "What is the capital of France?" and paris.must_not == ["london"]
    assert (paris.checks[0].type, paris.checks[0].ignore_case) == ("contains", True)
    assert (week.checks[0].type, week.checks[0].value, week.checks[0].ignore_case) == ("equals", "7", False)
    assert [c.type for c in js.checks] == ["json_schema", "regex"] and js.checks[0].schema_ == {
        "type": "object", "required": ["ok"]}
    assert [c.type for c in tone.checks] == ["contains"]
    assert [u["type"] for u in tone.metadata["unsupported_asserts"]] == ["llm-rubric", "javascript"]
    assert tone.metadata["source_line"] == 26 and tone.metadata["description"] == "tone judged by a model"
    assert data["source"]["notes"] == ["2 unsupported assertion(s) not checked: javascript ×1, llm-rubric ×1 "
                                       "(listed in each case's metadata.unsupported_asserts)"]


def test_promptfoo_config_default_test_and_input_var() -> None:
    src = DATA / "promptfoo" / "promptfooconfig.yaml"
    with pytest.raises(BadInput) as e:
        get_importer("promptfoo")(src)
    assert str(e.value) == (f"{src}:line 13: test has vars ['product', 'query']; say which is the input "
                            "with --map input=NAME")
    ds = Dataset.model_validate(get_importer("promptfoo")(src, field_map={"input": "query"}))
    reset, water = ds.cases
    assert reset.input == "How do I reset it?" and reset.metadata["vars"]["product"] == "Acme Router"
    assert (reset.checks[0].type, reset.checks[0].pattern) == ("not_regex", "(?i)as an ai")  # from defaultTest
    assert water.metadata["unsupported_asserts"][0]["type"] == "similar"
    assert water.metadata["unsupported_asserts"][0]["why"] == "has threshold"


@pytest.mark.parametrize(("fmt", "name", "content", "fm", "where", "what"), [
    ("jsonl", "a.jsonl", '{"q": "x"}\n[1]\n', {"input": "q"}, ":line 2", "must be a JSON object"),
    ("jsonl", "a.jsonl", '{"q": "x"}\n{"q": ""}\n', {"input": "q"}, ":line 2", "non-empty string"),
    ("jsonl", "a.jsonl", '{"q": "x", "a": true}\n', {"input": "q", "answer": "a"}, ":line 1", "true/false"),
    ("jsonl", "a.jsonl", '{"q": "x", "c": ["a", "b"], "a": "C"}\n', {"input": "q", "answer": "a", "choices": "c"},
     ":line 1", "not a valid case"),
    ("jsonl", "a.jsonl", '{"q": "x"}\n', {}, ":--map", "say which field holds the input"),
    ("openai-evals", "s.jsonl", '{"input": [{"role": "user", "content": "hi"}], "ideal": "x"}\n{"ideal": "y"}\n',
     None, ":line 2", "needs 'input'"),
    ("openai-evals", "s.jsonl", '{"input": [{"role": "user", "content": "hi"}], "ideal": [3]}\n', None, ":line 1",
     "'ideal' must be"),
    ("openai-evals", "s.jsonl", '{"input": [{"role": "system", "name": "x", "content": "hi"}], "ideal": "y"}\n',
     None, ":line 1", "name 'x' is not supported"),
    ("openai-evals", "s.jsonl", "\n\n{oops\n", None, ":line 3", "not valid JSON"),
    ("promptfoo", "t.yaml", "- vars: {q: a}\n  assert: [{type: regex, value: '('}]\n", None, ":line 1",
     "invalid regular expression"),
    ("promptfoo", "t.yaml", "- vars: {q: a}\n- vars: {q: [a, b]}\n", None, ":line 2", "is a list"),
    ("promptfoo", "t.yaml", "- vars: {q: a}\n  assert: [{type: equals\n", None, ":line 3", "not valid YAML"),
    ("promptfoo", "t.yaml", "tests: file://tests/*.yaml\n", None, "", "inline"),
    ("promptfoo", "t.yaml", "- vars: {q: a}\n- vars: {q: b}\n  assert: 3\n", None, ":line 2", "'assert' a list"),
    ("promptfoo", "t.yaml", "defaultTest: {vars: [x]}\ntests:\n  - vars: {q: a}\n", None, ":line 3", "defaultTest"),
])
def test_bad_sources_name_file_and_line(tmp_path: Path, fmt: str, name: str, content: str,
                                        fm: dict[str, str] | None, where: str, what: str) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    kw = {"field_map": fm} if fm is not None else {}
    with pytest.raises(BadInput) as e:
        get_importer(fmt)(src, **kw)
    msg = str(e.value)
    assert msg.startswith(f"{src}{where}: ") and what in msg and "\n" not in msg, msg


def test_cli_bad_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    src = tmp_path / "bad.jsonl"
    src.write_text('{"question": "ok"}\n{"question": 5}\n')
    out = tmp_path / "datasets" / "x.yaml"
    r = project.cli("dataset", "import", "jsonl", str(src), "--map", "input=question", "--out", str(out))
    assert r.returncode == 2 and f"{src}:line 2:" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    r = project.cli("dataset", "import", "jsonl", str(src), "--map", "input", "--out", str(out))
    assert r.returncode == 2 and "'input' is not KEY=FIELD" in r.stderr
    r = project.cli("dataset", "import", "gsm8k", str(src), "--map", "input=q", "--out", str(out))
    assert r.returncode == 2 and "--map applies to the jsonl and promptfoo formats" in r.stderr


def _rules_only_spec(tmp_path: Path, name: str, url: str) -> Path:
    spec = {"name": name, "dataset": f"../datasets/{name}.yaml",
            "prompt": {"version": "1", "template": "{{ input }}"},
            "candidates": [{"model": "openai/m", "alias": "m", "api_base": url}],
            "retries": {"attempts": 1}}
    sp = tmp_path / "runs" / f"{name}.yaml"
    sp.write_text(yaml.safe_dump(spec, sort_keys=False))
    return sp


def test_imported_promptfoo_and_openai_evals_run(tmp_path: Path) -> None:
    rules = [
        {"model": "^m$", "contains": "capital of France", "reply": "It is Paris."},  # icontains passes
        {"model": "^m$", "contains": "days are in a week", "reply": " 7\n"},  # equals (stripped)
        {"model": "^m$", "contains": "as JSON", "reply": '{"ok": false}'},  # schema ok, regex fails
        {"model": "^m$", "contains": "polite refusal", "reply": "Sorry, I cannot help with that."},
        {"model": "^m$", "contains": "Kyoto", "reply": "nippon"},  # equals_any, second value, case ignored
        {"model": "^m$", "contains": "clear daytime sky", "reply": "Blue."},  # the full stop is not normalised
        {"model": "^m$", "contains": "2+2", "reply": "4"},
    ]
    with FakeServer({"rules": rules}) as srv:
        project = Project(tmp_path, srv.url)
        out = tmp_path / "datasets" / "tests.yaml"
        r = project.cli("dataset", "import", "promptfoo", str(DATA / "promptfoo" / "tests.yaml"), "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert "note: 2 unsupported assertion(s) not checked: javascript ×1, llm-rubric ×1" in r.stdout
        assert yaml.safe_load(out.read_text())["source"]["notes"][0].startswith("2 unsupported assertion(s)")
        r, s = project.cli_json("run", str(_rules_only_spec(tmp_path, "tests", srv.url)))
        assert r.returncode == 0, r.stderr
        [m] = s["models"]
        assert (m["passed"], m["failed"]) == (3, 1)
        r, show = project.cli_json("runs", "show", s["conditions"]["run_id"], "--case", "tests-0003")
        assert r.returncode == 0, r.stderr
        assert "no match" in json.dumps(show)

        out = tmp_path / "datasets" / "samples.yaml"
        r = project.cli("dataset", "import", "openai-evals", str(DATA / "openai_evals" / "samples.jsonl"),
                        "--out", str(out))
        assert r.returncode == 0, r.stderr
        r, s = project.cli_json("run", str(_rules_only_spec(tmp_path, "samples", srv.url)))
        assert r.returncode == 0, r.stderr
        [m] = s["models"]
        assert (m["passed"], m["failed"]) == (2, 1)
        sent = [q.messages for q in srv.requests() if "Kyoto" in json.dumps(q.messages)]
        assert [x["role"] for x in sent[0]] == ["system", "user", "assistant", "user"]
