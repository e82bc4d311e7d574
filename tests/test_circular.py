"""Circular evaluation of multiple-choice cases (`shuffle_choices: K`, issue 17): each case asked under K
orders of its choices; accuracy under the dataset's order and under all K, checked against the prompts the
test server actually received."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from scipy.stats import binomtest

from conftest import Project
from fakeserver import FakeServer

QUESTIONS = [  # (question, choices, right answer)
    ("Capital of the UK?", ["Paris", "London", "Berlin", "Madrid"], "London"),
    ("Capital of Germany?", ["Berlin", "Rome", "Vienna", "Oslo"], "Berlin"),
    ("Capital of Spain?", ["Lisbon", "Madrid", "Athens", "Dublin"], "Madrid"),
    ("Capital of France?", ["Paris", "Brussels", "Bern", "Prague"], "Paris"),
    ("Capital of Italy?", ["Warsaw", "Sofia", "Rome", "Kyiv"], "Rome"),
    ("Capital of Norway?", ["Oslo", "Riga", "Tallinn", "Vilnius"], "Oslo"),
]
K = 4


def _project(tmp_path: Path, srv: FakeServer, **spec_extra: Any) -> tuple[Project, Path]:
    project = Project(tmp_path, srv.url)
    project.write_dataset([{"id": f"q{i}", "input": q, "choices": ch, "answer": ch.index(a)}
                           for i, (q, ch, a) in enumerate(QUESTIONS)])
    spec = project.write_spec(
        prompt={"version": "1", "template": "{{ input }}\n{{ choices_block }}\nAnswer with the letter only."},
        candidates=[{"model": "openai/knows", "alias": "knows", "api_base": srv.url},
                    {"model": "openai/first", "alias": "first", "api_base": srv.url}])
    d = yaml.safe_load(spec.read_text())
    del d["rubric"], d["judge"]
    d.update(spec_extra)
    spec.write_text(yaml.safe_dump(d, sort_keys=False))
    return project, spec


def _rules() -> list[dict[str, Any]]:
    # "knows" names the right choice's text (extraction finds its letter in any order); "first" always says A
    return [*({"model": "^knows$", "contains": q, "reply": a} for q, _ch, a in QUESTIONS),
            {"model": "^first$", "reply": "A"}]


def _block(content: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^([A-Z])\) (.*)$", content, re.M)]


def test_each_case_is_asked_under_k_orders_and_circular_accuracy_is_counted(tmp_path: Path) -> None:
    with FakeServer({"rules": _rules()}) as srv:
        project, spec = _project(tmp_path, srv, shuffle_choices=K)
        v = project.cli("validate", str(spec))
        assert v.returncode == 0 and f"{len(QUESTIONS)} cases × 2 candidates × {K} samples" in v.stdout, v.stdout
        r, summary = project.cli_json("run", str(spec))
        assert r.returncode == 0, r.stderr
        sent = [q for q in srv.requests() if q.model == "first"]
        assert len(sent) == len(QUESTIONS) * K
        # independent count from what the server received: the orders, and where the right answer stood
        orders: dict[str, list[list[str]]] = {}
        for q in sent:
            content = q.messages[-1]["content"]
            question = content.splitlines()[0]
            orders.setdefault(question, []).append(_block(content))
        first_right_original = first_right_all = 0
        for question, choices, right in QUESTIONS:
            seen = orders[question]
            assert len(seen) == K and len({tuple(o) for o in seen}) == K  # K distinct orders
            assert all(sorted(o) == sorted(choices) for o in seen)
            assert choices in seen  # the dataset's own order is one of them
            first_right_original += choices[0] == right
            first_right_all += all(o[0] == right for o in seen)
        circ = summary["circular"]
        assert circ["orders"] == K
        knows, first = circ["models"]["knows"], circ["models"]["first"]
        n = len(QUESTIONS)
        assert knows["cases"] == n and knows["original"]["estimate"] == 1.0 and knows["circular"]["estimate"] == 1.0
        assert first["original"]["estimate"] == first_right_original / n == 3 / 6  # Germany, France and Norway list it first
        assert first["circular"]["estimate"] == first_right_all / n == 0.0
        assert first["order_sensitive"]["estimate"] == 3 / 6 and first["order_sensitive_cases"] == ["q1", "q3", "q5"]
        ci = binomtest(3, n).proportion_ci(0.95, method="wilson")  # independent Wilson interval
        assert abs(first["original"]["low"] - ci.low) < 1e-9 and abs(first["original"]["high"] - ci.high) < 1e-9
        run_id = summary["conditions"]["run_id"]
        show = project.cli("runs", "show", run_id)
        assert f"Choice order: each case asked under {K} orders" in show.stdout
        assert any("first" in ln.split()[:2] and "50.0% [" in ln and "0.0% [" in ln
                   for ln in show.stdout.splitlines()), show.stdout
        # the orders are seeded: a replay from the cache finds every answer (no call), and reproduces
        before = len(srv.requests())
        rep = project.cli("reproduce", run_id, "--from-cache")
        assert rep.returncode == 0, rep.stdout + rep.stderr
        assert len(srv.requests()) == before


def test_shuffle_choices_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    with FakeServer({"rules": _rules()}) as srv:
        project, spec = _project(tmp_path, srv, shuffle_choices=K, samples=3)
        r = project.cli("validate", str(spec))
        assert r.returncode == 2 and "shuffle_choices asks each case once per order" in r.stderr
        project, spec = _project(tmp_path, srv, shuffle_choices=K)
        ds = yaml.safe_load((tmp_path / "datasets" / "mini.yaml").read_text())
        ds["cases"].append({"id": "open-1", "input": "Say hi", "must_include": ["hi"]})
        ds["cases"].append({"id": "two-1", "input": "Yes or no?", "choices": ["yes", "no"], "answer": "A"})
        (tmp_path / "datasets" / "mini.yaml").write_text(yaml.safe_dump(ds))
        r = project.cli("validate", str(spec))
        assert r.returncode == 2 and "case open-1" in r.stderr and "has no 'choices'" in r.stderr, r.stderr
        ds["cases"] = [c for c in ds["cases"] if c["id"] != "open-1"]
        (tmp_path / "datasets" / "mini.yaml").write_text(yaml.safe_dump(ds))
        r = project.cli("validate", str(spec))
        assert r.returncode == 2 and "case two-1's 2 choices have (2)" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert srv.requests() == []
