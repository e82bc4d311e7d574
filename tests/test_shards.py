"""Sharded runs on SQLite (`benchrun run SPEC --shard I/N --run-id ID`, benchrun/shards.py).

The split is a deterministic partition of the cells; N real CLI processes on one machine fill one run
in one SQLite ledger, which the last shard completes (``runs show`` says "3 of 4 shards done" until
then), with every cell once, every call made once at the fake server, and the same outcome in every
cell as an unsharded run; a shard whose spec differs from the run's is refused with exit 2 naming the
field, writing and calling nothing. (The PostgreSQL variant with a SIGKILLed shard is
tests/reliability/test_rel_shards.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import benchrun
from benchrun.errors import UsageError
from benchrun.shards import parse_shard, shard_of, snapshot_difference
from conftest import Project, fake_config, make_cases
from fakeserver import FakeServer

BENCHRUN = str(Path(sys.executable).parent / "benchrun")
CASES = 12


# ----------------------------------------------------------------------------- the split


def test_split_is_a_partition_given_by_the_documented_hash() -> None:
    rng = random.Random(7)
    cells = [(f"case-{rng.randrange(10**6)}", rng.choice(["a", "b", "gpt-4o"]), rng.randrange(5)) for _ in range(4000)]
    for n in (1, 2, 3, 4, 7):
        owners = [[i for i in range(1, n + 1) if parse_shard(f"{i}/{n}").owns(*c)] for c in cells]
        assert all(len(o) == 1 for o in owners)  # every cell in exactly one shard
        for c, o in zip(cells, owners, strict=True):  # the formula of the docstring, computed here independently
            h = int(hashlib.sha256(json.dumps(list(c)).encode()).hexdigest()[:16], 16)
            assert o[0] == 1 + h % n == shard_of(*c, n)
    # balanced: each of 4 shards gets 25% of 4000 cells give or take 5 binomial standard deviations (3.4%)
    counts = [sum(1 for c in cells if shard_of(*c, 4) == i) for i in range(1, 5)]
    assert all(abs(k / len(cells) - 0.25) < 5 * (0.25 * 0.75 / len(cells)) ** 0.5 for k in counts), counts


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "1/1001", "-1/4", "1/4/2", ""])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--shard must be I/N"):
        parse_shard(text)


def test_snapshot_difference_names_the_field() -> None:
    a = {"spec": {"sampling": {"temperature": 0.0}, "samples": 1},
         "dataset": {"cases": [{"id": "c1", "ideal": "x"}, {"id": "c2", "ideal": "y"}]}}
    b = json.loads(json.dumps(a))
    assert snapshot_difference(a, b) is None
    b["dataset"]["cases"][1]["ideal"] = "z"
    assert snapshot_difference(a, b) == "dataset.cases['c2'].ideal ('y' here, 'z' in the run)"
    b["spec"]["sampling"]["temperature"] = 0.7
    assert snapshot_difference(a, b) == "spec.sampling.temperature (0.0 here, 0.7 in the run)"
    # a field that may carry credentials is named without its values
    d = {"spec": {"candidates": [{"api_base": "https://u:s3cret@h/v1"}]}}
    e = {"spec": {"candidates": [{"api_base": "https://u:other@h/v1"}]}}
    assert snapshot_difference(d, e) == "spec.candidates[0].api_base (differs)"
    c = json.loads(json.dumps(a))
    c["dataset"]["cases"].append({"id": "c3"})
    assert snapshot_difference(a, c) == "dataset.cases (2 entries here, 3 in the run)"


# ----------------------------------------------------------------------------- processes


def _shard_cmd(spec: Path, shard: str, run_id: str, ledger: str) -> list[str]:
    return [BENCHRUN, "run", str(spec), "--shard", shard, "--run-id", run_id, "--ledger", ledger, "--json",
            "--call-workers", "0"]


def _run_all(procs: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "COLUMNS": "200"}
    ps = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for c in procs]
    try:
        outs = [p.communicate(timeout=600) for p in ps]  # a hang guard, not a speed check
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [subprocess.CompletedProcess(c, p.returncode, o, e) for c, p, (o, e) in zip(procs, ps, outs, strict=True)]


def cell_outcomes(ledger: str | Path, run_id: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    """What each cell of a run recorded, minus what differs between any two runs (ids, times, latency, cache)."""
    out = {}
    for r in benchrun.Ledger(ledger).results(run_id):
        key = (r["case_id"], r["model_key"], r["sample_index"])
        assert key not in out, key
        out[key] = (r["status"], r["passed"], r["response_text"], r["judge_score"], r["judge_pass"],
                    r["judge_reason"], r["rules"], r["prompt_tokens"], r["completion_tokens"], r["cost_usd"],
                    r["judge_cost_usd"], r["messages"])
    return out


def test_shards_on_one_machine_fill_one_sqlite_run(tmp_path: Path) -> None:
    ledger = str(tmp_path / "shared.sqlite")
    # the server holds the first calls until the three shards have 6 in flight together, so they overlap
    with FakeServer(fake_config(latency_ms=40, hold_until_in_flight=6, hold_timeout_s=60)) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(CASES))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2})
        first = _run_all([_shard_cmd(spec, f"{i}/4", "ci-7", ledger) for i in (1, 2, 3)], tmp_path)
        for r in first:
            assert r.returncode == 0, r.stderr[-2000:]
            assert r.stderr.strip() == "", r.stderr[-2000:]
        assert srv.stats()["max_in_flight"] > 2  # the shards really ran at the same time

        # three of four shards done: the run is not complete, and says so
        show = project.cli("runs", "show", "ci-7", "--ledger", ledger)
        assert show.returncode == 0, show.stderr
        assert "3 of 4 shards done" in show.stdout and "shard 4: waiting" in show.stdout, show.stdout
        assert "status: running" in show.stdout
        cells_4 = sum(1 for c in range(CASES) for m in ("good", "bad") if shard_of(f"case-{c:03d}", m, 0, 4) == 4)
        assert cells_4 > 0  # (else the fourth shard below would prove nothing)
        data = benchrun.Ledger(ledger).run("ci-7").data
        assert data["recorded_results"] == 2 * CASES - cells_4

        last = _run_all([_shard_cmd(spec, "4/4", "ci-7", ledger)], tmp_path)[0]
        assert last.returncode == 0, last.stderr[-2000:]
        summary = json.loads(last.stdout)
        stats = srv.stats()

        # a shard run again is idempotent: nothing left to do, nothing called
        again = _run_all([_shard_cmd(spec, "2/4", "ci-7", ledger)], tmp_path)[0]
        assert again.returncode == 0, again.stderr[-2000:]
        assert srv.stats()["total"] == stats["total"]

    assert summary["conditions"]["status"] == "completed"  # completed by the last shard to finish
    assert summary["shards"]["line"] == "4 of 4 shards done"
    assert [s["status"] for s in summary["shards"]["shards"]] == ["done"] * 4
    assert sum(s["cells"] for s in summary["shards"]["shards"]) == 2 * CASES
    assert summary["expected_results"] == summary["recorded_results"] == 2 * CASES
    # every distinct call (an answer and a judgement per cell) was made, and paid, exactly once
    assert sorted(stats["completed_by_prompt_key"].values()) == [1] * (4 * CASES)
    assert stats["total"] == stats["completed"] == 4 * CASES

    # the same, cell for cell, as one unsharded run of the same spec
    mine = cell_outcomes(ledger, "ci-7")
    assert len(mine) == 2 * CASES and mine == unsharded_outcomes(tmp_path, CASES)


def unsharded_outcomes(tmp: Path, cases: int) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    """`cell_outcomes` of one plain run of the tests' spec with ``cases`` cases (own server, own ledger)."""
    (tmp / "plain").mkdir()
    with FakeServer(fake_config()) as srv:
        project = Project(tmp / "plain", srv.url)
        project.write_dataset(make_cases(cases))
        project.write_rubric()
        plain = benchrun.run(project.write_spec(concurrency={"global": 2, "per_model": 2}),
                             ledger=tmp / "plain.sqlite")
    assert plain.completed
    return cell_outcomes(tmp / "plain.sqlite", plain.run_id)


def test_a_shard_with_another_spec_is_refused(project: Project, server: FakeServer, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.sqlite")
    spec = project.setup()
    first = project.cli("run", str(spec), "--shard", "1/2", "--run-id", "r-1", "--ledger", ledger)
    assert first.returncode == 0, first.stderr
    calls = server.stats()["total"]
    doc = yaml.safe_load(spec.read_text())
    doc["sampling"]["temperature"] = 0.7
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))

    r = project.cli("run", str(spec), "--shard", "2/2", "--run-id", "r-1", "--ledger", ledger, subprocess_=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "spec.sampling.temperature (0.7 here, 0.0 in the run)" in lines[0] and "shard 2/2 of run r-1" in lines[0]
    # nothing called, nothing written: shard 2 never started and none of its cells is recorded
    assert server.stats()["total"] == calls
    sh = benchrun.Ledger(ledger).run("r-1").data["shards"]
    assert [(s["shard"], s["status"]) for s in sh["shards"]] == [(1, "done"), (2, "waiting")]
    assert sh["shards"][1]["recorded"] == 0

    # a different number of shards, --resume of a sharded run, a run id of an unsharded run: exit 2, one line
    doc["sampling"]["temperature"] = 0
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    wrong_n = project.cli("run", str(spec), "--shard", "2/3", "--run-id", "r-1", "--ledger", ledger)
    assert wrong_n.returncode == 2 and "split into 2 shards, not 3" in wrong_n.stderr, wrong_n.stderr
    resume = project.cli("run", "--resume", "r-1", "--ledger", ledger)
    assert resume.returncode == 2 and "--shard I/2 --run-id r-1" in resume.stderr, resume.stderr
    assert server.stats()["total"] == calls
    plain = benchrun.run(spec, ledger=tmp_path / "plain.sqlite")
    calls = server.stats()["total"]
    led = benchrun.Ledger(ledger).store
    from benchrun.runner import create_run

    unsharded = create_run(plain_spec := benchrun.load_spec(spec), led)
    assert plain_spec and plain.completed
    other = project.cli("run", str(spec), "--shard", "1/2", "--run-id", unsharded, "--ledger", ledger)
    assert other.returncode == 2 and "not started as a sharded run" in other.stderr, other.stderr
    bad_id = project.cli("run", str(spec), "--shard", "1/2", "--run-id", "x; rm -rf /", "--ledger", ledger)
    assert bad_id.returncode == 2 and "--run-id must be" in bad_id.stderr, bad_id.stderr
    assert server.stats()["total"] == calls

    # with the spec as the run has it, shard 2 runs and completes the run
    done = project.cli("run", str(spec), "--shard", "2/2", "--run-id", "r-1", "--ledger", ledger)
    assert done.returncode == 0, done.stderr
    assert benchrun.Ledger(ledger).run("r-1").completed


def test_the_first_shard_to_arrive_records_the_run_once(tmp_path: Path) -> None:
    """Two shards arriving at once both find no run: the second insert loses, writes nothing, and reads the run."""
    from benchrun.ledger import Ledger, shardstore
    from benchrun.runner import run_record

    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        loaded = benchrun.load_spec(project.setup())
    led = Ledger(str(tmp_path / "l.sqlite"))
    assert shardstore.create_sharded_run(led, run_record(loaded, run_id="r"), 3)
    assert not shardstore.create_sharded_run(led, run_record(loaded, run_id="r"), 5)  # lost the race
    assert [(s.shard, s.shards, s.status) for s in shardstore.shard_rows(led, "r")] == [
        (1, 3, "waiting"), (2, 3, "waiting"), (3, 3, "waiting")]


def test_shards_run_side_by_side_but_one_shard_runs_once(tmp_path: Path) -> None:
    """Each shard holds the run lease under its own key: shard 2 runs while shard 1 runs; a second shard 1 is
    refused (exit 2) before it calls anything. The server holds shard 1's two calls until a third arrives
    (shard 2's), so shard 1 is provably still running when the others start."""
    ledger = str(tmp_path / "l.sqlite")
    with FakeServer(fake_config(hold_until_in_flight=3, hold_timeout_s=120)) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(CASES))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2}, timeout_s=120)
        env = {**os.environ, "COLUMNS": "200"}
        one = subprocess.Popen(_shard_cmd(spec, "1/2", "r2", ledger), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            while srv.stats()["in_flight"] < 2:
                assert one.poll() is None, one.communicate()
                time.sleep(0.05)
            twice = _run_all([_shard_cmd(spec, "1/2", "r2", ledger)], tmp_path)[0]
            assert twice.returncode == 2, twice.stderr
            assert "is being run by another process" in twice.stderr and "Traceback" not in twice.stderr
            assert srv.stats()["total"] == 2  # the refused one called nothing
            two = _run_all([_shard_cmd(spec, "2/2", "r2", ledger)], tmp_path)[0]  # its call opens the gate
            assert two.returncode == 0, two.stderr
            out, err = one.communicate(timeout=600)
        finally:
            if one.poll() is None:
                one.kill()
                one.wait()
        assert one.returncode == 0, err
        stats = srv.stats()
    assert json.loads(out)["conditions"]["status"] == "completed" or json.loads(two.stdout)["conditions"][
        "status"] == "completed"
    assert benchrun.Ledger(ledger).run("r2").completed
    assert sorted(stats["completed_by_prompt_key"].values()) == [1] * (4 * CASES)


def test_a_stopped_shard_stops_the_run_and_resumes_alone(tmp_path: Path) -> None:
    """A shard whose provider is unreachable stops (exit 3, the command to rerun it); the run takes its status.
    Rerun once the provider is back, the shard fills only its missing cells and the run completes."""
    ledger = str(tmp_path / "l.sqlite")
    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(CASES))
        project.write_rubric()
        spec = project.write_spec(retries={"attempts": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02})
        assert _run_all([_shard_cmd(spec, "2/2", "r3", ledger)], tmp_path)[0].returncode == 0
        srv.set_config(fake_config(faults=[{"kind": "reset", "rate": 1.0, "seed": 1}]))
        r = project.cli("run", str(spec), "--shard", "1/2", "--run-id", "r3", "--ledger", ledger)
        assert r.returncode == 3, r.stderr
        assert f"Rerun it with: benchrun run {spec} --shard 1/2 --run-id r3" in r.stderr, r.stderr
        run = benchrun.Ledger(ledger).run("r3")
        assert run.status == "failed" and run.message is not None and run.message.startswith("shard 1/2 stopped: ")
        sh = run.data["shards"]
        assert sh["line"] == "1 of 2 shards done" and sh["shards"][0]["status"] == "failed"
        errors = [r for r in benchrun.Ledger(ledger).results("r3") if shard_of(r["case_id"], r["model_key"], 0, 2) == 1]
        assert errors and all(r["status"] == "error" for r in errors)  # the stop left errors (and maybe gaps)

        srv.set_config(fake_config())
        srv.reset()
        r = project.cli("run", str(spec), "--shard", "1/2", "--run-id", "r3", "--ledger", ledger)
        assert r.returncode == 0, r.stderr
        stats = srv.stats()
    done = benchrun.Ledger(ledger).run("r3")
    assert done.completed and done.data["shards"]["line"] == "2 of 2 shards done"
    assert done.data["recorded_results"] == 2 * CASES
    # only shard 1's cells were called again (its recorded errors redone, the missing ones done): 2 calls each
    assert stats["total"] == stats["completed"] == 2 * sh["shards"][0]["cells"]


def test_ledger_copy_carries_the_shards(project: Project, tmp_path: Path) -> None:
    """`ledger copy` (SQLite -> SQLite) of a sharded run brings its shard rows: the copy says "1 of 2 shards done"
    while the source does, and "2 of 2" once the last shard has finished and the run is copied again."""
    ledger = str(tmp_path / "l.sqlite")
    dst = str(tmp_path / "copy.sqlite")
    spec = project.setup()

    def copy() -> dict[str, Any]:
        r, stats = project.cli_json("ledger", "copy", "--from", ledger, "--to", dst)
        assert r.returncode == 0, r.stderr
        return dict(stats)

    def shards(url: str) -> dict[str, Any]:
        r, shown = project.cli_json("runs", "show", "r-1", "--ledger", url)
        assert r.returncode == 0, r.stderr
        return dict(shown["shards"])

    first = project.cli("run", str(spec), "--shard", "1/2", "--run-id", "r-1", "--ledger", ledger)
    assert first.returncode == 0, first.stderr
    assert copy()["shards_written"] == 2
    assert shards(dst) == shards(ledger) and shards(dst)["line"] == "1 of 2 shards done"
    done = project.cli("run", str(spec), "--shard", "2/2", "--run-id", "r-1", "--ledger", ledger)
    assert done.returncode == 0, done.stderr
    stats = copy()
    assert stats["shards_written"] == 1 and stats["runs_updated"] == 1  # shard 2's row, now done
    assert shards(dst) == shards(ledger) and shards(dst)["line"] == "2 of 2 shards done"
    r = project.cli("runs", "show", "r-1", "--ledger", dst)
    assert r.returncode == 0 and "2 of 2 shards done" in r.stdout, r.stdout
    again = copy()
    assert not again["changed"] and again["shards_written"] == 0
