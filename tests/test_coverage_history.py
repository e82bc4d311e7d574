"""`coverage history` counts uncovered clusters (issue 14, item 4: it always said 2, the keys of a dict)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchrun.coverage.history import history, store_report
from conftest import Project


def _report(jsd: float, band: str, uncovered: int, share: float) -> dict[str, Any]:
    return {"score": {"jsd": jsd, "band": band, "thresholds": {"good_below": 0.1, "refresh_above": 0.25}},
            "production": {"source": "prod.jsonl", "hash": "ab" * 32},
            "dataset": {"name": "hr", "version": "1", "hash": "cd" * 32},
            "headline": f"coverage JSD {jsd:.3f} ({band})",
            "uncovered": {"clusters": uncovered, "production_share": share}}


def test_history_counts_uncovered_clusters(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    store_report(ledger, _report(0.534, "refresh", 30, 0.41))
    store_report(ledger, _report(0.31, "refresh", 19, 0.22))
    rows = history(ledger)
    assert [r["uncovered_clusters"] for r in rows] == [19, 30]  # newest first

    project = Project(tmp_path, "http://127.0.0.1:9/v1")
    r = project.cli("coverage", "history", "--ledger", ledger, "--json")
    assert r.returncode == 0, r.stderr
    assert [h["uncovered_clusters"] for h in json.loads(r.stdout)] == [19, 30]
    r = project.cli("coverage", "history", "--ledger", ledger)
    lines = [ln for ln in r.stdout.splitlines() if "refresh" in ln]
    assert len(lines) == 2 and lines[0].rstrip(" │|").split()[-1] == "19" and lines[1].rstrip(" │|").split()[-1] == "30"
