"""The GSM8K importer and numeric scoring on the real 500-problem excerpt (../shared/data/gsm8k/).

The reference solutions themselves, served as answers by our OpenAI-compatible server, must score
100%; the same solutions with the final number changed, 0%. The run has no judge: one call per case.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from conftest import Project
from fakeserver import FakeServer

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "train_500.jsonl"
if not GSM8K.exists():  # worktrees live in /work/wt/NAME; the main checkout in /work/main
    GSM8K = Path("/work/shared/data/gsm8k/train_500.jsonl")


def _rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]


def _changed(answer: str) -> str:
    head, final = answer.rsplit("####", 1)
    return f"{head}#### {int(final.strip().replace(',', '')) + 1}"


@pytest.mark.skipif(not GSM8K.exists(), reason="the GSM8K excerpt is in ../shared/data/gsm8k")
def test_gsm8k_import_and_reference_answers_score_100_and_changed_0(tmp_path: Path) -> None:
    rows = _rows()
    assert len(rows) == 500
    rules = []
    for row in rows:
        rules.append({"model": "^reference$", "contains": row["question"], "reply": row["answer"]})
        rules.append({"model": "^changed$", "contains": row["question"], "reply": _changed(row["answer"])})
    with FakeServer({"rules": rules, "default_reply": "no rule matched"}) as srv:
        project = Project(tmp_path, srv.url)
        out = tmp_path / "datasets" / "gsm8k.yaml"
        r, info = project.cli_json("dataset", "import", "gsm8k", str(GSM8K), "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert info["cases"] == 500
        assert info["source"]["sha256"] == hashlib.sha256(GSM8K.read_bytes()).hexdigest()
        assert info["source"]["licence"].startswith("MIT") and info["source"]["format"] == "gsm8k"
        data = yaml.safe_load(out.read_text())
        by_id = {c["id"]: c for c in data["cases"]}
        first = by_id["gsm8k-00001"]
        assert first["input"] == rows[0]["question"] and first["ideal"] == rows[0]["answer"]
        assert first["checks"] == [{"type": "numeric", "value": 72}]
        thousands = next(c for c in data["cases"] if c["ideal"].endswith("#### 1,080"))  # separators in the source
        assert thousands["checks"][0]["value"] == 1080 and thousands["metadata"]["final_answer"] == "1080"

        spec = {
            "name": "gsm8k-reference", "dataset": "../datasets/gsm8k.yaml",
            "prompt": {"version": "1", "template": "{{ input }}"},
            "candidates": [{"model": "openai/reference", "alias": "reference", "api_base": srv.url},
                           {"model": "openai/changed", "alias": "changed", "api_base": srv.url}],
            "sampling": {"temperature": 0},
            "concurrency": {"global": 16, "per_model": 16}, "timeout_s": 30,
            "retries": {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        }
        (tmp_path / "runs").mkdir(exist_ok=True)
        sp = tmp_path / "runs" / "gsm8k.yaml"
        sp.write_text(yaml.safe_dump(spec, sort_keys=False))
        r, summary = project.cli_json("run", str(sp), "--call-workers", "0")
        assert r.returncode == 0, r.stderr[-2000:]
        assert srv.stats()["by_model"] == {"reference": 500, "changed": 500}  # one call per case, no judge
        models = {m["model_key"]: m for m in summary["models"]}
        assert (models["reference"]["passed"], models["reference"]["errors"]) == (500, 0)
        assert (models["changed"]["passed"], models["changed"]["failed"]) == (0, 500)
        assert summary["scoring"]["method"] == "scored by rules only"

        import sqlite3

        con = sqlite3.connect(project.ledger)
        recs = con.execute("SELECT case_id, model_key, rules, scored_by FROM result").fetchall()
        con.close()
        assert len(recs) == 1000 and {x[3] for x in recs} == {"rules"}
        for case_id, model_key, rules_json, _ in recs:
            [outcome] = json.loads(rules_json)
            want = by_id[case_id]["metadata"]["final_answer"]
            assert outcome["extracted_by"] == "after ####"
            expected = want if model_key == "reference" else str(int(want) + 1)
            assert outcome["extracted"] == expected, (case_id, model_key, outcome)


def test_gsm8k_limit_seed_and_ids(tmp_path: Path) -> None:
    from benchrun.importers import get_importer

    src = tmp_path / "g.jsonl"
    src.write_text("".join(json.dumps({"question": f"q{i}?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}) + "\n"
                           for i in range(10)))
    imp = get_importer("gsm8k")
    a = imp(src, limit=3, seed=7)
    b = imp(src, limit=3, seed=7)
    assert [c["id"] for c in a["cases"]] == [c["id"] for c in b["cases"]] and len(a["cases"]) == 3
    assert [c["id"] for c in imp(src, limit=2)["cases"]] == ["gsm8k-00001", "gsm8k-00002"]
    negative = tmp_path / "n.jsonl"
    negative.write_text(json.dumps({"question": "q?", "answer": "0 - 3 = -3\n#### -3"}) + "\n"
                        + json.dumps({"question": "r?", "answer": "1/2 = 0.5\n#### 0.5"}) + "\n")
    cases = imp(negative)["cases"]
    assert [c["checks"][0]["value"] for c in cases] == [-3, 0.5]


@pytest.mark.parametrize(("content", "where", "what"), [
    ('{"question": "q", "answer": "no final line"}\n', ":line 1", "#### N"),
    ('{"question": "q", "answer": "x\\n#### twelve"}\n', ":line 1", "#### N"),
    ('{"question": "q", "answer": "#### 1"}\nnot json\n', ":line 2", "not valid JSON"),
    ('{"question": "", "answer": "#### 1"}\n', ":line 1", "question"),
    ('["q", "a"]\n', ":line 1", "JSON object"),
    ("\n\n", "", "no problems"),
])
def test_bad_gsm8k_files_exit_2_naming_file_and_line(tmp_path: Path, content: str, where: str, what: str) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    project = Project(tmp_path, "http://127.0.0.1:9")
    out = tmp_path / "datasets" / "g.yaml"
    r = project.cli("dataset", "import", "gsm8k", str(src), "--out", str(out))
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"bad.jsonl{where}" in line and what in line, line
    assert not out.exists()
