"""Coverage reports in the ledger: stored after each `benchrun coverage`, listed by `benchrun coverage history`."""

from __future__ import annotations

import json
from typing import Any


def store_report(ledger_url: str | None, report: dict[str, Any]) -> int:
    """Record a coverage report (kind "coverage") tied to the dataset version it measured."""
    from benchrun.ledger import Ledger

    score, prod, ds = report["score"], report["production"], report["dataset"]
    subject = f"{prod.get('source')} ({str(prod.get('hash', ''))[:12]})"
    payload = {"jsd": score["jsd"], "band": score["band"], "thresholds": score.get("thresholds"),
               "dataset": ds, "production": prod, "headline": report.get("headline"), "report": report}
    led = Ledger(ledger_url)
    try:
        return led.add_report("coverage", payload, dataset_hash=ds["hash"], subject=subject,
                              summary=report.get("headline") or f"JSD {score['jsd']:.3f} ({score['band']})")
    finally:
        led.close()


def history(ledger_url: str | None, dataset_hash: str | None = None) -> list[dict[str, Any]]:
    """Stored coverage reports, newest first: when, which dataset version, which production sample, JSD, band."""
    from benchrun.ledger import Ledger

    led = Ledger(ledger_url)
    try:
        reps = led.reports("coverage", **({"dataset_hash": dataset_hash} if dataset_hash else {}))
    finally:
        led.close()
    out = []
    for r in reps:
        p = json.loads(r.payload)
        out.append({"id": r.id, "created_at": r.created_at.isoformat(), "dataset": p["dataset"].get("name"),
                    "dataset_version": p["dataset"].get("version"), "dataset_hash": r.dataset_hash,
                    "production": r.subject, "jsd": p["jsd"], "band": p["band"],
                    "uncovered_clusters": _uncovered_clusters(p["report"].get("uncovered"))})
    return out


def _uncovered_clusters(uncovered: Any) -> int | None:
    """The report's count of clusters without an eval case (``{"clusters": N, "production_share": s}``).

    ``len()`` of that dict is always 2 (its keys); a list of clusters (an older layout) is counted.
    """
    if isinstance(uncovered, dict):
        n = uncovered.get("clusters")
        return n if isinstance(n, int) else None
    if isinstance(uncovered, list):
        return len(uncovered)
    return None
