"""examples/github-actions-sharded.yml: a 4-job matrix and a final job. Every benchrun option it uses exists,
and its shell steps, run for real with bash against the fake server (GitHub's expressions substituted as
GitHub would, its output and step-summary files faked as plain files), do what the workflow promises:
three shards leave the run unfinished and the final job says "3 of 4 shards done" and fails; after the
fourth, the final job sees the completed run, applies the gate and posts the Markdown summary."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

import benchrun
from benchrun.cli.app import load_command
from conftest import Project
from fakeserver import FakeServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "github-actions-sharded.yml"


def _doc() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _steps(job: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in _doc()["jobs"][job]["steps"] if "name" in s}


def test_the_matrix_and_the_final_job() -> None:
    doc = _doc()
    shard_job, summary = doc["jobs"]["shard"], doc["jobs"]["summary"]
    assert shard_job["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert shard_job["strategy"]["fail-fast"] is False
    assert summary["needs"] == "shard" and summary["if"] == "always()"
    assert doc["env"]["RUN_ID"] == "gh-${{ github.run_id }}"  # not run_attempt: a re-run shard resumes the run
    used: list[tuple[str, str]] = []
    for job in ("shard", "summary"):
        for step in _steps(job).values():
            for line in step.get("run", "").splitlines():
                line = line.strip()
                if line.startswith("benchrun "):
                    words = shlex.split(line.split(">")[0])
                    used += [(" ".join(words[1:3]) if words[1] == "runs" else words[1], w)
                             for w in words[2:] if w.startswith("--")]
    assert {cmd for cmd, _ in used} == {"run", "runs show", "report"}
    assert ("run", "--shard") in used and ("run", "--run-id") in used
    for cmd, opt in used:
        command = load_command(cmd.split()[0])
        if cmd == "runs show":
            command = command.commands["show"]  # type: ignore[attr-defined]
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert opt in opts, f"benchrun {cmd} has no option {opt}"


def test_the_example_steps_run(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    out_file, summary_file = project.root / "gh_output", project.root / "gh_summary"
    env = {**os.environ, "SPEC": str(spec), "BENCHRUN_LEDGER": str(project.ledger), "RUN_ID": "gh-987654",
           "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary_file), "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    shard_step = _steps("shard")["Run this shard"]["run"]
    final = _steps("summary")

    def bash(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-c", script], cwd=project.root, env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    def gate() -> str:
        out_file.write_text("")
        r = bash(final["Check the run and apply the gate"]["run"])
        assert r.returncode == 0, r.stderr  # the step succeeds: the verdict is its output
        return dict(line.split("=", 1) for line in out_file.read_text().splitlines())["code"]

    for i in (1, 2, 3):
        r = bash(shard_step.replace("${{ matrix.shard }}", str(i)))
        assert r.returncode == 0, r.stderr
    assert gate() == "3"  # not complete: the final job fails however the gate would have gone
    r = bash(final["Reports"]["run"])
    assert r.returncode == 0, r.stderr
    md = (project.root / "reports" / "summary.md").read_text()
    assert md.startswith("**3 of 4 shards done** (run `gh-987654`: running)")

    r = bash(shard_step.replace("${{ matrix.shard }}", "4"))
    assert r.returncode == 0, r.stderr
    assert benchrun.Ledger(project.ledger).run("gh-987654").completed
    summary_file.write_text("")
    assert gate() == "1"  # complete; the "bad" candidate has high-severity failures: --fail-on high
    r = bash(final["Reports"]["run"])
    assert r.returncode == 0, r.stderr
    md = (project.root / "reports" / "summary.md").read_text()
    header = "**4 of 4 shards done** (run `gh-987654`: completed)\n\n"
    assert md == header + benchrun.report_markdown("gh-987654", ledger=project.ledger)
    assert summary_file.read_text() == md
    assert (project.root / "reports" / "report.html").read_text().startswith("<!doctype html>")

    last = final["Fail on high-severity failures or an unfinished run"]
    assert last["if"] == "steps.gate.outputs.code != '0'"
    script = last["run"].replace("${{ steps.gate.outputs.code }}", "1")
    assert subprocess.run(["bash", "-c", script], check=False).returncode == 1
