"""Loading, validation and canonical hashing of datasets, rubrics and run specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchrun.errors import BadInput
from benchrun.spec import load_dataset, load_rubric, load_run_spec
from conftest import RUBRIC, make_cases


def write_yaml(p: Path, data: object) -> Path:
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_dataset_hash_ignores_key_order_and_format(tmp_path: Path) -> None:
    cases = make_cases(4)
    a = write_yaml(tmp_path / "a.yaml", {"name": "d", "version": "1", "description": "x", "cases": cases})
    # same content: keys reversed, flow style, extra blank lines and comments
    rev = [dict(reversed(list(c.items()))) for c in cases]
    text = "# a comment\n\n" + yaml.safe_dump({"cases": rev, "description": "x", "version": "1", "name": "d"},
                                            default_flow_style=True)
    b = tmp_path / "b.yaml"
    b.write_text(text)
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps(x) for x in [{"version": "1", "name": "d", "description": "x"}, *rev]) + "\n")
    ha, hb, hc = load_dataset(a).hash, load_dataset(b).hash, load_dataset(jl).hash
    assert ha == hb == hc
    assert len(ha) == 64


def test_dataset_hash_changes_with_any_case_change(tmp_path: Path) -> None:
    cases = make_cases(4)
    base = load_dataset(write_yaml(tmp_path / "a.yaml", {"name": "d", "version": "1", "cases": cases})).hash
    seen = {base}
    for field, value in (("input", "Different question?"), ("severity", "high"), ("ideal", "other"),
                         ("must_not", ["x"]), ("tags", ["t"])):
        changed = [dict(c) for c in cases]
        changed[2][field] = value
        h = load_dataset(write_yaml(tmp_path / f"{field}.yaml", {"name": "d", "version": "1", "cases": changed})).hash
        assert h not in seen, field
        seen.add(h)


def test_rubric_hash_changes_with_content(tmp_path: Path) -> None:
    a = load_rubric(write_yaml(tmp_path / "r.yaml", RUBRIC))
    changed = dict(RUBRIC, pass_rule={"min_score": 3, "forbidden_failure_modes": ["unsafe_account_action"]})
    b = load_rubric(write_yaml(tmp_path / "r2.yaml", changed))
    assert a.hash != b.hash
    assert a.judge_prompt_hash == b.judge_prompt_hash  # the prompt did not change
    reordered = dict(reversed(list(RUBRIC.items())))
    assert load_rubric(write_yaml(tmp_path / "r3.yaml", reordered)).hash == a.hash


def test_csv_dataset_loads(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text(
        "# name: billing\n# version: 2\n# description: csv form\n"
        "id,input,ideal,must_include,must_not,category,severity,tags,source,added,author,checks\n"
        'a1,"Refund me, please",explain,refund|ticket,I have refunded,refund,high,typical,hand,2026-01-02,ana,'
        '"[{""type"": ""max_words"", ""max"": 80}]"\n'
    )
    ds = load_dataset(p)
    assert ds.name == "billing" and ds.version == "2"
    c = ds.cases[0]
    assert c.input == "Refund me, please"
    assert c.must_include == ["refund", "ticket"]
    assert c.checks[0].type == "max_words" and c.checks[0].max == 80
    assert str(c.provenance.added) == "2026-01-02"


def test_multiturn_input(tmp_path: Path) -> None:
    case = {"id": "m1", "input": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                  {"role": "user", "content": "refund?"}]}
    ds = load_dataset(write_yaml(tmp_path / "m.yaml", {"name": "d", "version": "1", "cases": [case]}))
    assert isinstance(ds.cases[0].input, list) and len(ds.cases[0].input) == 3


BAD_DATASETS = [
    ("bad_yaml", "name: d\nversion: 1\ncases:\n  - id: a\n    input: [unclosed\n", "line"),
    ("dup_id", None, "duplicate case id 'case-001'"),
    ("unknown_field", None, "unknown field"),
    ("bad_severity", None, "severity"),
    ("empty", "", "empty"),
    ("no_cases", "name: d\nversion: 1\n", "no 'cases'"),
    ("bad_regex", None, "invalid regular expression"),
    ("dup_key", "name: d\nversion: 1\nname: e\ncases: []\n", "duplicate key"),
    ("last_not_user", None, "last input message"),
    # a raw control character: PyYAML's reader refused it while the loader was built, outside the YAML error
    # handling, so it crashed with ReaderError instead of naming the file (either parser, libyaml or Python)
    ("control_char", 'name: d\nversion: 1\ncases:\n  - id: a\n    input: "hi\x07"\n', "invalid YAML: unacceptable character"),
]


@pytest.mark.parametrize(("kind", "text", "expect"), BAD_DATASETS)
def test_malformed_dataset_messages(tmp_path: Path, kind: str, text: str | None, expect: str) -> None:
    p = tmp_path / f"{kind}.yaml"
    if text is not None:
        p.write_text(text)
    else:
        cases = make_cases(3)
        if kind == "dup_id":
            cases[2]["id"] = "case-001"
        elif kind == "unknown_field":
            cases[1]["severty"] = "high"
        elif kind == "bad_severity":
            cases[1]["severity"] = "critical"
        elif kind == "bad_regex":
            cases[1]["must_not"] = [{"regex": "(unclosed"}]
        elif kind == "last_not_user":
            cases[1]["input"] = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        write_yaml(p, {"name": "d", "version": "1", "cases": cases})
    with pytest.raises(BadInput) as ei:
        load_dataset(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)), msg
    assert expect in msg, msg
    if kind in ("unknown_field", "bad_severity", "bad_regex", "last_not_user"):
        assert "case case-001" in msg and "line" in msg, msg  # names the case id and its line


def test_malformed_jsonl_and_encoding(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"name": "d", "version": "1"}\n{"id": "a", "input": "x"}\n{"id": "b", "input": \n')
    with pytest.raises(BadInput, match=r"d\.jsonl:line 3: invalid JSON"):
        load_dataset(p)
    q = tmp_path / "latin.yaml"
    q.write_bytes("name: d\nversion: 1\ncases:\n  - id: a\n    input: caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInput, match=r"latin\.yaml:line 5: not valid UTF-8"):
        load_dataset(q)


def test_malformed_rubric(tmp_path: Path) -> None:
    bad = dict(RUBRIC, scale={1: "a", 2: "b", 3: "c"})
    with pytest.raises(BadInput, match="scale must define exactly"):
        load_rubric(write_yaml(tmp_path / "r.yaml", bad))
    bad2 = dict(RUBRIC, pass_rule={"min_score": 4, "forbidden_failure_modes": ["nope"]})
    with pytest.raises(BadInput, match="unknown failure modes"):
        load_rubric(write_yaml(tmp_path / "r2.yaml", bad2))
    bad3 = dict(RUBRIC, failure_modes=["unsafe_account_action"])
    with pytest.raises(BadInput, match="must include 'none'"):
        load_rubric(write_yaml(tmp_path / "r3.yaml", bad3))
    bad4 = dict(RUBRIC, judge_prompt="{{ unclosed")
    with pytest.raises(BadInput, match="judge_prompt is not a valid template"):
        load_rubric(write_yaml(tmp_path / "r4.yaml", bad4))


def test_spec_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "d", "version": "1", "cases": make_cases(2)}))
    write_yaml(tmp_path / "r.yaml", RUBRIC)
    spec = {"name": "s", "dataset": "d.yaml", "rubric": "r.yaml", "judge": {"model": "openai/j"},
            "candidates": [{"model": "openai/a"}, {"model": "openai/a"}]}
    p = write_yaml(tmp_path / "s.yaml", spec)
    with pytest.raises(BadInput, match="give each an 'alias'"):
        load_run_spec(p)
    spec["candidates"] = [{"model": "openai/a", "temprature": 0.3}]
    with pytest.raises(BadInput, match=r"s\.yaml:line \d+: candidates\.0\.temprature: unknown field"):
        load_run_spec(write_yaml(p, spec))
    spec["candidates"] = [{"model": "openai/a", "api_key_env": "sk-live-abc"}]
    with pytest.raises(BadInput, match="NAME of an environment variable"):
        load_run_spec(write_yaml(p, spec))
    spec["candidates"] = [{"model": "openai/a"}]
    spec["dataset"] = "missing.yaml"
    with pytest.raises(BadInput, match=r"dataset file .* not found"):
        load_run_spec(write_yaml(p, spec))


def test_select_subset(tmp_path: Path) -> None:
    cases = make_cases(6)
    cases[0]["tags"] = ["typical"]
    cases[3]["tags"] = ["typical", "edge"]
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "d", "version": "1", "cases": cases}))
    write_yaml(tmp_path / "r.yaml", RUBRIC)
    spec = {"name": "s", "dataset": "d.yaml", "rubric": "r.yaml", "judge": {"model": "openai/j"},
            "candidates": [{"model": "openai/a"}], "select": {"tags": ["typical"]}}
    loaded = load_run_spec(write_yaml(tmp_path / "s.yaml", spec))
    assert [c.id for c in loaded.cases()] == ["case-000", "case-003"]
    spec["select"] = {"severities": ["high"], "limit": 1}
    assert [c.id for c in load_run_spec(write_yaml(tmp_path / "s.yaml", spec)).cases()] == ["case-000"]
    spec["select"] = {"ids": ["case-001", "nope"]}
    with pytest.raises(BadInput, match=r"unknown cases \['nope'\]"):
        load_run_spec(write_yaml(tmp_path / "s.yaml", spec))
    spec["select"] = {"tags": ["missing"]}
    with pytest.raises(BadInput, match="matches no case"):
        load_run_spec(write_yaml(tmp_path / "s.yaml", spec))
