"""Candidate cost and judge (evaluation) cost are shown apart, in every view (issue 14, item 2).

Before: `runs show` printed candidate + judge as one "cost", so a candidate 6.6x cheaper than
another looked almost the same price, while the shortlist and the HTML chart left the judge out.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from conftest import Project


def _ledger_costs(project: Project, run_id: str) -> dict[str, tuple[float, float]]:
    con = sqlite3.connect(project.ledger)
    try:
        rows = con.execute("SELECT model_key, cost_usd, judge_cost_usd FROM result WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        con.close()
    out: dict[str, tuple[float, float]] = {}
    for key, c, j in rows:
        a, b = out.get(key, (0.0, 0.0))
        out[key] = (a + c, b + j)
    return out


def test_candidate_and_judge_cost_apart_everywhere(project: Project, tmp_path: Path) -> None:
    spec = project.setup(judge={"model": "openai/judge", "api_base": project.url,
                                "price": {"input_per_1m": 40.0, "output_per_1m": 40.0}})
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run_id = summary["conditions"]["run_id"]
    ledger = _ledger_costs(project, run_id)
    for m in summary["models"]:
        cand, judge = ledger[m["model_key"]]
        assert math.isclose(m["candidate_cost_usd"], cand, rel_tol=1e-9)
        assert math.isclose(m["judge_cost_usd"], judge, rel_tol=1e-9)
        assert judge > 5 * cand  # the judge dominates: a mixed column would hide the candidate's price
        assert math.isclose(m["cost_usd"], cand + judge, rel_tol=1e-9)
        assert math.isclose(m["candidate_cost_per_case"], cand / 6, rel_tol=1e-9)

    text = project.cli("runs", "show", run_id, env={"COLUMNS": "200"}).stdout
    assert "candidate cost" in text and "judge cost" in text
    good = next(ln for ln in text.splitlines() if ln.lstrip("│| ").startswith("good"))
    cand, judge = ledger["good"]
    assert f"${cand:.4f}" in good and f"${judge:.4f}" in good
    assert f"${cand + judge:.4f}" not in good  # the mixed total is no longer the "cost"

    out = tmp_path / "r.html"
    assert project.cli("report", run_id, "--html", str(out), "--shortlist").returncode == 0
    html = out.read_text()
    assert "<th>candidate cost</th>" in html and "<th>judge cost (evaluation)</th>" in html
    assert f"${cand:.4f}" in html and f"${judge:.4f}" in html
    assert "<th>judge $/1k cases</th>" in html

    r, sl = project.cli_json("shortlist", run_id)
    assert r.returncode == 0, r.stderr
    c = next(x["candidate"] for x in sl["ranked"] + sl["excluded"] if x["candidate"]["key"] == "good")
    assert math.isclose(c["cost_per_1k_cases"], 1000 * cand / 6, rel_tol=1e-9)  # ranking input: candidate only
    assert math.isclose(c["judge_cost_per_1k_cases"], 1000 * judge / 6, rel_tol=1e-9)
    text = project.cli("shortlist", run_id, env={"COLUMNS": "250"}).stdout
    assert "candidate $/1k" in text and "judge $/1k" in text
    assert json.dumps(sl["notes"]).count("judge excluded") == 1
