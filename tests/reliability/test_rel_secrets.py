"""Secrets: API keys and ledger passwords appear in no artifact and in nothing printed.

Distinct, recognisable keys are put in the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``
and a custom variable whose name does not look like a credential, ``ACME_GATEWAY_AUTH``)
and reach the fake server through ``api_key_env`` or, for ``OPENAI_API_KEY``, through litellm reading
the environment itself (with ``OPENAI_API_BASE``). The server's ``401`` fault echoes the key
it received, in full, in its error body (as a careless provider or proxy might), for candidate
and judge calls. Every command runs as a real subprocess, so anything litellm or a logger writes
to the process's stdout/stderr is captured too. Afterwards every key is searched for, as a
plain string, in: every file under the test's directory (the SQLite ledgers with their -wal and
-shm files, the HTML report, the datasets), everything every command printed, and a dump of
every table of every ledger (including the PostgreSQL one in the PostgreSQL test).

What "a key in a spec" can honestly mean. The schema has no field for a key: keys are read
from the environment variable a spec names (``api_key_env``). So the ways a key can get into a
spec file are: (1) an inline ``api_key:`` field, which the schema rejects as an unknown field;
(2) the key pasted into ``api_key_env`` instead of a variable name; (3) credentials in
``api_base`` (``https://user:KEY@host`` or ``?api_key=KEY``); (4) a YAML comment. (1)-(3) must
be refused before anything is stored, with a message that names the field but not the value;
(4) is never parsed, so it must not reach the ledger (the ledger keeps the parsed spec, not the
file's text). A key typed into free text that is sent to the model (a prompt, a description, a
dataset case) is content: it is sent and recorded verbatim, as it must be for a run to be
reproducible; no tool can tell it from content, and this test does not pretend otherwise. A key
embedded in the path of an ``api_base`` URL (``https://gateway/KEY/v1``) is not detected either.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from conftest import Project, fake_config
from fakeserver import FakeServer
from reliability import relsupport
from reliability.relsupport import dump, query

pg_server, pg_url = relsupport.pg_server, relsupport.pg_url  # fixtures

# Only the Anthropic key has the sk- shape that benchrun also masks by pattern; the others (an OpenAI-compatible
# gateway's key in OPENAI_API_KEY, a custom variable's) can only be hidden by knowing them.
OPENAI_KEY = "gwCnryOpenAI7Lk2Vb9Wz4HtQ0"
ANTHROPIC_KEY = "sk-ant-api03-CnryAnthropic8Jd3Pq5Rm"
CUSTOM_KEY = "acmeCnryGateway6Gw2Kd9Lp4Xs"
PASTED_KEY = "hf_CnryPastedIntoSpec3Vb8Nq2Lw"  # a key typed into a spec file
COMMENT_KEY = "CnryInAComment5Tr7Yu1Io"
LEDGER_PW = "CnryLedgerPw4Zx6Cv"

# ACME_GATEWAY_AUTH is not named like a key (_API_KEY, _KEY, _TOKEN), so api_key_env may name it only when allowed
ENV = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ACME_GATEWAY_AUTH": CUSTOM_KEY,
       "BENCHRUN_ALLOW_KEY_ENV": "ACME_GATEWAY_AUTH"}
SECRETS = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
           "ACME_GATEWAY_AUTH": CUSTOM_KEY, "pasted key": PASTED_KEY, "key in a comment": COMMENT_KEY,
           "ledger password": LEDGER_PW}

# the server answers 401, echoing the key it got, for some candidate calls of each key and for some judge calls
FAULTS = [
    {"kind": "401", "model": "^good$", "contains": "ticket 1)", "first_n": 1000},
    {"kind": "401", "model": "^bad$", "contains": "ticket 4)", "first_n": 1000},
    {"kind": "401", "model": "^implicit$", "contains": "ticket 5)", "first_n": 1000},
    {"kind": "401", "model": "^judge$", "contains": "ticket 3)", "first_n": 1000},
]
UNREACHABLE_LEDGER = f"postgresql+psycopg://u:{LEDGER_PW}@127.0.0.1:1/x"


class Evidence:
    """Runs the CLI as a subprocess with the keys in its environment; keeps everything it printed."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.printed: list[tuple[str, str]] = []

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**ENV, "OPENAI_API_BASE": self.project.url, **(env or {})}
        r = self.project.cli(*args, env=env, subprocess_=True)
        self.printed.append((" ".join(args), r.stdout + "\n" + r.stderr))
        return r

    def leaks(self, root: Path, planted: set[Path], urls: list[str]) -> list[str]:
        """Every place a secret was found: ``"<secret name> in <where>"``."""
        found: list[str] = []
        assert len(self.printed) > 3
        for where, text in self.printed:
            found += [f"{name} printed by `{where}`" for name, s in SECRETS.items() if s in text]
        files = [p for p in root.rglob("*") if p.is_file() and p not in planted]
        assert any(p.name.endswith("-wal") or p.suffix == ".sqlite" for p in files)
        for p in files:
            blob = p.read_bytes()
            found += [f"{name} in file {p.relative_to(root)}" for name, s in SECRETS.items() if s.encode() in blob]
        for url in urls:
            rows = repr(dump(url))
            assert "result" in rows or "cache" in rows
            found += [f"{name} in a table of {make_url(url).get_backend_name()} ledger"
                      for name, s in SECRETS.items() if s in rows]
        return found


def write_spec(project: Project, api_base: str, implicit: bool = True, transport: str | None = None,
               **overrides: Any) -> Path:
    """The test's spec: candidates and judge using all three keys; keys in comments of the file.

    The ``implicit`` candidate names no key and no api_base: litellm takes both from the environment
    (``OPENAI_API_KEY``, ``OPENAI_API_BASE``). Nothing else uses that key, so only benchrun's scan of the
    environment can know it must be hidden.
    """
    price = {"input_per_1m": 1.0, "output_per_1m": 2.0}
    implicit_cand = [{"model": "openai/implicit", "alias": "implicit", "price": price}] if implicit else []
    spec = project.write_spec(
        candidates=[
            {"model": "openai/good", "alias": "good", "api_base": api_base, "api_key_env": "ACME_GATEWAY_AUTH",
             "price": price},
            {"model": "openai/bad", "alias": "bad", "api_base": api_base, "api_key_env": "ANTHROPIC_API_KEY",
             "price": price},
            *implicit_cand,
        ],
        judge={"model": "openai/judge", "api_base": api_base, "api_key_env": "ANTHROPIC_API_KEY",
               "price": {"input_per_1m": 0.5, "output_per_1m": 0.5}},
        **overrides,
    )
    if transport is not None:  # every model through this transport (call workers serve litellm's calls only)
        data = yaml.safe_load(spec.read_text())
        for m in [*data["candidates"], data["judge"]]:
            m["transport"] = transport
        spec.write_text(yaml.safe_dump(data, sort_keys=False))
    spec.write_text(f"# the old key was {COMMENT_KEY}; do not use {OPENAI_KEY}\n" + spec.read_text()
                    + f"# api_key: {COMMENT_KEY}\n")
    return spec


def secrets_project(tmp_path: Path, url: str) -> tuple[Project, Path, Evidence]:
    """A project whose spec uses all three keys, served at ``url``, and the evidence collector for its CLI runs."""
    project = Project(tmp_path, url)
    project.write_dataset()
    project.write_rubric()
    return project, write_spec(project, url), Evidence(project)


def ok(r: subprocess.CompletedProcess[str], *codes: int) -> None:
    assert r.returncode in (codes or (0,)), f"exit {r.returncode}: {r.stdout[-1500:]}\n{r.stderr[-1500:]}"


def test_no_artifact_or_output_holds_a_key(tmp_path: Path) -> None:
    with FakeServer(fake_config(faults=FAULTS)) as server:
        project, spec, ev = secrets_project(tmp_path, server.url)

        r1 = ev.cli("run", str(spec), "--json")
        ok(r1)
        run1 = query(f"sqlite:///{project.ledger}", "SELECT id FROM run")[0][0]
        # the 401s happened, were not retried, and are recorded (with the key redacted): as errors, and as the
        # judge's error where the rules had already failed the answer (case 3 of "bad")
        assert server.stats()["by_status"].get("401", 0) == 6
        assert server.stats()["by_model"]["implicit"] == 6
        rows = query(f"sqlite:///{project.ledger}", "SELECT case_id, model_key, status, COALESCE(error, judge_error), "
                                                    "attempts FROM result WHERE error IS NOT NULL OR judge_error "
                                                    "IS NOT NULL ORDER BY case_id, model_key")
        assert [(c, m, st) for c, m, st, *_ in rows] == [
            ("case-001", "good", "error"), ("case-003", "bad", "failed"), ("case-003", "good", "error"),
            ("case-003", "implicit", "error"), ("case-004", "bad", "error"), ("case-005", "implicit", "error")]
        assert all("AuthenticationError" in e and "Incorrect API key provided: ***" in e for *_, e, _ in rows), rows
        assert all('"retryable": false' in a for *_, a in rows if a != "[]")

        ok(ev.cli("run", "--resume", run1, "--json"))  # the error cells are tried again (and fail again)
        ok(ev.cli("reproduce", run1, "--json"), 0, 1)
        ev.cli("reproduce", run1, "--from-cache")  # refused: the failed calls are not cached
        run2 = query(f"sqlite:///{project.ledger}", "SELECT id FROM run WHERE id != :a ORDER BY created_at", a=run1)[0][0]

        ok(ev.cli("runs", "list", "--json"))
        ok(ev.cli("runs", "show", run1, "--json"))
        ok(ev.cli("runs", "show", run1))
        ok(ev.cli("compare", "good", "bad", "--run", run1))
        ok(ev.cli("compare", "good", "bad", "--run", run1, "--json"))
        ok(ev.cli("shortlist", run1, run2, "--json"))
        ok(ev.cli("diff", run1, run2))
        ok(ev.cli("diff", run1, run2, "--json"))
        ok(ev.cli("report", run1, "--html", str(tmp_path / "out" / "report.html"), "--compare", "good,bad",
                  "--shortlist"))
        assert (tmp_path / "out" / "report.html").stat().st_size > 1000
        copy = tmp_path / "copy" / "ledger.sqlite"
        ok(ev.cli("ledger", "copy", "--from", str(project.ledger), "--to", str(copy), "--json"))
        ok(ev.cli("ledger", "info", "--ledger", str(copy), "--json"))

        # a key pasted into a judge option of the judge-trust commands: refused without echoing it
        for opt in (("--api-key-env", PASTED_KEY), ("--api-base", f"http://127.0.0.1:1/v1?api_key={PASTED_KEY}")):
            r = ev.cli("bias", "verbosity", "--run", run1, "--judge", "openai/judge2", *opt)
            ok(r, 2)
            assert "--api-key-env" in r.stderr, r.stderr

        # a provider that cannot be reached: the run stops, saying why, naming no key
        bad_base = write_spec(project, "http://127.0.0.1:1/v1", implicit=False, name="unreachable")
        r = ev.cli("run", str(bad_base))
        ok(r, 3)
        assert "unreachable" in r.stderr
        # a wrong ledger URL with a password: refused, the URL printed with the password hidden
        for args in (("runs", "list", "--ledger", UNREACHABLE_LEDGER),
                     ("ledger", "copy", "--from", str(project.ledger), "--to", UNREACHABLE_LEDGER),
                     ("ledger", "info")):
            r = ev.cli(*args, env={"BENCHRUN_LEDGER": UNREACHABLE_LEDGER})
            ok(r, 2)
            assert "u:***@127.0.0.1:1/x" in r.stderr and "Traceback" not in r.stderr, r.stderr
        r = ev.cli("run", str(spec), env={"BENCHRUN_LEDGER": UNREACHABLE_LEDGER})
        ok(r, 2)

    leaks = ev.leaks(tmp_path, {spec, bad_base}, [f"sqlite:///{project.ledger}", f"sqlite:///{copy}"])
    assert not leaks, leaks


def test_keys_stay_hidden_when_worker_processes_make_the_calls(tmp_path: Path) -> None:
    """The same 401s echoing every key, with the calls (and their error messages) made in call workers."""
    with FakeServer(fake_config(faults=FAULTS)) as server:
        project, spec, ev = secrets_project(tmp_path, server.url)
        spec = write_spec(project, server.url, transport="litellm")
        r = ev.cli("run", str(spec), "--call-workers", "2")
        ok(r)
        assert "2 call worker processes" in r.stderr
        run_id = query(f"sqlite:///{project.ledger}", "SELECT id FROM run")[0][0]
        ok(ev.cli("run", "--resume", run_id, "--call-workers", "2", "--json"))
        ok(ev.cli("runs", "list", "--json"))
        ok(ev.cli("runs", "show", run_id))
        ok(ev.cli("runs", "show", run_id, "--json"))
        # 6 in the run; the resume redoes its 5 error cells (case-003 of "bad" failed on its rules, so its judge's
        # 401 left a failure, not an error, and it is not redone)
        assert server.stats()["by_status"].get("401", 0) == 6 + 5
        errors = [e for (e,) in query(f"sqlite:///{project.ledger}",
                                      "SELECT COALESCE(error, judge_error) FROM result WHERE error IS NOT NULL OR "
                                      "judge_error IS NOT NULL")]
        assert len(errors) == 6 and all("Incorrect API key provided: ***" in e for e in errors), errors
    leaks = ev.leaks(tmp_path, {spec}, [f"sqlite:///{project.ledger}"])
    assert not leaks, leaks


def test_postgres_ledger_password_and_keys_are_not_leaked(tmp_path: Path, pg_url: str) -> None:
    """The same on a PostgreSQL ledger reached through a URL with a password, and copies both ways.

    The test cluster authenticates by ``trust``, so the server accepts the URL whatever its password: what is
    checked is only that benchrun never prints or stores it.
    """
    pw_url = make_url(pg_url).set(password=LEDGER_PW).render_as_string(hide_password=False)
    with FakeServer(fake_config(faults=FAULTS)) as server:
        project, spec, ev = secrets_project(tmp_path, server.url)
        pg = {"BENCHRUN_LEDGER": pw_url}  # the password reaches benchrun the way a team would configure it

        r = ev.cli("run", str(spec), env=pg)  # text output: it names the ledger it writes to
        ok(r)
        assert f":***@{make_url(pg_url).host}" in r.stderr
        ok(ev.cli("run", str(spec), "--json"))  # a second run, in SQLite
        ok(ev.cli("runs", "list", "--ledger", pw_url))
        ok(ev.cli("ledger", "info", "--ledger", pw_url))
        ok(ev.cli("ledger", "info", "--json", env=pg))
        for args in (("--from", pw_url, "--to", str(project.ledger)), ("--from", str(project.ledger), "--to", pw_url)):
            ok(ev.cli("ledger", "copy", *args))
            ok(ev.cli("ledger", "copy", *args, "--json"))
        run_pg = query(pg_url, "SELECT id FROM run ORDER BY created_at")[0][0]
        ok(ev.cli("runs", "show", run_pg, "--json", env=pg))
        ok(ev.cli("report", run_pg, "--html", str(tmp_path / "pg.html"), env=pg))

    assert query(pg_url, "SELECT COUNT(*) FROM run")[0][0] == 2
    assert query(pg_url, "SELECT COUNT(*) FROM result WHERE status = 'error'")[0][0] == 10  # 5 per run
    leaks = ev.leaks(tmp_path, {spec}, [pg_url, f"sqlite:///{project.ledger}"])
    assert not leaks, leaks


def _candidate(project: Project, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/good", "alias": "good", "api_base": project.url, **extra}


KEYS_IN_SPEC: dict[str, Any] = {
    "inline api_key": lambda p: {"candidates": [_candidate(p, api_key=PASTED_KEY)]},
    "inline api_key on the judge": lambda p: {"judge": {"model": "openai/judge", "api_base": p.url,
                                                         "api_key": PASTED_KEY}},
    "key as api_key_env": lambda p: {"candidates": [_candidate(p, api_key_env=PASTED_KEY)]},
    "sk- key as api_key_env": lambda p: {"candidates": [_candidate(p, api_key_env=ANTHROPIC_KEY)]},
    "long mixed-case key as api_key_env": lambda p: {"candidates": [_candidate(p, api_key_env=CUSTOM_KEY)]},
    "password in api_base": lambda p: {"candidates": [_candidate(p, api_base=p.url.replace("//", f"//me:{PASTED_KEY}@"))]},
    "key in api_base query": lambda p: {"candidates": [_candidate(p, api_base=f"{p.url}?api_key={PASTED_KEY}")]},
    "key in judge api_base query": lambda p: {"judge": {"model": "openai/judge",
                                                         "api_base": f"{p.url}?key={PASTED_KEY}"}},
}


@pytest.mark.parametrize("where", list(KEYS_IN_SPEC))
def test_a_key_written_into_a_spec_is_refused_and_not_echoed(tmp_path: Path, server: FakeServer, where: str) -> None:
    project = Project(tmp_path, server.url)
    project.write_dataset()
    project.write_rubric()
    spec = project.write_spec(**KEYS_IN_SPEC[where](project))
    ev = Evidence(project)
    for args in (("validate", str(spec)), ("run", str(spec)), ("run", str(spec), "--json")):
        r = ev.cli(*args)
        ok(r, 2)
        assert "api_key" in r.stderr or "api_base" in r.stderr, r.stderr  # names the field, not the value
    ok(ev.cli("runs", "list", "--json"))
    assert server.stats()["total"] == 0
    assert query(f"sqlite:///{project.ledger}", "SELECT COUNT(*) FROM run")[0][0] == 0
    text = yaml.safe_dump(KEYS_IN_SPEC[where](project))
    assert PASTED_KEY in text or ANTHROPIC_KEY in text or CUSTOM_KEY in text  # the spec really held a key
    leaks = ev.leaks(tmp_path, {spec}, [f"sqlite:///{project.ledger}"])
    assert not leaks, leaks
