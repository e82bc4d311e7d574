"""Few-shot exemplars: drawn deterministically, never the case itself, part of the exact messages
recorded (and sent), and a change of few-shot settings is a change of conditions in `diff`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from benchrun import runner
from benchrun.spec import LoadedSpec, load_run_spec
from conftest import Project
from fakeserver import FakeServer


def _cases() -> list[dict[str, Any]]:
    out = [{"id": f"t{i}", "input": f"What is {i} + {i}?", "ideal": f"{2 * i}", "tags": ["train"],
            "checks": [{"type": "numeric", "value": 2 * i}]} for i in range(1, 7)]
    out += [{"id": f"q{i}", "input": f"What is {i} + 1?", "checks": [{"type": "numeric", "value": i + 1}]}
            for i in range(1, 4)]
    return out


def _spec(project: Project, **fewshot: Any) -> Path:
    project.write_dataset(_cases())
    p = project.write_spec(prompt={"version": "1", "system": "Answer with a number.", "template": "Q: {{ input }}"},
                           candidates=[{"model": "openai/good", "alias": "good", "api_base": project.url}],
                           fewshot=fewshot)
    d = yaml.safe_load(p.read_text())
    del d["rubric"], d["judge"]
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def test_exemplars_deterministic_never_the_case_and_from_the_split(project: Project) -> None:
    loaded = load_run_spec(_spec(project, n=3, split="train", seed=5))
    for case in loaded.dataset.cases:
        shots = runner.fewshot_exemplars(loaded, case)
        ids = [c.id for c, _ in shots]
        assert len(ids) == 3 and case.id not in ids and all(i.startswith("t") for i in ids)
        assert ids == [c.id for c, _ in runner.fewshot_exemplars(loaded, case)]  # same settings, same draw
    draws = {tuple(c.id for c, _ in runner.fewshot_exemplars(loaded, loaded.dataset.case(f"q{i}"))) for i in (1, 2, 3)}
    assert len(draws) > 1  # drawn per case, not one fixed set
    other = load_run_spec(_spec(project, n=3, split="train", seed=6))
    assert any([c.id for c, _ in runner.fewshot_exemplars(loaded, k)] != [c.id for c, _ in
               runner.fewshot_exemplars(other, k)] for k in loaded.dataset.cases)


def test_multiturn_and_inline_messages(project: Project) -> None:
    loaded = load_run_spec(_spec(project, n=2, split="train", seed=1))
    case = loaded.dataset.case("q1")
    msgs = runner.candidate_messages(loaded, loaded.spec.candidates[0], case)
    shots = runner.fewshot_exemplars(loaded, case)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[1]["content"] == f"Q: {shots[0][0].input}" and msgs[2]["content"] == shots[0][0].ideal
    assert msgs[-1]["content"] == "Q: What is 1 + 1?"
    inline = load_run_spec(_spec(project, n=2, split="train", seed=1, **{"as": "inline"}))
    msgs = runner.candidate_messages(inline, inline.spec.candidates[0], inline.dataset.case("q1"))
    assert [m["role"] for m in msgs] == ["system", "user"]
    (a, a_ans), (b, b_ans) = shots
    assert msgs[1]["content"] == f"Q: {a.input}\n{a_ans}\n\nQ: {b.input}\n{b_ans}\n\nQ: What is 1 + 1?"


def test_fewshot_recorded_sent_and_diffed(project: Project, server: FakeServer) -> None:
    server.set_config({"rules": [{"model": "good", "reply": "echo {last_user}"}]})
    r, s1 = project.cli_json("run", str(_spec(project, n=2, split="train", seed=1)))
    assert r.returncode == 0, r.stderr
    r, s2 = project.cli_json("run", str(_spec(project, n=3, split="train", seed=1)))
    assert r.returncode == 0, r.stderr
    a, b = s1["conditions"]["run_id"], s2["conditions"]["run_id"]
    con = sqlite3.connect(project.ledger)
    recorded = [json.loads(m) for (m,) in con.execute("SELECT messages FROM result WHERE run_id = ?", (a,))]
    con.close()
    sent = [q.messages for q in server.requests()][:9]
    assert sorted(map(json.dumps, recorded)) == sorted(map(json.dumps, sent))  # exactly what was sent
    assert all(len(m) == 1 + 2 * 2 + 1 for m in recorded)
    assert s1["conditions"]["spec_hash"] != s2["conditions"]["spec_hash"]
    r, d = project.cli_json("diff", a, b)
    [fs] = [x for x in d["differences"] if x["field"] == "fewshot"]
    assert fs["section"] == "prompts" and fs["affects_scores"] and '"n": 2' in fs["a"] and '"n": 3' in fs["b"]


def test_too_few_exemplars_is_bad_input(project: Project, server: FakeServer) -> None:
    spec = _spec(project, n=6, split="train")  # t1..t6 are 6; a train case has only 5 others
    r = project.cli("run", str(spec))
    assert r.returncode == 2 and "case t1" in r.stderr and "fewshot needs 6 exemplars but only 5" in r.stderr
    assert server.stats()["total"] == 0


def test_spec_without_fewshot_dumps_as_before(project: Project) -> None:
    project.setup()
    d = load_run_spec(project.write_spec()).spec.model_dump(mode="json", by_alias=True)
    assert "fewshot" not in d


def _file_spec(project: Project, pool_cases: list[dict[str, Any]], **fewshot: Any) -> Path:
    (project.root / "datasets" / "shots.yaml").write_text(yaml.safe_dump(
        {"name": "shots", "version": "1", "cases": pool_cases}))
    return _spec(project, **{"from": "../datasets/shots.yaml", **fewshot})


def _pool(answer_of_7: str = "14") -> list[dict[str, Any]]:
    pool = [{"id": f"s{i}", "input": f"What is {i} times 2?", "ideal": str(2 * i), "tags": ["train"]}
            for i in range(5, 9)]
    pool[2]["ideal"] = answer_of_7  # s7
    pool.append({"id": "q1", "input": "same id as a test case", "ideal": "x", "tags": ["train"]})
    pool.append({"id": "dup", "input": "What is 2 + 1?", "ideal": "3", "tags": ["train"]})  # q2's own question
    return pool


def test_fewshot_from_file_never_the_case_hashed_snapshotted_and_diffed(project: Project, server: FakeServer) -> None:
    spec = _file_spec(project, _pool(), n=4, split="train", seed=2)
    loaded = load_run_spec(spec)
    for case in loaded.dataset.cases:
        ids = [c.id for c, _ in runner.fewshot_exemplars(loaded, case)]
        assert len(ids) == 4 and set(ids) <= {"s5", "s6", "s7", "s8", "q1", "dup"}
        assert case.id not in ids
        if case.id == "q2":  # a case in the other file asking the same question is never its exemplar
            assert "dup" not in ids
    assert any("dup" in [c.id for c, _ in runner.fewshot_exemplars(loaded, k)] for k in loaded.dataset.cases)
    q2 = loaded.dataset.case("q2")
    msgs = runner.candidate_messages(loaded, loaded.spec.candidates[0], q2)
    assert [m["content"] for m in msgs[1:9:2]] == [f"Q: {c.input}" for c, _ in runner.fewshot_exemplars(loaded, q2)]
    assert load_run_spec(spec).spec_hash == loaded.spec_hash
    changed = load_run_spec(_file_spec(project, _pool("15"), n=4, split="train", seed=2))
    assert changed.spec_hash != loaded.spec_hash  # same spec text, the exemplar file's content changed
    assert LoadedSpec.from_snapshot(loaded.snapshot()).spec_hash == loaded.spec_hash  # re-runs without the file

    server.set_config({"rules": [{"model": "good", "reply": "echo {last_user}"}]})
    r, s1 = project.cli_json("run", str(_file_spec(project, _pool(), n=4, split="train", seed=2)))
    assert r.returncode == 0, r.stderr
    r, s2 = project.cli_json("run", str(_file_spec(project, _pool("15"), n=4, split="train", seed=2)))
    assert r.returncode == 0, r.stderr
    a, b = s1["conditions"]["run_id"], s2["conditions"]["run_id"]
    assert s1["conditions"]["spec_hash"] != s2["conditions"]["spec_hash"]
    con = sqlite3.connect(project.ledger)
    (snap,) = con.execute("SELECT spec_snapshot FROM run WHERE id = ?", (a,)).fetchone()
    con.close()
    assert [c["id"] for c in json.loads(snap)["fewshot_dataset"]["cases"]][:2] == ["s5", "s6"]
    r, d = project.cli_json("diff", a, b)
    [fs] = [x for x in d["differences"] if x["field"] == "fewshot.dataset_hash"]
    assert fs["section"] == "prompts" and fs["affects_scores"] and fs["a"] != fs["b"]


def test_fewshot_from_missing_file_or_too_small_is_bad_input(project: Project, server: FakeServer) -> None:
    spec = _spec(project, n=2, **{"from": "../datasets/nope.yaml"})
    r = project.cli("run", str(spec))
    assert r.returncode == 2 and "fewshot.from file" in r.stderr and "nope.yaml' not found" in r.stderr
    spec = _file_spec(project, _pool(), n=6, split="train")
    r = project.cli("run", str(spec))  # q1: s5..s8 and dup only (the file's own q1 is left out)
    assert r.returncode == 2 and "case q1" in r.stderr and "only 5 other case(s) of ../datasets/shots.yaml" in r.stderr
    assert server.stats()["total"] == 0
