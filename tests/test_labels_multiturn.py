"""The labelling CSV shows people the whole conversation the judge saw (issue 14, item 7)."""

from __future__ import annotations

import csv
import io

from conftest import Project, make_cases


def test_labels_export_keeps_every_turn(project: Project) -> None:
    cases = make_cases(4)
    for c in cases:
        c["input"] = [{"role": "user", "content": "Hi, question about my bill."},
                      {"role": "assistant", "content": "Sure, what happened with the bill?"},
                      {"role": "user", "content": c["input"]}]
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    out = project.root / "to_label.csv"
    r = project.cli("labels", "export", summary["conditions"]["run_id"], "--sample", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    body = "".join(ln for ln in out.read_text().splitlines(keepends=True) if not ln.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 4
    for row in rows:
        turns = row["input"].split("\n")
        assert turns[0] == "USER: Hi, question about my bill."
        assert turns[1] == "ASSISTANT: Sure, what happened with the bill?"
        assert turns[2].startswith("USER: I was charged twice")
