"""benchrun's public Python API: what the CLI is built on, for notebooks, scripts and test suites.

Every function here does what the command of the same name does, without printing: it returns a
typed result and raises the errors of `benchrun.errors` with the one-line message the CLI would
print (`BadInput` and `UsageError` are exit code 2 there, `RunAborted` exit code 3).

    import benchrun

    result = benchrun.run("runs/billing-support.yaml")
    result.models[0].pass_rate            # 0.83
    result.passed(fail_on="high")         # the quality gate `benchrun run --fail-on high` applies
    cmp = benchrun.compare("good", "bad", run=result.run_id)
    cmp.verdict

Every result keeps the plain data the CLI renders and ``--json`` prints in ``.data``, so
anything the typed fields leave out is still there. This module imports only the standard
library at import time; the heavy parts (litellm, numpy, the ledger) load on first call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchrun.errors import UsageError

if TYPE_CHECKING:
    from benchrun.estimation import Estimate
    from benchrun.ledger import Ledger as _Store
    from benchrun.ledger.tables import Run
    from benchrun.runner import Progress
    from benchrun.shards import Shard
    from benchrun.spec import LoadedSpec

ProgressHook = Callable[["Progress"], None]

_SEVERITIES = ("high", "medium", "low")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelResult:
    """One candidate's line of the per-model table (`benchrun run`, `runs show`)."""

    model_key: str
    model: str
    results: int
    passed: int
    failed: int
    errors: int
    pass_rate: float | None  # over scored results (errors left out); see pass_rate_low / _high
    pass_rate_low: float | None
    pass_rate_high: float | None
    interval_method: str | None
    pass_rate_errors_as_fail: float | None
    mean_judge_score: float | None
    cost_usd: float
    cost_unknown_calls: int  # > 0: cost_usd is a lower bound
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResult:
        pr = d.get("pass_rate") or {}
        scored = d["passed"] + d["failed"]
        return cls(
            model_key=d["model_key"], model=d["model"], results=d["results"], passed=d["passed"], failed=d["failed"],
            errors=d["errors"], pass_rate=pr.get("estimate") if scored else None,
            pass_rate_low=pr.get("low") if scored else None, pass_rate_high=pr.get("high") if scored else None,
            interval_method=pr.get("method"), pass_rate_errors_as_fail=d.get("pass_rate_errors_as_fail"),
            mean_judge_score=d.get("mean_judge_score"), cost_usd=d["cost_usd"],
            cost_unknown_calls=d["cost_unknown_calls"], latency_p50_ms=d.get("latency_p50_ms"),
            latency_p95_ms=d.get("latency_p95_ms"),
        )


@dataclass(frozen=True)
class ModelBreakdown:
    """Where one candidate failed: by severity and category, failure modes, high-severity case ids."""

    model_key: str
    do_not_ship: bool
    high_severity_failures: list[str]
    by_severity: dict[str, dict[str, int]]
    by_category: dict[str, dict[str, int]]
    failure_modes: dict[str, int]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelBreakdown:
        return cls(d["model_key"], bool(d["do_not_ship"]), list(d["high_severity_failures"]), dict(d["by_severity"]),
                   dict(d["by_category"]), dict(d["failure_modes"]))


@dataclass(frozen=True)
class RunResult:
    """A recorded run: its status, per-model summaries, failure breakdown, and the quality gates.

    ``data`` is the summary `benchrun run --json` / `benchrun runs show --json` prints.
    """

    run_id: str
    name: str
    status: str  # completed | interrupted | failed | budget_exceeded | running
    message: str | None
    models: list[ModelResult]
    breakdown: list[ModelBreakdown]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> RunResult:
        c = summary["conditions"]
        return cls(run_id=c["run_id"], name=c["name"], status=c["status"], message=c.get("message"),
                   models=[ModelResult.from_dict(m) for m in summary["models"]],
                   breakdown=[ModelBreakdown.from_dict(b) for b in summary["breakdown"]], data=summary)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def model(self, key: str) -> ModelResult:
        for m in self.models:
            if m.model_key == key:
                return m
        raise KeyError(f"run {self.run_id} has no model '{key}'; it has: {', '.join(m.model_key for m in self.models)}")

    def gate_failures(self, fail_on: str | None = None, min_pass_rate: float | None = None) -> list[str]:
        """What `benchrun run --fail-on ... --min-pass-rate ...` prints as ``gate failed:`` lines (empty: passed)."""
        if fail_on is not None and fail_on not in _SEVERITIES:
            raise UsageError(f"fail_on must be one of {', '.join(_SEVERITIES)}, not {fail_on!r}")
        if min_pass_rate is not None and not 0 <= min_pass_rate <= 1:
            raise UsageError(f"min_pass_rate must be between 0 and 1, not {min_pass_rate}")
        from benchrun.report.summary import gate_failures

        problems = gate_failures(self.data, fail_on, min_pass_rate)
        if not self.completed:  # a run that did not finish passes no gate
            problems.insert(0, f"run {self.run_id} is '{self.status}', not completed")
        return problems

    def passed(self, fail_on: str | None = None, min_pass_rate: float | None = None) -> bool:
        """True when the run completed and every gate given holds (no gate given: completed)."""
        return not self.gate_failures(fail_on, min_pass_rate)


@dataclass(frozen=True)
class RunInfo:
    """One line of `benchrun runs list`."""

    id: str
    name: str
    status: str
    created_at: str
    dataset: str
    dataset_version: str
    dataset_hash: str
    models: list[str]
    judge: str
    totals: dict[str, Any]
    reproduction_of: str | None = None  # the run this one reproduced (`benchrun reproduce`), else None


@dataclass(frozen=True)
class Comparison:
    """`benchrun compare A B`: the paired comparison; ``data`` is what ``--json`` prints."""

    a: str
    b: str
    verdict: str
    larger_than_noise: bool
    difference: float | None  # pass rate of A minus B over the paired cases
    n_pairs: int
    warnings: list[str]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Comparison:
        c = d["comparison"]
        return cls(a=d["a"]["name"], b=d["b"]["name"], verdict=d["verdict"],
                   larger_than_noise=bool(d["larger_than_noise"]), difference=c.get("difference"),
                   n_pairs=int(c.get("n_pairs") or 0), warnings=list(d["warnings"]), data=d)


@dataclass(frozen=True)
class Reproduction:
    """`benchrun reproduce RUN_ID`: whether the re-run reproduced the original; ``data`` is the ``--json``."""

    original_run: str
    reproduction_run: str
    reproduced: bool
    verdict: str
    models: dict[str, bool]  # model key -> reproduced within noise
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Reproduction:
        return cls(d["original_run"], d["reproduction_run"], bool(d["reproduced"]), d["verdict"],
                   {m["model_key"]: bool(m["reproduced"]) for m in d["models"]}, d)


@dataclass(frozen=True)
class Shortlist:
    """`benchrun shortlist`: ranked candidates (best first) and the excluded ones with reasons."""

    ranked: list[str]  # candidate keys, best first
    excluded: dict[str, list[str]]  # candidate key -> reasons
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Shortlist:
        return cls([r["candidate"]["key"] for r in d["ranked"]],
                   {x["candidate"]["key"]: list(x["reasons"]) for x in d["excluded"]}, d)


@dataclass(frozen=True)
class Sweep:
    """`benchrun sweep`: one run per setup, each model's score per setup, and the setup-noise verdict."""

    sweep_id: str
    run_ids: list[str]
    larger_than_setup_noise: bool | None  # the two best models' gap vs either's range across setups
    verdict: str | None
    stopped: str | None  # why the sweep stopped early (budget, a run that did not complete), None: all ran
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Sweep:
        sens = d["sensitivity"]
        return cls(d["sweep_id"], [s["run_id"] for s in d["setups"]], sens["larger_than_setup_noise"],
                   sens["verdict"], d.get("stopped"), d)


@dataclass(frozen=True)
class Calibration:
    """`benchrun calibrate`: does the judge agree with people? ``data`` is what ``--json`` prints."""

    run_id: str
    trusted: bool
    kappa: float | None
    n: int
    summary: str
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CoverageResult:
    """`benchrun coverage`: how far the eval set is from production; ``data`` is the full report (``--json``)."""

    jsd: float
    band: str  # the JSD band: good, watch or refresh (see docs/coverage.md)
    headline: str | None
    report_id: int | None  # the ledger report, when stored
    data: dict[str, Any] = field(repr=False)
    embedding_cost_usd: float | None = None  # remote embedders: what the texts not in the cache cost (None: unknown)
    stability_jsd: float | None = None  # k-means fitted on a sample: JSD of the shares of two fits (docs/scale.md)


# ----------------------------------------------------------------------------- the ledger


class Ledger:
    """A ledger to read (and for the API functions to write): SQLite path or SQLAlchemy URL.

    ``None`` means what the CLI uses: ``$BENCHRUN_LEDGER``, else ``runs/ledger.sqlite``.
    """

    def __init__(self, url: str | Path | _Store | None = None) -> None:
        from benchrun.ledger import Ledger as Store

        self.store: _Store = url if isinstance(url, Store) else Store(str(url) if url is not None else None)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        from benchrun.ledger import redact_url

        return redact_url(self.store.url)

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    def runs(self, limit: int = 50) -> list[RunInfo]:
        """Runs, newest first (what `benchrun runs list` shows)."""
        out = []
        repro = self.store.reproductions()
        for r in self.store.list_runs(limit):
            out.append(RunInfo(
                id=r.id, name=r.name, status=r.status, created_at=r.created_at.isoformat(), dataset=r.dataset_name,
                dataset_version=r.dataset_version, dataset_hash=r.dataset_hash,
                models=[m["key"] for m in json.loads(r.models)], judge=r.judge_model,
                totals=json.loads(r.totals or "{}"), reproduction_of=repro.get(r.id),
            ))
        return out

    def run(self, run_id: str) -> RunResult:
        """One run by id or unique prefix (what `benchrun runs show` shows). `UsageError` when unknown."""
        from benchrun.report.summary import build_summary

        return RunResult.from_summary(build_summary(self.store, self.store.get_run(run_id)))

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """Every recorded result row of a run (one per case × model × sample), as plain dicts."""
        from benchrun.report.summary import result_dicts

        return result_dicts(self.store.results(self.store.get_run(run_id).id))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _store(ledger: str | Path | Ledger | None) -> _Store:
    if isinstance(ledger, Ledger):
        return ledger.store
    from benchrun.ledger import Ledger as Store

    if isinstance(ledger, Store):
        return ledger
    return Store(str(ledger) if ledger is not None else None)


# ----------------------------------------------------------------------------- running


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate a run spec with its dataset and rubric (no model is called). `BadInput` if wrong."""
    from benchrun.spec import load_run_spec

    return load_run_spec(path)


@dataclass(frozen=True)
class Prepared:
    """A run recorded in the ledger and ready to execute (what `run` / `resume` do before the first call)."""

    loaded: LoadedSpec
    store: _Store
    run_id: str
    call_workers: int
    unsafe_exec: bool = False
    shard: Shard | None = None  # one shard of a sharded run: only its cells run (see `benchrun.shards`)


def check_key_variables(loaded: Any, where: Any) -> None:
    """An unset API-key variable is bad input: exit 2 before anything is recorded in the ledger."""
    from benchrun.errors import BadInput
    from benchrun.spec import missing_key_variables

    missing = missing_key_variables(loaded.spec)
    if missing:
        key, var = missing[0]
        more = f" (also: {', '.join(v for _, v in missing[1:])})" if len(missing) > 1 else ""
        raise BadInput(where, f"model {key}", f"environment variable {var} is not set{more}; export it, then run "
                       "again (nothing was run or recorded)")


def prepare_run(spec: str | Path | LoadedSpec, *, ledger: str | Path | Ledger | None = None,
                require_calibrated: bool = False, call_workers: int | str = 0, unsafe_exec: bool = False,
                batch: bool = False) -> Prepared:
    """Load the spec, check it, and record a new run (status ``running``); nothing is called yet.
    ``batch`` sends every model's calls through its provider's batch API (`benchrun.batch`)."""
    from benchrun import runner

    loaded, store, workers = _checked_spec(spec, ledger, require_calibrated, call_workers, batch)
    return Prepared(loaded, store, runner.create_run(loaded, store, unsafe_exec=unsafe_exec), workers, unsafe_exec)


def _checked_spec(spec: str | Path | LoadedSpec, ledger: str | Path | Ledger | None, require_calibrated: bool,
                  call_workers: int | str, batch: bool = False) -> tuple[LoadedSpec, _Store, int]:
    """The spec loaded and checked before a run is recorded: key variables set, call workers, calibration."""
    from benchrun import providers, runner
    from benchrun.spec import LoadedSpec

    providers.collect_env_secrets()
    store = _store(ledger)
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    if batch:
        from benchrun.batch import batch_all

        loaded = batch_all(loaded)
    check_key_variables(loaded, loaded.path or "spec")
    workers = runner.call_workers_for(loaded, call_workers)
    if require_calibrated:
        check_calibrated(store, loaded)
    return loaded, store, workers


def prepare_shard(spec: str | Path | LoadedSpec, shard: str, run_id: str, *,
                  ledger: str | Path | Ledger | None = None, require_calibrated: bool = False,
                  call_workers: int | str = 0, unsafe_exec: bool = False) -> Prepared:
    """One shard (``"2/4"``) of run ``run_id``, as `benchrun run SPEC --shard 2/4 --run-id ID`: the first shard to
    arrive records the run; a later one must have the same spec (`BadInput`, naming the differing field, if not)
    and the same number of shards (`UsageError`). See `benchrun.shards`."""
    from benchrun import shards

    part = shards.parse_shard(shard)
    shards.check_run_id(run_id)
    loaded, store, workers = _checked_spec(spec, ledger, require_calibrated, call_workers)
    if loaded.spec.judge is not None and loaded.spec.judge.pairwise:  # before anything is recorded
        raise UsageError("--shard does not support judge.mode pairwise yet (its pairs need every shard's answers); "
                         "run the spec without --shard")
    shards.arrive(loaded, store, part, run_id, unsafe_exec=unsafe_exec)
    return Prepared(loaded, store, run_id, workers, unsafe_exec, part)


def prepare_resume(run_id: str, *, ledger: str | Path | Ledger | None = None,
                   call_workers: int | str = 0, unsafe_exec: bool = False, confirmed: bool = False,
                   on_credentials: Callable[[list[str]], None] | None = None) -> Prepared:
    """Reopen a recorded run for its missing or errored cells. `UsageError` if it is complete.

    The run's stored snapshot is a ledger row that anyone who writes the ledger can edit: the
    environment variables it reads and the hosts it sends them to are given to ``on_credentials``
    (one line each), and when they differ from the spec file on disk (or it is absent) the resume is
    refused (`UsageError`, nothing called or marked) unless ``confirmed`` (the CLI's ``--yes``).
    """
    from benchrun import credentials, providers, runner
    from benchrun.spec import LoadedSpec

    providers.collect_env_secrets()
    store = _store(ledger)
    prior = store.get_run(run_id)
    from benchrun.shards import refuse_resume

    refuse_resume(store, prior.id)
    if prior.status == "completed" and not any(st == "error" for st in store.cells(prior.id).values()) \
            and not any(j.status == "error" for j in store.pair_judgements(prior.id)):  # pairwise runs' judgements
        raise UsageError(f"run {prior.id} is already complete; nothing to resume")
    loaded = LoadedSpec.from_snapshot(json.loads(prior.spec_snapshot))
    loaded.path = prior.spec_path
    check = credentials.assess(prior, loaded.spec)
    if on_credentials is not None:
        on_credentials(check.lines())
    credentials.require(check, confirmed, f"benchrun run --resume {prior.id}")
    check_key_variables(loaded, prior.spec_path or f"run {prior.id}")
    workers = runner.call_workers_for(loaded, call_workers)
    runner.code_sandbox(loaded, unsafe_exec=unsafe_exec)  # refuse before anything is called
    # marked running by execute_run once it holds the run's lease (a second resume is refused before that)
    return Prepared(loaded, store, prior.id, workers, unsafe_exec)


def execute(prepared: Prepared, *, cache: bool = True, progress: ProgressHook | None = None,
            on_start: Callable[[], None] | None = None,
            interrupt_guard: Callable[[], AbstractContextManager[Any]] | None = None) -> RunResult:
    """Run a prepared run to its end (see `benchrun.execution.execute_run`) and return its summary.

    A run that stops early (budget cap, provider unreachable) is returned with its status, not
    raised: the caller decides (the CLI exits 3; `RunResult.passed` is False).
    """
    from benchrun.execution import execute_run
    from benchrun.report.summary import build_summary

    execute_run(prepared.loaded, prepared.store, prepared.run_id, use_cache=cache,
                call_workers=prepared.call_workers, unsafe_exec=prepared.unsafe_exec, on_progress=progress, on_start=on_start,
                interrupt_guard=interrupt_guard, shard=prepared.shard)
    return RunResult.from_summary(build_summary(prepared.store, prepared.store.get_run(prepared.run_id)))


def run(spec: str | Path | LoadedSpec, *, ledger: str | Path | Ledger | None = None, cache: bool = True,
        progress: ProgressHook | None = None, require_calibrated: bool = False,
        call_workers: int | str = 0, unsafe_exec: bool = False, shard: str | None = None,
        run_id: str | None = None, batch: bool = False) -> RunResult:
    """Run a spec (every case × candidate × sample, scored, recorded in the ledger) and return its summary.

    Raises `BadInput` for a bad spec, dataset or rubric (nothing is recorded then), `UsageError`
    for ``require_calibrated`` without a trusted calibration, `RunAborted` when interrupted (the
    run is marked and resumable). ``progress`` is called with a `benchrun.runner.Progress` after
    each result. ``call_workers`` is 0 (calls in this process) by default; ``"auto"`` as the CLI.
    ``unsafe_exec`` runs code checks without bubblewrap (`benchrun run --unsafe-exec`); without it a
    spec whose cases run code is refused (`UsageError`) when bubblewrap cannot isolate them.
    With ``shard="2/4"`` and ``run_id`` it runs one shard of a sharded run (see `prepare_shard`).
    Cannot be called from a running event loop (a notebook cell): use `arun` there.
    """
    _no_running_loop("run", "`await benchrun.arun(...)`")
    if shard is not None or run_id is not None:
        if shard is None or run_id is None:
            raise UsageError("a sharded run needs both shard (e.g. '2/4') and run_id")
        return execute(prepare_shard(spec, shard, run_id, ledger=ledger, require_calibrated=require_calibrated,
                                     call_workers=call_workers, unsafe_exec=unsafe_exec), cache=cache, progress=progress)
    return execute(prepare_run(spec, ledger=ledger, require_calibrated=require_calibrated,
                               call_workers=call_workers, unsafe_exec=unsafe_exec, batch=batch), cache=cache,
                   progress=progress)


def resume(run_id: str, *, ledger: str | Path | Ledger | None = None, cache: bool = True,
           progress: ProgressHook | None = None, call_workers: int | str = 0, unsafe_exec: bool = False) -> RunResult:
    """Complete the missing (and errored) results of a recorded run, like `benchrun run --resume`."""
    _no_running_loop("resume", "`await benchrun.aresume(...)`")
    return execute(prepare_resume(run_id, ledger=ledger, call_workers=call_workers, unsafe_exec=unsafe_exec),
                   cache=cache, progress=progress)


async def arun(spec: str | Path | LoadedSpec, **kw: Any) -> RunResult:
    """`run` for code that already runs an event loop (Jupyter, async apps): the run executes in a
    worker thread with its own loop, so the caller's loop keeps serving. Same arguments as `run`."""
    return await asyncio.to_thread(_in_thread(run), spec, **kw)


async def aresume(run_id: str, **kw: Any) -> RunResult:
    """`resume` for code that already runs an event loop. Same arguments as `resume`."""
    return await asyncio.to_thread(_in_thread(resume), run_id, **kw)


def _in_thread(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    def call(*a: Any, **kw: Any) -> RunResult:
        return fn(*a, **kw)  # a fresh thread has no running loop, so the check in fn passes

    return call


def _no_running_loop(name: str, alternative: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(f"benchrun.{name}() cannot run inside a running event loop (a notebook cell, an async app); "
                     f"use {alternative} there")


def check_calibrated(store: _Store, loaded: LoadedSpec) -> None:
    """`UsageError` unless the spec's judge has a trusted calibration for this rubric and judge prompt."""
    from benchrun.report.summary import latest_calibration

    if loaded.spec.judge is None or loaded.rubric is None:
        return  # scored by rules only: there is no judge to calibrate
    judge, rb = loaded.spec.judge.model, loaded.rubric
    cal = latest_calibration(store, judge, rb.judge_prompt_hash, rb.hash)
    if cal is None:
        raise UsageError(
            f"judge {judge} is uncalibrated for rubric {rb.name} v{rb.version} (prompt {rb.judge_prompt_hash[:12]}); "
            "run `benchrun calibrate` with human labels first, or drop --require-calibrated"
        )
    if not cal.get("trusted"):
        raise UsageError(f"judge {judge} is not trusted by its latest calibration: {cal.get('summary')}")


# ----------------------------------------------------------------------------- reading and comparing


def compare(a: str, b: str, *, run: str | None = None, ledger: str | Path | Ledger | None = None) -> Comparison:
    """Is A better than B? ``a`` / ``b`` are model keys of ``run``, or ``RUN_ID:MODEL_KEY``, or the id of a
    one-model run. Paired per case, as `benchrun compare`."""
    from benchrun.report.comparison import compare_payload, resolve_ref

    store = _store(ledger)
    ra, rb = resolve_ref(store, a, run), resolve_ref(store, b, run)
    if ra[0].id == rb[0].id and ra[1] == rb[1]:
        raise UsageError(f"A and B are the same model ({ra[1]} in run {ra[0].id}); compare two different ones")
    return Comparison.from_payload(compare_payload(store, ra, rb))


def reproduce(run_id: str, *, from_cache: bool = False, ledger: str | Path | Ledger | None = None,
              unsafe_exec: bool = False, confirmed: bool = False, progress: ProgressHook | None = None,
              on_start: Callable[[], None] | None = None,
              interrupt_guard: Callable[[], AbstractContextManager[Any]] | None = None) -> Reproduction:
    """Re-run a recorded run from its stored snapshot as a new run and say whether it reproduced.

    `UsageError` when ``from_cache`` is set and a call is missing from the cache (nothing runs),
    when the snapshot would send credentials to hosts or read variables the spec file on disk does not
    and ``confirmed`` is not set (`benchrun.credentials`), and `RunAborted` when the new run cannot complete.
    """
    from benchrun.reproduce import reproduce as do_reproduce

    _no_running_loop("reproduce", "`await asyncio.to_thread(benchrun.reproduce, ...)`")
    d = do_reproduce(_store(ledger), run_id, from_cache=from_cache, unsafe_exec=unsafe_exec, confirmed=confirmed,
                     on_progress=progress,
                     on_start=on_start,
                     interrupt_guard=interrupt_guard)
    return Reproduction.from_payload(d)


def shortlist(run_ids: Sequence[str], *, max_cost_per_1k: float | None = None, max_p95_ms: float | None = None,
              max_high_severity: int | None = None, min_pass_rate: float | None = None,
              weights: dict[str, float] | None = None, ledger: str | Path | Ledger | None = None) -> Shortlist:
    """The decision table of `benchrun shortlist`: every model of the runs is a candidate."""
    from benchrun.report.shortlist import shortlist_payload

    if not run_ids:
        raise UsageError("give one or more run ids")
    d = shortlist_payload(_store(ledger), list(run_ids), max_cost_per_1k, max_p95_ms, max_high_severity,
                          min_pass_rate, weights)
    return Shortlist.from_payload(d)


def sweep(spec: str | Path | LoadedSpec, vary: Sequence[str] | dict[str, Sequence[Any]], *,
          ledger: str | Path | Ledger | None = None, budget_usd: float | None = None, cache: bool = True,
          progress: ProgressHook | None = None, call_workers: int | str = 0, unsafe_exec: bool = False,
          on_run: Callable[[dict[str, str], RunResult], None] | None = None) -> Sweep:
    """Run ``spec`` once per combination of the factors in ``vary`` (``["temperature=0,0.7"]`` or
    ``{"temperature": [0, 0.7]}``; see `benchrun.sweep_runs`), each a normal run tagged with the sweep id,
    and report each model's score per setup and whether the gap between the two best exceeds setup noise.

    ``budget_usd`` (else the spec's ``budget_usd``) caps the fresh spend of the whole sweep. `BadInput`
    for a bad factor or value (nothing recorded); `UsageError` when the runs differ in more than the factors.
    ``on_run(setup, result)`` is called after each setup's run.
    """
    from benchrun import sweep_runs as sw
    from benchrun.report.sweep import sweep_payload

    _no_running_loop("sweep", "`await asyncio.to_thread(benchrun.sweep, ...)`")
    if budget_usd is not None and not budget_usd > 0:
        raise UsageError(f"the sweep budget must be more than $0, not {budget_usd}")
    if isinstance(vary, dict):
        vary = [f"{k}={','.join(str(v) for v in vals)}" for k, vals in vary.items()]
    factors = sw.parse_vary(list(vary))
    store = _store(ledger)
    loaded = spec if not isinstance(spec, (str, Path)) else load_spec(spec)

    def run_one(variant: LoadedSpec) -> tuple[str, str, float]:
        spent = [0.0]

        def hook(p: Progress) -> None:
            spent[0] = p.cost_usd  # fresh spend so far (cached answers cost nothing)
            if progress is not None:
                progress(p)

        res = execute(prepare_run(variant, ledger=store, call_workers=call_workers, unsafe_exec=unsafe_exec),
                      cache=cache, progress=hook)
        if on_run is not None:
            on_run(dict(variant.sweep["setup"]), res)
        return res.run_id, res.status, spent[0]

    done = sw.run_sweep(loaded, factors, run_one, budget_usd)
    ran = [store.get_run(rid) for _, rid in done.runs if rid is not None]
    d = sweep_payload(store, ran)
    d["not_run"] = [setup for setup, rid in done.runs if rid is None]
    d["stopped"] = done.stopped
    d["spent_usd"] = done.spent_usd
    return Sweep.from_payload(d)


def sweep_report(sweep_id: str, *, ledger: str | Path | Ledger | None = None) -> Sweep:
    """The report of a recorded sweep (its runs found in the ledger by the sweep id)."""
    from benchrun.report.sweep import find_sweep_runs, sweep_payload

    store = _store(ledger)
    d = sweep_payload(store, find_sweep_runs(store, sweep_id))
    d["not_run"], d["stopped"], d["spent_usd"] = [], None, None
    return Sweep.from_payload(d)


def check_refusals(run_id: str, *, judge: str, api_base: str | None = None, api_key_env: str | None = None,
                   cache: bool = True, ledger: str | Path | Ledger | None = None) -> dict[str, Any]:
    """Ask ``judge`` which answered results of the run refuse, as `benchrun refusals`; stored in the ledger
    (the holistic row of `runs show` then carries the judge's refusal rate). Returns the stored payload."""
    from benchrun.refusal_check import check_refusals as check

    _no_running_loop("check_refusals", "`await asyncio.to_thread(benchrun.check_refusals, ...)`")
    return check(_store(ledger), run_id, judge, api_base, api_key_env, use_cache=cache)


def arena(run_id: str | None = None, *, battles: str | Path | None = None, anchor: str | None = None,
          baseline: str | None = None, draws: int = 1000, seed: int = 0, human: bool = False,
          ledger: str | Path | Ledger | None = None) -> dict[str, Any]:
    """Bradley-Terry ratings as `benchrun arena`: of a pairwise run's battles (``run_id``; the judgements in
    the ledger under the both-orders rule, with position consistency per judge and the tie share under
    ``judges``), or of a battles file (``battles``). Returns the JSON record of `benchrun.report.arena`.
    ``baseline`` defaults to the run's ``judge.pairs.baseline``. With imported human votes
    (`benchrun labels import`) the record has ``human_agreement`` (judge vs people, MT-Bench style, and
    Cohen's kappa over {A, B, tie}); ``human`` rates the people's votes instead of the judge's verdicts.
    `BadInput` for a bad file or option, `UsageError` for a run that is not pairwise."""
    if (run_id is None) == (battles is None):
        raise UsageError("give a RUN_ID of a pairwise run or --battles FILE (one of them)")
    if battles is not None:
        from benchrun.analysis.arena import rate
        from benchrun.battles import load_battles
        from benchrun.errors import BadInput
        from benchrun.report.arena import arena_payload

        if human:
            raise UsageError("--human rates a pairwise run's human votes; give a RUN_ID instead of --battles")
        rows = load_battles(battles)
        try:
            res = rate(rows, anchor=anchor, baseline=baseline, n_boot=draws, seed=seed)
        except BadInput as e:  # the analysis names the option or the problem; add the file
            raise BadInput(battles, e.where, e.what) from None
        return arena_payload(res)
    from benchrun.report.arena import run_arena_payload

    store = _store(ledger)
    return run_arena_payload(store, store.get_run(str(run_id)), anchor=anchor, baseline=baseline, draws=draws,
                             seed=seed, human=human)


def calibrate(run_id: str, labels: str | Path, *, threshold: float = 0.6, judge: str | None = None,
              api_base: str | None = None, api_key_env: str | None = None, cache: bool = True,
              ledger: str | Path | Ledger | None = None) -> Calibration:
    """Compare the run's judge (or ``judge``, re-judging the labelled items) with human labels, as
    `benchrun calibrate`; the calibration is stored in the ledger. `BadInput` for a bad labels file."""
    from benchrun import judge_trust as jt

    store = _store(ledger)
    info = jt.sanitize(jt.calibrate_run(store, jt.open_run(store, run_id), labels, threshold=threshold, judge=judge,
                                        api_base=api_base, api_key_env=api_key_env, use_cache=cache))
    return Calibration(run_id=info["run_id"], trusted=bool(info["trusted"]), kappa=info["kappa"], n=int(info["n"]),
                       summary=info["summary"], data=info)


def measure_coverage(production: str | Path, dataset: str | Path, *, ledger: str | Path | Ledger | None = None,
                     store: bool = True, **options: Any) -> CoverageResult:
    """Coverage of ``dataset`` against production traffic, as `benchrun coverage -p PRODUCTION -d DATASET`.

    ``options`` are the command's options by their Python names (``k``, ``method``, ``window_days``,
    ``sessions``, ``model``, ``cache_path``, ``seed``, ``good_below``, ``refresh_above``, ...; see
    `benchrun.coverage.pipeline.CoverageOptions`). A remote embedder is ``model="litellm:MODEL"`` with
    ``api_base``, ``api_key_env``, ``embed_concurrency``, ``batch_size``; ``fit_sample`` bounds the
    k-means fit (docs/scale.md). With ``store`` the report is recorded in the
    ledger, where `runs show` then finds it for runs of this dataset version.
    """
    from benchrun.coverage.history import store_report
    from benchrun.coverage.pipeline import run_coverage

    report = run_coverage(production, dataset, **options)
    rid = None
    if store:
        rid = store_report(_store(ledger).url, report)
        report["ledger_report_id"] = rid
    score = report["score"]
    return CoverageResult(jsd=float(score["jsd"]), band=str(score["band"]), headline=report.get("headline"),
                          report_id=rid, data=report, embedding_cost_usd=(report.get("cost") or {}).get("embedding_usd"),
                          stability_jsd=report["params"].get("stability_jsd"))


def report_markdown(run_id: str, *, baseline: str | None = None, ledger: str | Path | Ledger | None = None) -> str:
    """The Markdown summary `benchrun report RUN_ID --markdown` prints (see `benchrun.report.markdown`)."""
    from benchrun.report.markdown import markdown_summary

    store = _store(ledger)
    run_row = store.get_run(run_id)
    return markdown_summary(_summary_of(store, run_row), _baseline_comparisons(store, run_row, baseline))


def junit_report(run_id: str, *, ledger: str | Path | Ledger | None = None) -> str:
    """The JUnit XML of a run (`benchrun run --junit FILE`): one test case per case × model."""
    from benchrun.report.junit import junit_xml
    from benchrun.report.summary import result_dicts, run_conditions
    from benchrun.spec import LoadedSpec

    store = _store(ledger)
    run_row = store.get_run(run_id)
    loaded = LoadedSpec.from_snapshot(json.loads(run_row.spec_snapshot))
    keys = [m["key"] for m in json.loads(run_row.models)]
    return junit_xml(run_conditions(run_row), result_dicts(store.results(run_row.id)),
                     [c.id for c in loaded.cases()], keys)


def _summary_of(store: _Store, run_row: Run) -> dict[str, Any]:
    from benchrun.report.summary import build_summary

    return build_summary(store, run_row)


def _baseline_comparisons(store: _Store, run_row: Run, baseline: str | None) -> list[dict[str, Any]]:
    """Each model of ``run_row`` against the same model key in the baseline run (keys both runs have)."""
    if baseline is None:
        return []
    from benchrun.report.comparison import compare_payload, model_keys

    base = store.get_run(baseline)
    if base.id == run_row.id:
        raise UsageError(f"--baseline {base.id} is the run itself; give an earlier run to compare with")
    shared = [k for k in model_keys(run_row) if k in model_keys(base)]
    if not shared:
        raise UsageError(f"runs {run_row.id} and {base.id} share no model key ({', '.join(model_keys(run_row))} vs "
                         f"{', '.join(model_keys(base))}); nothing to compare with the baseline")
    return [compare_payload(store, (run_row, k), (base, k)) for k in shared]


def estimate(spec: str | Path | LoadedSpec, *, ledger: str | Path | Ledger | None = None,
             cache: bool = True, batch: bool = False) -> Estimate:
    """What a run of ``spec`` would call and cost, before calling anything (`benchrun run --estimate`).

    Returns a `benchrun.estimation.Estimate`; see that module for what is counted and how. Models with
    ``batch: true`` (every model, with ``batch``) are priced at batch prices (`benchrun.batch.batch_cost`).
    """
    from benchrun.estimation import estimate_run

    loaded = spec if not isinstance(spec, (str, Path)) else load_spec(spec)
    if batch:
        from benchrun.batch import batch_all

        loaded = batch_all(loaded)
    return estimate_run(loaded, _store(ledger), use_cache=cache)


def batch_status(run_id: str, *, ledger: str | Path | Ledger | None = None) -> list[dict[str, Any]]:
    """The provider batches of a run, their states refreshed at the provider (`benchrun batch status RUN_ID`).

    Nothing is submitted and no answer is read: `benchrun run --resume RUN_ID` collects ended batches
    into the run. Each dict has the ``batch_job`` columns plus ``lines`` ({state: count}).
    """
    from benchrun import batch, providers
    from benchrun.ledger import batches as stored
    from benchrun.spec import LoadedSpec

    _no_running_loop("batch_status", "`await asyncio.to_thread(benchrun.batch_status, ...)`")
    providers.collect_env_secrets()
    store = _store(ledger)
    run_row = store.get_run(run_id)
    loaded = LoadedSpec.from_snapshot(json.loads(run_row.spec_snapshot))
    refs = [*loaded.spec.candidates, *([loaded.spec.judge] if loaded.spec.judge else [])]
    endpoints = {r.key: providers.resolve(r, run_row.spec_path or f"run {run_row.id}") for r in refs if r.batch}
    jobs = asyncio.run(batch.status(store, run_row.id, endpoints))
    per_job: dict[int, dict[str, int]] = {}
    for ln in stored.lines(store, run_row.id):
        counts = per_job.setdefault(ln.job_id, {})
        counts[ln.state] = counts.get(ln.state, 0) + 1
    return [{**j.model_dump(mode="json"), "counts": json.loads(j.counts or "{}"), "lines": per_job.get(j.id or 0, {})}
            for j in jobs]
