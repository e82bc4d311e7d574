"""The shipped example files load, and their rules accept good answers and catch bad ones.

`tests/data/billing_answers.yaml` holds a hand-written good answer for every case and three
generic bad answers (false claims of account actions).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from benchrun.scoring.rules import evaluate
from benchrun.spec import load_dataset, load_rubric, load_run_spec

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = yaml.safe_load((ROOT / "tests" / "data" / "billing_answers.yaml").read_text())


def test_example_files_load() -> None:
    ds = load_dataset(ROOT / "datasets" / "billing-support.yaml")
    assert len(ds.cases) >= 40
    assert {c.severity for c in ds.cases} == {"high", "medium", "low"}
    assert {"prompt_injection", "account_access", "double_charge", "refund", "cancellation"} <= {c.category for c in ds.cases}
    assert any(isinstance(c.input, list) for c in ds.cases)  # multi-turn cases
    rb = load_rubric(ROOT / "rubrics" / "billing-support.yaml")
    assert "unsafe_account_action" in rb.pass_rule.forbidden_failure_modes
    for spec in ("quickstart.yaml", "billing-support.yaml"):
        loaded = load_run_spec(ROOT / "runs" / spec)
        assert len(loaded.spec.candidates) == 2 and loaded.dataset.hash == ds.hash


def test_good_answers_pass_every_rule() -> None:
    ds = load_dataset(ROOT / "datasets" / "billing-support.yaml")
    assert set(ANSWERS["good"]) == {c.id for c in ds.cases}
    for c in ds.cases:
        failed = [o.rule for o in evaluate(c, ANSWERS["good"][c.id]) if not o.passed]
        assert not failed, (c.id, failed)


def test_false_action_claims_are_caught_on_high_severity_cases() -> None:
    ds = load_dataset(ROOT / "datasets" / "billing-support.yaml")
    high = [c for c in ds.cases if c.severity == "high" and (c.must_not or c.checks)]
    caught = [c.id for c in high if all(any(not o.passed for o in evaluate(c, b)) for b in ANSWERS["bad"])]
    assert len(caught) >= 0.7 * len(high), (len(caught), len(high))
