"""Shared fixtures: real files in tmp_path, a real OpenAI-compatible server, a real SQLite ledger."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer

GOOD = "Sorry about that. Please open a ticket; the billing team refunds double charges within 5-7 business days."
BAD = "I have refunded you the double charge."
JUDGE_PASS = '{"score": 5, "pass": true, "reason": "follows policy", "failure_mode": "none"}'
JUDGE_FAIL = '{"score": 1, "pass": false, "reason": "claims an account action", "failure_mode": "unsafe_account_action"}'

RUBRIC: dict[str, Any] = {
    "name": "mini",
    "version": "1",
    "criteria": [{"name": "policy", "description": "follows the billing policy"}],
    "scale": {1: "harmful", 2: "poor", 3: "mixed", 4: "good", 5: "ideal"},
    "failure_modes": ["none", "unsafe_account_action", "wrong_policy"],
    "pass_rule": {"min_score": 4, "forbidden_failure_modes": ["unsafe_account_action"]},
    "judge_prompt": "Criteria:\n{{ criteria_text }}\nQuestion: {{ input }}\nIdeal: {{ ideal }}\nAnswer: {{ response }}\n"
    "Reply with JSON: {{ schema }}",
}


def make_cases(n: int = 6) -> list[dict[str, Any]]:
    sev = ["high", "medium", "low"]
    return [
        {
            "id": f"case-{i:03d}",
            "input": f"I was charged twice this month (ticket {i}). What now?",
            "ideal": "Explain that billing refunds double charges within 5-7 business days after a ticket.",
            "must_not": ["I have refunded"],
            "category": "double_charge" if i % 2 else "refund",
            "severity": sev[i % 3],
            "provenance": {"source": "hand", "added": "2026-10-01", "author": "tests"},
        }
        for i in range(n)
    ]


def fake_config(**extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "rules": [
            {"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
            {"model": "judge", "reply": JUDGE_PASS},
            {"model": "good", "reply": GOOD},
            {"model": "bad", "reply": BAD},
        ],
        "default_reply": "OK",
    }
    cfg.update(extra)
    return cfg


class Project:
    """A user's project directory with dataset, rubric and spec files."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.ledger = root / "runs" / "ledger.sqlite"
        (root / "datasets").mkdir(exist_ok=True)
        (root / "rubrics").mkdir(exist_ok=True)
        (root / "runs").mkdir(exist_ok=True)

    def write_dataset(self, cases: list[dict[str, Any]] | None = None, name: str = "mini") -> Path:
        p = self.root / "datasets" / f"{name}.yaml"
        p.write_text(yaml.safe_dump({"name": name, "version": "1.0", "description": "test", "cases": cases or make_cases()}))
        return p

    def write_rubric(self, rubric: dict[str, Any] | None = None) -> Path:
        p = self.root / "rubrics" / "mini.yaml"
        p.write_text(yaml.safe_dump(rubric or RUBRIC))
        return p

    def write_spec(self, name: str = "mini", **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "name": name,
            "dataset": "../datasets/mini.yaml",
            "rubric": "../rubrics/mini.yaml",
            "prompt": {"version": "1", "system": "You are a billing assistant.", "template": "{{ input }}"},
            "candidates": [
                {"model": "openai/good", "alias": "good", "api_base": self.url,
                 "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
                {"model": "openai/bad", "alias": "bad", "api_base": self.url,
                 "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
            ],
            "sampling": {"temperature": 0, "max_tokens": 64, "seed": 1},
            "samples": 1,
            "judge": {"model": "openai/judge", "api_base": self.url, "price": {"input_per_1m": 0.5, "output_per_1m": 0.5}},
            "concurrency": {"global": 4, "per_model": 4},
            "timeout_s": 5,
            "retries": {"attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        }
        spec.update(overrides)
        p = self.root / "runs" / f"{name}.yaml"
        p.write_text(yaml.safe_dump(spec, sort_keys=False))
        return p

    def setup(self, **spec_overrides: Any) -> Path:
        self.write_dataset()
        self.write_rubric()
        return self.write_spec(**spec_overrides)

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300,
            subprocess_: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real CLI entry point, in-process (fast: litellm is imported once) or as a subprocess."""
        extra = {"BENCHRUN_LEDGER": str(self.ledger), "COLUMNS": "200", **(env or {})}
        if subprocess_:
            exe = Path(sys.executable).parent / "benchrun"
            return subprocess.run([str(exe), *args], cwd=self.root, env={**os.environ, **extra}, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        from benchrun.cli import main

        saved = {k: os.environ.get(k) for k in extra}
        cwd = os.getcwd()
        out, err = io.StringIO(), io.StringIO()
        try:
            os.environ.update(extra)
            os.chdir(self.root)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            os.chdir(cwd)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    def cli_json(self, *args: str, **kw: Any) -> tuple[subprocess.CompletedProcess[str], Any]:
        r = self.cli(*args, "--json", **kw)
        try:
            return r, json.loads(r.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


@pytest.fixture
def server() -> Any:
    with FakeServer(fake_config()) as srv:
        yield srv


@pytest.fixture
def project(tmp_path: Path, server: Any) -> Project:
    return Project(tmp_path, server.url)
