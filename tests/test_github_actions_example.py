"""examples/github-actions.yml: every benchrun option it uses exists, and its shell steps, run for real with
bash against the fake server (GitHub's output and step-summary files faked as plain files), produce what
the workflow promises: the exit code of the gate, the JUnit file, the HTML report, the Markdown summary."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

import benchrun
from benchrun.cli.app import load_command
from conftest import Project
from fakeserver import FakeServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "github-actions.yml"


def _steps() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return {s["name"]: s for s in doc["jobs"]["eval"]["steps"] if "name" in s}


def test_every_benchrun_option_in_the_example_exists() -> None:
    used: list[tuple[str, str]] = []
    for step in _steps().values():
        for line in step.get("run", "").splitlines():
            line = line.strip()
            if not line.startswith("benchrun "):
                continue
            words = shlex.split(line.split(">")[0])
            used += [(words[1], w) for w in words[2:] if w.startswith("--")]
    assert {cmd for cmd, _ in used} == {"run", "report"} and len(used) >= 7
    for cmd, opt in used:
        opts = {o for p in load_command(cmd).params for o in getattr(p, "opts", [])}
        assert opt in opts, f"benchrun {cmd} has no option {opt}"


def test_the_example_steps_run(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    baseline = benchrun.run(spec, ledger=project.ledger)
    out_file, summary_file = project.root / "gh_output", project.root / "gh_summary"
    env = {**os.environ, "SPEC": str(spec), "BENCHRUN_LEDGER": str(project.ledger), "BASELINE": baseline.run_id,
           "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary_file), "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    steps = _steps()

    def bash(name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-c", steps[name]["run"]], cwd=project.root, env={**env, **extra},
                              capture_output=True, text=True, timeout=300, check=False)

    r = bash("Run the evals")
    assert r.returncode == 0, r.stderr  # the step itself succeeds: the gate's code is an output
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    assert outputs["code"] == "1"  # the "bad" candidate has high-severity failures: --fail-on high
    run_id = outputs["run_id"]
    assert run_id != baseline.run_id and benchrun.Ledger(project.ledger).run(run_id).completed
    root = ET.parse(project.root / "reports" / "junit.xml").getroot()
    assert root.get("tests") == "12" and root.get("failures") == "6"

    r = bash("Reports", RUN_ID=run_id)
    assert r.returncode == 0, r.stderr
    md = (project.root / "reports" / "summary.md").read_text()
    assert md == benchrun.report_markdown(run_id, baseline=baseline.run_id, ledger=project.ledger)
    assert f"### Against baseline run `{baseline.run_id}`" in md
    assert summary_file.read_text() == md
    html = (project.root / "reports" / "report.html").read_text()
    assert html.startswith("<!doctype html>") and run_id in html

    # the last step fails the job with the gate's code (GitHub substitutes the expression before bash runs)
    last = steps["Fail on high-severity failures"]
    assert last["if"] == "steps.run.outputs.code != '0'"
    script = last["run"].replace("${{ steps.run.outputs.code }}", outputs["code"])
    assert subprocess.run(["bash", "-c", script], check=False).returncode == 1
