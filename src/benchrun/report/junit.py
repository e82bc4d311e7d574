"""A run as a JUnit XML file (`benchrun run SPEC --junit report.xml`), the format CI systems read.

One ``<testsuite>`` per model, one ``<testcase>`` per case × model (``classname`` = run name and
model key, ``name`` = case id). With several samples per case, a test case:

* fails (``<failure>``) when any sample failed: the message names the failed samples and why
  (the rules that did not hold, the judge's score, failure mode and reason);
* is an error (``<error>``) when no sample failed but some could not be scored, or when no result
  was recorded for it (an interrupted run): a case that could not be scored is never a pass;
* passes otherwise.

Model answers and judge reasons are untrusted text: ElementTree escapes markup, and characters
XML 1.0 cannot carry (NUL, escape sequences, ...) are replaced, so the file is always well formed.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# characters outside XML 1.0's Char production (after U+FFFF everything is allowed)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
MAX_MESSAGE = 500  # characters of a message attribute (a CI annotation), the body holds the rest
MAX_BODY = 4000


def xml_text(text: Any, limit: int | None = None) -> str:
    """Text safe to put in an XML 1.0 document (ElementTree escapes ``<``, ``&`` and quotes itself)."""
    s = _INVALID_XML.sub("\ufffd", str(text))
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def _seconds(ms: Any) -> float:
    return float(ms) / 1000 if isinstance(ms, (int, float)) else 0.0


def _why_failed(r: Mapping[str, Any]) -> str:
    parts: list[str] = []
    try:
        rules = json.loads(r.get("rules") or "[]")
    except ValueError:
        rules = []
    for o in rules:
        if isinstance(o, Mapping) and not o.get("passed"):
            parts.append(f"rule {o.get('rule')} failed" + (f": {o.get('detail')}" if o.get("detail") else ""))
    if r.get("judge_score") is not None:
        judge = f"judge score {r['judge_score']}"
        if r.get("judge_failure_mode") and r["judge_failure_mode"] != "none":
            judge += f", failure mode {r['judge_failure_mode']}"
        if r.get("judge_reason"):
            judge += f": {r['judge_reason']}"
        parts.append(judge)
    return "; ".join(parts) or "not passed"


def junit_xml(run: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], case_ids: Sequence[str],
              model_keys: Sequence[str]) -> str:
    """The JUnit XML document of a run. ``run``: the summary's ``conditions``; ``rows``: result dicts;
    ``case_ids`` / ``model_keys``: every case × model the run was meant to score, in order."""
    by_cell: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault((r["model_key"], r["case_id"]), []).append(r)
    root = ET.Element("testsuites", name=xml_text(f"benchrun {run['name']}"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for key in model_keys:
        suite = ET.SubElement(root, "testsuite", name=xml_text(f"{run['name']}.{key}"))
        props = ET.SubElement(suite, "properties")
        for name, value in (("run_id", run["run_id"]), ("model_key", key),
                            ("dataset", f"{run['dataset']['name']} v{run['dataset']['version']}"),
                            ("dataset_hash", run["dataset"]["hash"]),
                            ("judge", run["judge"]["model"] if run.get("judge") else "none (scored by rules only)"),
                            ("status", run["status"])):
            ET.SubElement(props, "property", name=name, value=xml_text(value))
        n = failures = errors = 0
        seconds = 0.0
        for case_id in case_ids:
            samples = sorted(by_cell.get((key, case_id), []), key=lambda r: int(r["sample_index"]))
            t = sum(_seconds(r.get("latency_ms")) + _seconds(r.get("judge_latency_ms")) for r in samples)
            seconds += t
            n += 1
            tc = ET.SubElement(suite, "testcase", name=xml_text(case_id), classname=xml_text(f"{run['name']}.{key}"),
                               time=f"{t:.3f}")
            failed = [r for r in samples if r["status"] == "failed"]
            errored = [r for r in samples if r["status"] == "error"]
            if failed:
                failures += 1
                lines = [f"sample {r['sample_index']}: {_why_failed(r)}" for r in failed]
                lines += [f"sample {r['sample_index']}: error: {r.get('error') or 'could not be scored'}"
                          for r in errored]
                head = (f"{len(failed)} of {len(samples)} sample(s) failed" if len(samples) > 1 else "failed")
                sev = failed[0].get("severity")
                el = ET.SubElement(tc, "failure", type=f"benchrun.failed.{sev}" if sev else "benchrun.failed",
                                   message=xml_text(f"{head} ({sev} severity): {lines[0]}", MAX_MESSAGE))
                answer = failed[0].get("response_text")
                el.text = xml_text("\n".join(lines) + (f"\n\nanswer (sample {failed[0]['sample_index']}):\n{answer}"
                                                       if answer else ""), MAX_BODY)
            elif errored or not samples:
                errors += 1
                if samples:
                    lines = [f"sample {r['sample_index']}: {r.get('error') or 'could not be scored'}" for r in errored]
                    msg = "could not be scored: " + lines[0]
                else:
                    lines = ["no result recorded for this case (the run did not finish it)"]
                    msg = lines[0]
                el = ET.SubElement(tc, "error", type="benchrun.error", message=xml_text(msg, MAX_MESSAGE))
                el.text = xml_text("\n".join(lines), MAX_BODY)
        suite.set("tests", str(n))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
        suite.set("time", f"{seconds:.3f}")
        suite.set("timestamp", run["created_at"][:19])
        totals["tests"] += n
        totals["failures"] += failures
        totals["errors"] += errors
        totals["time"] += seconds
    for k in ("tests", "failures", "errors"):
        root.set(k, str(totals[k]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
