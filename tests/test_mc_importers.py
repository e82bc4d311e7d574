"""MMLU (original headerless CSV per subject) and ARC (original JSON Lines) importers, on fixtures in
their exact layouts (tests/data/mmlu, tests/data/arc), and an imported MMLU set run end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from benchrun.errors import BadInput
from benchrun.importers import get_importer
from benchrun.spec import Dataset
from conftest import Project
from fakeserver import FakeServer

DATA = Path(__file__).parent / "data"


def test_mmlu_directory_subjects_become_categories() -> None:
    data = get_importer("mmlu")(DATA / "mmlu")
    ds = Dataset.model_validate(data)
    assert len(ds.cases) == 7
    assert {c.category for c in ds.cases} == {"anatomy", "high_school_geography"}
    first = ds.case("anatomy-0001")
    assert first.choices == ["Femur", "Sternum", "Humerus", "Radius"] and first.answer_index() == 1
    assert ds.case("anatomy-0002").input == 'The "funny bone" sensation comes from striking which nerve?'
    assert ds.case("high_school_geography-0001").choices[0] == "Paraná"  # UTF-8 kept
    proj = ds.case("high_school_geography-0002")  # a quoted field with a newline spans lines 2-3
    assert proj.input == "A map projection that preserves area, but distorts shape, is called:"
    assert proj.answer_index() == 1
    files = sorted((DATA / "mmlu").glob("*.csv"))
    want = hashlib.sha256("".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files)
                          .encode()).hexdigest()
    assert data["source"]["sha256"] == want and data["source"]["format"] == "mmlu"
    one = get_importer("mmlu")(DATA / "mmlu" / "anatomy_test.csv")
    assert len(one["cases"]) == 4 and one["source"]["sha256"] == hashlib.sha256(
        (DATA / "mmlu" / "anatomy_test.csv").read_bytes()).hexdigest()


def test_arc_letter_and_digit_labels() -> None:
    data = get_importer("arc")(DATA / "arc" / "ARC-Challenge-Test.jsonl")
    ds = Dataset.model_validate(data)
    assert [c.answer_index() for c in ds.cases] == [2, 3, 0, 3]
    nail = ds.case("NYSEDREGENTS_2015_4_29")
    assert nail.choices[3] == "an iron nail" and nail.metadata["answer_key"] == "4"
    assert [len(c.choices or []) for c in ds.cases] == [4, 4, 3, 5]
    assert {c.category for c in ds.cases} == {"arc-challenge"}


@pytest.mark.parametrize(("fmt", "name", "content", "where", "what"), [
    ("mmlu", "x_test.csv", "Q?,a,b,c,d\n", ":line 1", "expected 6 columns"),
    ("mmlu", "x_test.csv", "Q?,a,b,c,d,A\nR?,a,b,c,d,E\n", ":line 2", "answer must be A, B, C or D"),
    ("mmlu", "x_test.csv", "Q?,a,,c,d,A\n", ":line 1", "empty"),
    ("arc", "a.jsonl", '{"id": "x", "question": {"stem": "s", "choices": [{"label": "A", "text": "t"}, '
                       '{"label": "B", "text": "u"}]}, "answerKey": "C"}\n', ":line 1", "answerKey 'C'"),
    ("arc", "a.jsonl", '{"id": "x", "question": "flat"}\n', ":line 1", "expected"),
    ("arc", "a.jsonl", "{nope\n", ":line 1", "not valid JSON"),
])
def test_bad_sources_name_file_and_line(tmp_path: Path, fmt: str, name: str, content: str, where: str,
                                        what: str) -> None:
    src = tmp_path / name
    src.write_text(content)
    with pytest.raises(BadInput) as e:
        get_importer(fmt)(src)
    assert f"{name}{where}" in str(e.value) and what in str(e.value), str(e.value)


def test_imported_mmlu_run_by_subject_with_unparsed(tmp_path: Path) -> None:
    # the model knows anatomy (answers the right letter) and dodges geography (names no choice)
    data = get_importer("mmlu")(DATA / "mmlu")
    rules = []
    for c in data["cases"]:
        reply = f"Answer: {c['answer']}" if c["category"] == "anatomy" else "I cannot tell."
        rules.append({"model": "^m$", "contains": c["input"], "reply": reply})
    with FakeServer({"rules": rules}) as srv:
        project = Project(tmp_path, srv.url)
        out = tmp_path / "datasets" / "mmlu.yaml"
        r = project.cli("dataset", "import", "mmlu", str(DATA / "mmlu"), "--out", str(out))
        assert r.returncode == 0, r.stderr
        spec = {"name": "mmlu", "dataset": "../datasets/mmlu.yaml",
                "prompt": {"version": "1", "template": "{{ input }}\n{{ choices_block }}\nAnswer:"},
                "candidates": [{"model": "openai/m", "alias": "m", "api_base": srv.url}],
                "retries": {"attempts": 1}}
        (tmp_path / "runs").mkdir(exist_ok=True)
        sp = tmp_path / "runs" / "mmlu.yaml"
        sp.write_text(yaml.safe_dump(spec, sort_keys=False))
        r, s = project.cli_json("run", str(sp))
        assert r.returncode == 0, r.stderr
        [m] = s["models"]
        assert (m["passed"], m["failed"], m["unparsed"]) == (4, 3, 3)
        [b] = s["breakdown"]
        assert b["by_category"]["anatomy"] == {"n": 4, "failed": 0, "errors": 0}
        assert b["by_category"]["high_school_geography"] == {"n": 3, "failed": 3, "errors": 0}
        sent = json.dumps([q.messages for q in srv.requests()])
        assert "A) Femur\\nB) Sternum\\nC) Humerus\\nD) Radius\\nAnswer:" in sent
        cats = s["categories"]["m"]
        assert cats["n_categories"] == 2 and cats["micro"]["estimate"] == 4 / 7
        assert cats["macro"]["estimate"] == (1.0 + 0.0) / 2  # anatomy 4/4, geography 0/3
        assert cats["by_category"]["anatomy"]["scored"] == 4
        r = project.cli("runs", "show", s["conditions"]["run_id"])
        assert "over 2 categories: micro 57.1%" in r.stdout and "macro 50.0%" in r.stdout
