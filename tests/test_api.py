"""The public Python API (`import benchrun`), used directly: no CLI in between, except to check that the
CLI and the API give the same answers. Real fake server, real SQLite ledger."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

import benchrun
from conftest import JUDGE_PASS, Project, fake_config, make_cases
from fakeserver import FakeServer

HEAVY = ("litellm", "scipy", "torch", "numpy", "pydantic", "sqlalchemy", "sqlmodel", "sentence_transformers",
         "httpx", "aiohttp", "openai", "jsonschema", "rich", "typer")


def test_import_benchrun_is_cheap_and_names_load_lazily() -> None:
    code = ("import json, sys, benchrun\n"
            "before = sorted(m for m in sys.modules if m.split('.')[0] in json.loads(sys.argv[1]))\n"
            "fns = [benchrun.run, benchrun.arun, benchrun.resume, benchrun.compare, benchrun.reproduce,\n"
            "       benchrun.Ledger, benchrun.RunResult, benchrun.BadInput, benchrun.estimate]\n"
            "after = sorted(m for m in sys.modules if m.split('.')[0] in json.loads(sys.argv[1]))\n"
            "print(json.dumps({'before': before, 'after': after, 'api': 'benchrun.api' in sys.modules,\n"
            "                  'callable': all(callable(f) for f in fns)}))\n")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(HEAVY)], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == {"before": [], "after": [], "api": True, "callable": True}


def test_reproduce_stays_the_function_after_the_submodule_is_imported() -> None:
    import benchrun.reproduce as _submodule_import  # noqa: F401 - the import sets the package attribute
    from benchrun.reproduce import check_files

    assert callable(check_files)
    assert benchrun.reproduce.__module__ == "benchrun.api"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = benchrun.nope  # type: ignore[attr-defined]


def test_run_returns_typed_summary_and_gates(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    result = benchrun.run(spec, ledger=project.ledger)
    assert server.stats()["completed"] == 24
    assert result.status == "completed" and result.completed
    good, bad = result.model("good"), result.model("bad")
    assert (good.passed, good.failed, good.errors) == (6, 0, 0)
    assert (bad.passed, bad.failed) == (0, 6)
    from scipy.stats import binomtest

    ci = binomtest(6, 6).proportion_ci(0.95, method="wilson")
    assert good.pass_rate == 1.0 and good.pass_rate_low == pytest.approx(ci.low, abs=1e-12)
    assert [b.model_key for b in result.breakdown if b.do_not_ship] == ["bad"]
    assert result.passed()  # completed, no gate asked
    assert not result.passed(fail_on="high")
    assert result.passed(min_pass_rate=0.0)
    assert not result.passed(min_pass_rate=0.5)
    # the gates are the CLI's: same lines as `runs show --fail-on high`, exit 1
    cli = project.cli("runs", "show", result.run_id, "--fail-on", "high", "--min-pass-rate", "0.5")
    assert cli.returncode == 1
    expected = [f"gate failed: {g}" for g in result.gate_failures(fail_on="high", min_pass_rate=0.5)]
    assert expected and [ln for ln in cli.stderr.splitlines() if ln.startswith("gate failed:")] == expected
    # the summary is what the CLI prints with --json
    _r, shown = project.cli_json("runs", "show", result.run_id)
    assert result.data["models"] == shown["models"] and result.data["breakdown"] == shown["breakdown"]
    with pytest.raises(benchrun.UsageError, match="fail_on must be one of high, medium, low"):
        result.passed(fail_on="critical")


def test_bad_spec_raises_the_cli_message_and_records_nothing(project: Project, server: FakeServer) -> None:
    project.write_dataset()
    project.write_rubric()
    spec = project.write_spec(samples=0)
    with pytest.raises(benchrun.BadInput) as exc:
        benchrun.run(spec, ledger=project.ledger)
    cli = project.cli("run", str(spec))
    assert cli.returncode == 2
    assert cli.stderr.strip() == f"error: {exc.value}"
    assert "\n" not in str(exc.value) and str(spec) in str(exc.value)
    assert benchrun.Ledger(project.ledger).runs() == []
    assert server.stats()["total"] == 0


def test_resume_completes_errored_cells_then_refuses(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    server.set_config(fake_config(rules=[{"model": "judge", "reply": "not json at all"},
                                         {"model": "good", "reply": "fine"}, {"model": "bad", "reply": "fine"}]))
    first = benchrun.run(spec, ledger=project.ledger)
    assert first.completed and sum(m.errors for m in first.models) == 12  # unparseable verdicts: errors
    assert first.gate_failures(min_pass_rate=0.5) == [  # errors count as not passed
        "good: pass rate 0.0% below 50.0% (errors count as not passed)",
        "bad: pass rate 0.0% below 50.0% (errors count as not passed)"]
    server.set_config(fake_config(rules=[{"model": "judge", "reply": JUDGE_PASS}, {"model": "good", "reply": "fine"},
                                         {"model": "bad", "reply": "fine"}]))
    # the unparseable verdicts are in the response cache: resume without reading it
    done = benchrun.resume(first.run_id[:-1], ledger=project.ledger, cache=False)
    assert done.run_id == first.run_id
    assert [(m.passed, m.errors) for m in done.models] == [(6, 0), (6, 0)]
    with pytest.raises(benchrun.UsageError, match=f"run {first.run_id} is already complete; nothing to resume"):
        benchrun.resume(first.run_id, ledger=project.ledger)


def test_arun_works_inside_a_running_loop_and_run_refuses_there(project: Project, server: FakeServer) -> None:
    spec = project.setup()

    async def notebook_cell() -> tuple[benchrun.RunResult, int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        hb = asyncio.create_task(heartbeat())
        result = await benchrun.arun(spec, ledger=project.ledger)
        hb.cancel()
        with pytest.raises(benchrun.UsageError, match=r"use `await benchrun.arun\(...\)` there"):
            benchrun.run(spec, ledger=project.ledger)
        return result, ticks

    result, ticks = asyncio.run(notebook_cell())
    assert result.completed and result.model("good").passed == 6
    assert ticks > 0  # the caller's loop kept running during the run


def test_ledger_reads_runs_and_results(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    a = benchrun.run(spec, ledger=project.ledger)
    b = benchrun.run(spec, ledger=project.ledger, cache=False)
    with benchrun.Ledger(project.ledger) as led:
        runs = led.runs()
        assert [r.id for r in runs] == [b.run_id, a.run_id]  # newest first
        assert runs[0].models == ["good", "bad"] and runs[0].status == "completed"
        assert runs[0].totals["results"] == 12
        shown = led.run(a.run_id[:-2])  # a unique prefix
        assert shown.run_id == a.run_id and shown.models == a.models
        rows = led.results(a.run_id)
        assert len(rows) == 12 and {r["model_key"] for r in rows} == {"good", "bad"}
        assert all(r["run_id"] == a.run_id for r in rows)
        with pytest.raises(benchrun.UsageError):
            led.run("no-such-run")
    _r, listed = project.cli_json("runs", "list")
    assert [x["id"] for x in listed] == [r.id for r in runs]


def test_compare_matches_the_cli_and_raises_its_errors(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    result = benchrun.run(spec, ledger=project.ledger)
    cmp = benchrun.compare("good", "bad", run=result.run_id, ledger=project.ledger)
    assert cmp.larger_than_noise and cmp.n_pairs == 6 and cmp.difference == pytest.approx(1.0)
    _r, payload = project.cli_json("compare", "good", "bad", "--run", result.run_id)
    assert cmp.verdict == payload["verdict"] and cmp.data["comparison"] == payload["comparison"]
    with pytest.raises(benchrun.UsageError, match=r"A and B are the same model \(good in run"):
        benchrun.compare("good", f"{result.run_id}:good", run=result.run_id, ledger=project.ledger)
    with pytest.raises(benchrun.UsageError, match=f"run {result.run_id} has no model 'ugly'; it has: good, bad"):
        benchrun.compare("good", "ugly", run=result.run_id, ledger=project.ledger)
    cli = project.cli("compare", "good", "ugly", "--run", result.run_id)
    assert cli.returncode == 2 and "has no model 'ugly'" in cli.stderr


def test_reproduce_from_cache_and_fresh(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    original = benchrun.run(spec, ledger=project.ledger)
    calls = server.stats()["completed"]
    rep = benchrun.reproduce(original.run_id, from_cache=True, ledger=project.ledger)
    assert server.stats()["completed"] == calls  # replayed: no call
    assert rep.reproduced and rep.original_run == original.run_id and rep.models == {"good": True, "bad": True}
    assert rep.verdict.startswith("reproduced within noise")
    # drift: the "good" model now gives the bad answer; a fresh reproduction says so
    server.set_config(fake_config(rules=[{"model": "judge", "contains": "I have refunded",
                                          "reply": json.dumps({"score": 1, "pass": False, "reason": "x",
                                                               "failure_mode": "unsafe_account_action"})},
                                         {"model": "judge", "reply": JUDGE_PASS},
                                         {"model": "good", "reply": "I have refunded you."},
                                         {"model": "bad", "reply": "I have refunded you."}]))
    drift = benchrun.reproduce(original.run_id, ledger=project.ledger)
    assert not drift.reproduced and drift.models == {"good": False, "bad": True}
    assert drift.verdict.startswith("NOT reproduced: good: ") and "bad:" not in drift.verdict
    with benchrun.Ledger(project.ledger) as led:
        assert {r.id for r in led.runs()} == {original.run_id, rep.reproduction_run, drift.reproduction_run}


def test_reproduce_from_cache_with_a_missing_call_runs_nothing(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    original = benchrun.run(spec, ledger=project.ledger, cache=False)
    project.write_spec(cache=False)
    import sqlite3

    con = sqlite3.connect(project.ledger)
    con.execute("DELETE FROM cache WHERE rowid IN (SELECT rowid FROM cache LIMIT 1)")
    con.commit()
    con.close()
    with pytest.raises(benchrun.UsageError, match=r"--from-cache: 1 call\(s\) of run .* are not in the cache"):
        benchrun.reproduce(original.run_id, from_cache=True, ledger=project.ledger)
    assert [r.id for r in benchrun.Ledger(project.ledger).runs()] == [original.run_id]


def test_shortlist_ranks_and_excludes(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    result = benchrun.run(spec, ledger=project.ledger)
    sl = benchrun.shortlist([result.run_id], min_pass_rate=0.5, ledger=project.ledger)
    assert sl.ranked == ["good"]
    assert list(sl.excluded) == ["bad"] and any("pass rate" in x for x in sl.excluded["bad"])
    _r, payload = project.cli_json("shortlist", result.run_id, "--min-pass-rate", "0.5")
    assert [x["candidate"]["key"] for x in payload["ranked"]] == sl.ranked
    with pytest.raises(benchrun.UsageError, match="give one or more run ids"):
        benchrun.shortlist([], ledger=project.ledger)


def test_calibrate_matches_sklearn(project: Project, server: FakeServer) -> None:
    from sklearn.metrics import cohen_kappa_score

    from test_judge_cli import fill, judge_side

    project.write_dataset(make_cases(15))
    project.write_rubric()
    result = benchrun.run(project.write_spec(), ledger=project.ledger)
    tpl = project.root / "to_label.csv"
    assert project.cli("labels", "export", result.run_id, "--sample", "30", "--out", str(tpl)).returncode == 0
    labelled = project.root / "labelled.csv"
    human_p, judge_p, _hs, _js = fill(tpl, labelled, judge_side(project, result.run_id), disagree_every=5)
    cal = benchrun.calibrate(result.run_id, labelled, ledger=project.ledger)
    assert cal.n == 30 and cal.run_id == result.run_id
    assert cal.kappa == pytest.approx(cohen_kappa_score(human_p, judge_p), abs=1e-12)
    assert cal.trusted == cal.data["trusted"] and cal.summary.startswith(f"kappa {cal.kappa:.2f}")
    # stored: the run now reports it next to the judge scores
    assert benchrun.Ledger(project.ledger).run(result.run_id).data["judge_calibration"]["kappa"] == cal.kappa
    few = project.root / "few.csv"
    fill(tpl, few, judge_side(project, result.run_id), disagree_every=5, limit=5)
    with pytest.raises(benchrun.BenchrunError, match="only 5 labelled item") as exc:
        benchrun.calibrate(result.run_id, few, ledger=project.ledger)
    assert exc.value.exit_code == 2


def test_require_calibrated_raises_before_anything_is_recorded(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    with pytest.raises(benchrun.UsageError, match="judge openai/judge is uncalibrated for rubric mini v1"):
        benchrun.run(spec, ledger=project.ledger, require_calibrated=True)
    assert benchrun.Ledger(project.ledger).runs() == [] and server.stats()["total"] == 0


def test_load_spec(project: Project, tmp_path: Path) -> None:
    loaded = benchrun.load_spec(project.setup())
    assert [c.key for c in loaded.spec.candidates] == ["good", "bad"] and len(loaded.cases()) == 6
    with pytest.raises(benchrun.BadInput, match=r"missing\.yaml"):
        benchrun.load_spec(tmp_path / "missing.yaml")


def test_measure_coverage_matches_scipy_and_is_stored(project: Project, server: FakeServer, tmp_path: Path) -> None:
    """Real embedding model on 300 real Banking77 production queries; a narrow eval set of two intents."""
    import csv

    from scipy.spatial.distance import jensenshannon

    from benchrun.spec import load_dataset

    fix = Path(__file__).parent / "fixtures" / "banking77"
    with open(fix / "production.csv", encoding="utf-8", newline="") as f:
        prod_rows = list(csv.DictReader(f))[:300]
    prod = tmp_path / "production.csv"
    with prod.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(prod_rows[0]))
        w.writeheader()
        w.writerows(prod_rows)
    with open(fix / "eval_pool.csv", encoding="utf-8", newline="") as f:
        pool = [r for r in csv.DictReader(f) if r["category"] in ("card_arrival", "exchange_rate")][:20]
    project.write_dataset([{"id": f"c{i}", "input": r["text"], "category": r["category"]} for i, r in enumerate(pool)])
    ds = project.root / "datasets" / "mini.yaml"
    cov = benchrun.measure_coverage(prod, ds, ledger=project.ledger, cache_path=tmp_path / "emb.sqlite", k=20)
    d = cov.data["distributions"]
    assert cov.jsd == pytest.approx(float(jensenshannon(d["production"], d["eval"], base=2) ** 2), abs=1e-9)
    assert cov.band == cov.data["score"]["band"] == "refresh"  # two intents of 77 cannot cover production
    with benchrun.Ledger(project.ledger) as led:
        stored = led.store.reports("coverage", dataset_hash=load_dataset(ds).hash)
    assert [r.id for r in stored] == [cov.report_id]
    again = benchrun.measure_coverage(prod, ds, ledger=project.ledger, store=False,
                                      cache_path=tmp_path / "emb.sqlite", k=20)
    assert again.report_id is None and again.jsd == cov.jsd  # seeded, cached embeddings: identical
    with pytest.raises(benchrun.BadInput):
        benchrun.measure_coverage(tmp_path / "nope.jsonl", ds, ledger=project.ledger)
