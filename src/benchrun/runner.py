"""Run orchestration: cases × candidates × samples, async, bounded, cached, resumable.

A run is created in the ledger before the first call and each result is written
as soon as it is scored, in one transaction (shared with the results and cache
entries that arrive while the previous commit is under way), so a crash or Ctrl-C
loses at most the calls in flight and the results not yet committed (whose
answers are cached the moment they arrive, so a resume pays for nothing twice).
``--resume`` fills in only the missing cells.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import platform
import secrets
import subprocess
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from benchrun import callpool, providers
from benchrun.callpool import CallPool
from benchrun.errors import BadInput, RunAborted, UsageError
from benchrun.hashing import cache_key
from benchrun.ledger import Ledger
from benchrun.ledger.tables import Result, ResultDraft, Run
from benchrun.providers import CallResult, Endpoint
from benchrun.scoring import judge as judge_mod
from benchrun.scoring import prompts
from benchrun.scoring import rules as rules_mod
from benchrun.scoring import tools as tool_scoring
from benchrun.spec import Case, LoadedSpec, ModelRef
from benchrun.trajectory import has_tools, worst_case_steps
from benchrun.trajectory import run as run_trajectory

if TYPE_CHECKING:
    from benchrun.batch import Outcome as BatchOutcome
    from benchrun.scoring.sandbox import Sandbox

CONNECTION_FAULTS_BEFORE_ABORT = 8
_CACHE_AHEAD = 256  # candidate answers read from the cache per query (`Runner._cached`)
# how the transports word "could not reach the server" (litellm reports refused connections as InternalServerError)
_CONNECTION_SIGNS = ("APIConnectionError", "Connection error", "Timeout", "timed out", "Connection refused")


# ----------------------------------------------------------------------------- messages


def _render_user(loaded: LoadedSpec, template: str, case: Case) -> str:
    assert isinstance(case.input, str)
    try:
        extra: dict[str, Any] = {}
        if case.choices is not None:  # multiple choice: the list, and the lettered block of public harnesses
            from benchrun.scoring.extract import choice_block

            extra = {"choices": case.choices, "choices_block": choice_block(case.choices)}
        return prompts.render(template, input=case.input, case=case.model_dump(mode="json"), **extra)
    except TemplateError as e:
        raise BadInput(loaded.path, f"case {case.id}", f"prompt template failed: {prompts.describe_error(e)}") from None


def _exemplar_answer(case: Case) -> str | None:
    if case.ideal.strip():
        return case.ideal
    if case.choices is not None:
        return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[case.answer_index()]
    return None


def fewshot_exemplars(loaded: LoadedSpec, case: Case) -> list[tuple[Case, str]]:
    """The few-shot exemplars of a case (see `spec.FewShot`): never the case itself, the same for the same
    settings (a generator seeded with ``seed`` and the case id), in dataset order."""
    import random

    fs = loaded.spec.fewshot
    if fs is None:
        return []
    source = loaded.fewshot_dataset if loaded.fewshot_dataset is not None else loaded.dataset
    pool = [(c, a) for c in source.cases
            if c.id != case.id and c.input != case.input and isinstance(c.input, str)
            and (fs.split is None or fs.split in c.tags) and (a := _exemplar_answer(c)) is not None]
    if len(pool) < fs.n:
        where = "" if loaded.fewshot_dataset is None else f" of {fs.from_}"
        raise BadInput(loaded.path, f"case {case.id}",
                       f"fewshot needs {fs.n} exemplars but only {len(pool)} other case(s){where}"
                       + (f" tagged {fs.split!r}" if fs.split else "") + " have an ideal answer or a choice answer")
    keep = sorted(random.Random(f"{fs.seed}:{case.id}").sample(range(len(pool)), fs.n))
    return [pool[i] for i in keep]


def candidate_messages(loaded: LoadedSpec, cand: ModelRef, case: Case) -> list[dict[str, str]]:
    """The exact messages a candidate receives for a case (few-shot exemplars included).

    Rendered once per (candidate, case object) and kept on ``loaded`` (`LoadedSpec.rendered`): the
    template check, reproduce's cache check and the runner's planning ask for the same messages, and a
    prompt template costs ~0.1 ms to render. The kept messages are used only while ``loaded`` still has
    the spec and datasets they were rendered from (a copy with another spec renders its own). Callers
    must not change the list they get (the runner already shared one list between a case's samples)."""
    owner = (loaded.spec, loaded.dataset, loaded.fewshot_dataset)
    memo = loaded.rendered
    if memo.get("owner") is None or any(a is not b for a, b in zip(memo["owner"], owner, strict=True)):
        memo.clear()
        memo["owner"] = owner
    by_case: dict[int, tuple[Case, list[dict[str, str]]]] = memo.setdefault(cand.key, {})
    hit = by_case.get(id(case))
    if hit is not None and hit[0] is case:
        return hit[1]
    msgs = _render_candidate_messages(loaded, cand, case)
    by_case[id(case)] = (case, msgs)  # the case is kept with its messages: its id cannot be reused meanwhile
    return msgs


def _render_candidate_messages(loaded: LoadedSpec, cand: ModelRef, case: Case) -> list[dict[str, str]]:
    prompt = loaded.spec.prompt_for(cand)
    msgs: list[dict[str, str]] = []
    shots = fewshot_exemplars(loaded, case)
    inline = loaded.spec.fewshot is not None and loaded.spec.fewshot.as_ == "inline"
    turns: list[dict[str, str]] = []
    if not inline:
        for ex, answer in shots:
            turns += [{"role": "user", "content": _render_user(loaded, prompt.template, ex)},
                      {"role": "assistant", "content": answer}]
    if isinstance(case.input, str):
        if prompt.system:
            msgs.append({"role": "system", "content": prompt.system})
        content = _render_user(loaded, prompt.template, case)
        if inline and shots:
            content = "\n\n".join(f"{_render_user(loaded, prompt.template, ex)}\n{answer}" for ex, answer in shots
                                   ) + "\n\n" + content
        msgs.extend(turns)
        msgs.append({"role": "user", "content": content})
    else:
        conv = [m.model_dump() for m in case.input]
        if prompt.system and not any(m["role"] == "system" for m in conv):
            msgs.append({"role": "system", "content": prompt.system})
        if inline and shots:  # a conversation gets its exemplars as turns
            turns = [t for ex, answer in shots for t in (
                {"role": "user", "content": _render_user(loaded, prompt.template, ex)},
                {"role": "assistant", "content": answer})]
        if turns:  # exemplars go after the conversation's own system message(s), before its turns
            lead = [m for m in conv if m["role"] == "system"]
            conv = lead + turns + [m for m in conv if m["role"] != "system"]
        msgs.extend(conv)
    return msgs


def check_templates(loaded: LoadedSpec, source: str | None = None) -> None:
    """Render every candidate prompt, and the judge prompt for every case (with an empty answer), in the sandbox:
    a template that cannot render (or tries an unsafe operation) is bad input before the run, not a crash mid-run.
    ``source`` names where the spec came from when it is not ``loaded.path`` (a stored snapshot)."""
    for cand in loaded.spec.candidates:
        for case in loaded.cases():
            try:
                candidate_messages(loaded, cand, case)
            except BadInput as e:
                if source is None:
                    raise
                raise BadInput(source, f"case {case.id}", e.what) from None
    rubric = loaded.rubric
    if rubric is None:  # a rules-only run: no judge template
        return
    rb_file: str | None = source
    if rb_file is None and loaded.path and loaded.spec.rubric:
        from pathlib import Path

        from benchrun.spec import resolve_path

        rb_file = str(resolve_path(Path(loaded.path).parent, loaded.spec.rubric))
    from benchrun.scoring.pairwise import pairwise_messages

    for case in loaded.cases():
        for what, render in (("judge_prompt", lambda c: judge_mod.judge_messages(rubric, c, "")),
                             ("pairwise_prompt", lambda c: pairwise_messages(rubric, c, "", ""))):
            try:
                render(case)
            except TemplateError as e:
                raise BadInput(rb_file or "rubric", f"case {case.id}",
                               f"{what} failed: {prompts.describe_error(e)}") from None


# ----------------------------------------------------------------------------- run record


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("benchrun", "litellm", "pydantic", "sqlmodel", "jsonschema", "openai", "llama_cpp_python"):
        try:
            out[pkg] = dist_version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def dist_version(name: str) -> str:
    """``importlib.metadata.version(name)``, parsing only the metadata's header block: the same email parser on
    the lines before the first empty one, which are all the headers it reads (the long description after them,
    48 kB for litellm, made the seven look-ups of every run cost ~20 ms here; now ~6 ms)."""
    return metadata_version(metadata.distribution(name))


def metadata_version(dist: metadata.Distribution) -> str:
    """``dist.version`` (see `dist_version`)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or dist.read_text("")
    if text:
        import email

        version = email.message_from_string(text.split("\n\n", 1)[0] + "\n")["Version"]
        if isinstance(version, str):
            return version
    return dist.version


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5, check=False)
    return r.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def code_sandbox(loaded: LoadedSpec, *, unsafe_exec: bool = False) -> tuple[Sandbox | None, str | None]:
    """The sandbox for the run's code checks and its isolation (``(None, None)`` when no case runs code).

    Refused before any model is called when code must run and cannot be isolated: bubblewrap missing
    or not working, and ``--unsafe-exec`` not given (a shared spec cannot turn that on: it is a flag of
    the person running). Otherwise every answer would be paid for and every code case be an error.
    """
    cases = loaded.cases()
    if not any(rules_mod.needs_sandbox(c) for c in cases):
        return None, None
    from benchrun.scoring.code import sandbox_for_run
    from benchrun.scoring.sandbox import SandboxUnavailable

    try:
        return sandbox_for_run(cases, unsafe=unsafe_exec)
    except SandboxUnavailable as e:
        n = sum(1 for c in cases if rules_mod.needs_sandbox(c))
        raise UsageError(f"{n} case(s) of dataset {loaded.dataset.name} run model-written code: {e}") from None


def create_run(loaded: LoadedSpec, ledger: Ledger, *, unsafe_exec: bool = False, templates_checked: bool = False,
               dataset_dump: dict[str, Any] | None = None) -> str:
    """Validate everything that can be checked offline, then record a new run. ``templates_checked``: the caller
    already ran `check_templates` on this ``loaded`` (reproduce does, to word its errors), so it is not run twice;
    ``dataset_dump``: see `run_record`."""
    run = run_record(loaded, unsafe_exec=unsafe_exec, templates_checked=templates_checked, dataset_dump=dataset_dump)
    ledger.create_run(run)
    return run.id


def run_record(loaded: LoadedSpec, *, unsafe_exec: bool = False, run_id: str | None = None,
               templates_checked: bool = False, dataset_dump: dict[str, Any] | None = None) -> Run:
    """Validate everything that can be checked offline; the run's row (a new id unless ``run_id``), not recorded.

    ``dataset_dump``: ``loaded.dataset.dump()`` when the caller already made it
    (reproduce does, to check the snapshot's hash): the dataset hash and the snapshot are made from it, where
    dumping a 2,000-case dataset twice more would cost ~70 ms."""
    from benchrun.credentials import check_key_env_name

    spec, ds, rb = loaded.spec, loaded.dataset, loaded.rubric
    for ref, label in [*((c, c.key) for c in spec.candidates), *([(spec.judge, "judge")] if spec.judge else [])]:
        check_key_env_name(ref, loaded.path, label)  # refused names fail before the run is recorded
    if not templates_checked:
        check_templates(loaded)  # render every prompt now: a bad template is bad input, not a crash mid-run
    _, isolation = code_sandbox(loaded, unsafe_exec=unsafe_exec)
    versions = package_versions()
    if isolation is not None:
        versions["code sandbox"] = isolation  # what ran the answers' code: part of the run's conditions
    if dataset_dump is None:
        dataset_dump = ds.dump()
    ds_hash = ds.hash_of(dataset_dump)  # `Dataset.hash`, once: the spec hash includes it
    spec_hash = loaded.spec_hash_with(ds_hash)
    return Run(
            id=run_id or new_run_id(),
            name=spec.name,
            status="running",
            spec_hash=spec_hash,
            spec_snapshot=json.dumps(loaded.snapshot(dataset_dump=dataset_dump,
                                                     source_files=loaded.source_record(spec_hash, ds_hash))),
            spec_path=loaded.path,
            dataset_name=ds.name,
            dataset_version=ds.version,
            dataset_hash=ds_hash,
            rubric_name=rb.name if rb is not None else "",  # "" with judge_model "": scored by rules only
            rubric_version=rb.version if rb is not None else "",
            rubric_hash=rb.hash if rb is not None else "",
            prompt_hashes=json.dumps({c.key: spec.prompt_for(c).hash for c in spec.candidates}),
            models=json.dumps(
                [{"key": c.key, "model": c.model, "alias": c.alias, "api_base": c.api_base} for c in spec.candidates]
            ),
            sampling=json.dumps({c.key: spec.sampling_for(c).as_params() for c in spec.candidates}),
            samples_per_case=spec.samples_per_case,
            judge_model=spec.judge.model if spec.judge is not None else "",
            judge_prompt_hash=judge_prompt_hash(loaded),
            judge_sampling=json.dumps(judge_params(loaded)),
            package_versions=json.dumps(versions),
            git_commit=git_commit(),
        )


def with_resolved_models(models_json: str, results: list[dict[str, Any]]) -> str:
    """Add the model versions providers reported (e.g. ``gpt-4o-mini-2024-07-18``) to the run's model list
    (``results``: `Ledger.result_rows`)."""
    seen: dict[str, set[str]] = {}
    for r in results:
        if r["resolved_model"]:
            seen.setdefault(r["model_key"], set()).add(r["resolved_model"])
    models = json.loads(models_json)
    for m in models:
        m["resolved_models"] = sorted(seen.get(m["key"], set()))
    return json.dumps(models)


def call_workers_for(loaded: LoadedSpec, option: str | int) -> int:
    """Worker processes for the litellm calls: ``--call-workers`` as given, or ``auto`` (see ``callpool``).

    Always 0 when no model goes through litellm: the OpenAI-compatible transport keeps up with the
    targets in one process (docs/performance.md), so its calls are never sent to workers.
    """
    n = -1
    if option != "auto":
        try:
            n = int(option)
        except ValueError:
            n = -1
        if n < 0:
            raise UsageError(f"--call-workers must be 'auto' or a whole number >= 0, not {option!r}")
    spec = loaded.spec
    if not any(providers.transport_for(ref) == "litellm" for ref in [*spec.candidates, *([spec.judge] if spec.judge else [])]):
        return 0
    if option != "auto":
        return min(n, spec.concurrency.global_)  # each worker needs one of the global slots
    n_units = sum(1 for _ in loaded.cases()) * len(spec.candidates) * spec.samples_per_case
    any_local = any(providers.is_local(ref) for ref in [*spec.candidates, *([spec.judge] if spec.judge else [])])
    return callpool.auto_workers(n_units, spec.concurrency.global_, any_local)


def judge_params(loaded: LoadedSpec) -> dict[str, Any]:
    """Sampling for the judge (temperature 0 unless the spec says otherwise) and its output constraint
    (``{}`` for a run scored by rules only)."""
    judge = loaded.spec.judge
    if judge is None or loaded.rubric is None:
        return {}
    if judge.pairwise:
        from benchrun.pairwise_run import pairwise_params

        return pairwise_params(judge)
    return judge_mod.judge_call_params(judge, loaded.rubric.effective_schema(), "verdict")


def judge_prompt_hash(loaded: LoadedSpec) -> str:
    """The hash of what the run's judge is told: the pairwise prompt for a pairwise judge, else the judge prompt."""
    rb, judge = loaded.rubric, loaded.spec.judge
    if rb is None or judge is None:
        return ""
    if judge.pairwise:
        from benchrun.scoring.pairwise import pairwise_prompt_hash

        return pairwise_prompt_hash(rb)
    return rb.judge_prompt_hash


# ----------------------------------------------------------------------------- execution


@dataclass
class Progress:
    total: int
    done: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0
    cached: int = 0
    waiting: str | None = None  # what the run waits for before its cells start (provider batches)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    message: str | None
    progress: Progress
    # the run's result rows (`Ledger.result_rows`) as `execution.execute_run` read them to record its totals, once
    # the run is completed and recorded, when its caller asked (``keep_rows``: reproduce, which reports on them)
    rows: list[dict[str, Any]] | None = None


@dataclass
class _Unit:
    case: Case
    cand: ModelRef
    sample: int
    messages: list[dict[str, str]]
    prior: Result | None = None  # an earlier error row being redone on resume
    key: str | None = None  # the candidate answer's cache key, once worked out (`Runner.execute`, with the cache on)


@dataclass(frozen=True)
class JudgedAhead:
    """A judge call worked out before `Runner._grade` makes it: the judge's messages for one answer and their
    cache key. Two places work them out: `reproduce.cache_misses` before a replay, which also gives the cached
    reply as `judge.parse_verdict` read it (the verdict, or the error the re-ask quotes); and the runner's own
    cache read-ahead (`Runner._judge_keys_ahead`), which does not (``reply`` and ``parsed`` are None). The runner
    uses them for that (case, answer) instead of rendering, hashing and parsing again; ``parsed`` only while the
    judge's reply is still ``reply``."""

    messages: list[dict[str, str]]
    key: str
    reply: str | None = None
    parsed: judge_mod.Verdict | judge_mod.JudgeFormatError | None = None


class _UnitWrites:
    """One unit's ledger writes (its answers' cache entries, then its result), held until the unit asks a model
    again or is done, then handed to the writer together, so they usually share one transaction. Before each
    new call and at the end the unit waits for them to be committed: it never has more than one answer that
    is not (a SIGKILL loses at most one answer per slot), and it is reported done only once its result is."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: list[tuple[tuple[str, str, dict[str, Any]] | None, tuple[Result, bool] | None]] = []

    def hold(self, cache: tuple[str, str, dict[str, Any]] | None = None, result: tuple[Result, bool] | None = None) -> None:
        self.held.append((cache, result))

    def flush(self, runner: Runner) -> list[asyncio.Future[None]]:
        """Hand the held writes to the writer; their futures (done once committed)."""
        done = [runner._submit(cache, result) for cache, result in self.held]
        self.held.clear()
        return done

    async def commit(self, runner: Runner) -> None:
        for f in self.flush(runner):
            await f


@dataclass
class _JudgeCost:
    total: float = 0.0
    fresh: float = 0.0  # paid in this process (not served from the cache)
    unknown: bool = False


@dataclass
class _Write:
    """One ledger write handed to the runner's writer thread, and the future that says it is committed."""

    cache: tuple[str, str, dict[str, Any]] | None  # (key, model, response)
    result: tuple[Result, bool] | None  # (row, replace an earlier error row)
    done: asyncio.Future[None]  # set on the event loop once the write is committed (or failed)


def _settle(batch: list[_Write], errors: list[BaseException | None]) -> None:
    """On the event loop: wake the callers of one committed batch of writes."""
    for w, e in zip(batch, errors, strict=True):
        if w.done.done():  # its caller was cancelled meanwhile
            continue
        if e is None:
            w.done.set_result(None)
        else:
            w.done.set_exception(e)


@dataclass
class _State:
    spent: float = 0.0
    reserved: float = 0.0
    stop: str | None = None
    stop_status: str = "interrupted"
    consecutive_conn_faults: dict[str, int] = field(default_factory=dict)


class Runner:
    def __init__(
        self,
        loaded: LoadedSpec,
        ledger: Ledger,
        run_id: str,
        *,
        use_cache: bool = True,
        on_progress: Callable[[Progress], None] | None = None,
        pool: CallPool | None = None,
        sandbox: Sandbox | None = None,
        cell_filter: Callable[[str, str, int], bool] | None = None,
        cache_entries: dict[str, dict[str, Any]] | None = None,
        judged_ahead: dict[tuple[int, str], JudgedAhead] | None = None,
    ) -> None:
        self.loaded = loaded
        self.cell_filter = cell_filter  # (case id, model key, sample) -> run it here? (a shard's cells; None: all)
        self.sandbox = sandbox  # runs the code checks (None: the default, bwrap or refuse)
        self.ledger = ledger
        self.run_id = run_id
        self.use_cache = use_cache and loaded.spec.cache
        self.on_progress = on_progress
        self.pool = pool  # worker processes that make the model calls; None: this process makes them
        self.state = _State()
        self.endpoints: dict[str, Endpoint] = {}
        self.judge_endpoint: Endpoint | None = None
        self.units_per_model: dict[str, int] = {}
        self.batched: BatchOutcome | None = None  # answers from provider batches (benchrun.batch), by cache key
        self._slots = asyncio.Semaphore(loaded.spec.concurrency.global_)  # calls in flight (a fresh one per execute)
        # One writer thread: ledger writes leave the event loop (SQLite releases the GIL while it works)
        # and stay serialised, so a run never contends with itself for the database lock.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchrun-ledger")
        self._pending: deque[_Write] = deque()  # handed to the writer, not yet taken into a transaction
        self._drain_queued = False  # a drain is submitted to the writer and has not yet taken the pending writes
        # cache reads ahead (see `_cached`): the candidate keys of the pending units in queue order, how far they
        # were read, and the entries read and not yet used
        self._ahead: list[str] = []
        self._ahead_units: list[_Unit] = []  # the unit of each key in ``_ahead``
        self._ahead_at = 0
        self._prefetched: dict[str, dict[str, Any]] = {}
        # entries the caller already read (reproduce's pre-flight check), so a replay does not read them twice; kept
        # for the whole run (two cells with the same answer share one judge key)
        self._given: dict[str, dict[str, Any]] = (cache_entries or {}) if self.use_cache else {}
        # judge calls worked out ahead, by (case object, answer), for `_grade`: the caller's (reproduce's pre-flight)
        # are kept for the whole run, those of the cache read-ahead (no ``reply``) are used once and dropped
        self._judged_ahead: dict[tuple[int, str], JudgedAhead] = dict(judged_ahead or {})
        # sampling params by candidate key, and the judge's: worked out once per run (callers do not change them)
        self._cand_params = {c.key: loaded.spec.sampling_for(c).as_params() for c in loaded.spec.candidates}
        self._jparams = judge_params(loaded)

    # -------------------------------------------------------------- planning

    def pending_units(self) -> list[_Unit]:
        spec = self.loaded.spec
        cells = self.ledger.cells(self.run_id)
        errors: dict[tuple[str, str, int], Result] = {}
        if any(st == "error" for st in cells.values()):
            for r in self.ledger.results(self.run_id):
                if r.status == "error":
                    errors[(r.case_id, r.model_key, r.sample_index)] = r
        units = []
        for case in self.loaded.cases():
            for cand in spec.candidates:
                msgs: list[dict[str, str]] | None = None
                for i in range(spec.samples_per_case):
                    key = (case.id, cand.key, i)
                    if self.cell_filter is not None and not self.cell_filter(*key):
                        continue
                    status = cells.get(key)
                    if status is not None and status != "error":
                        continue
                    asked = self.loaded.case_for_sample(case, i)  # shuffle_choices: sample i is choice order i
                    if asked is not case:
                        units.append(_Unit(asked, cand, i, candidate_messages(self.loaded, cand, asked), errors.get(key)))
                        continue
                    msgs = msgs or candidate_messages(self.loaded, cand, case)
                    units.append(_Unit(case, cand, i, msgs, errors.get(key)))
        return units

    def _worst_case(self, unit: _Unit) -> float:
        """Upper bound on what one unit can cost (candidate + judge with one re-ask)."""
        spec = self.loaded.spec
        cand_params = self._cand_params[unit.cand.key]
        cand_max = int(cand_params.get("max_tokens") or 4096)
        cand_prompt = providers.count_message_tokens(unit.messages)
        c = providers.worst_case_cost(unit.cand, self.endpoints[unit.cand.key], cand_prompt, cand_max)
        if c is not None and has_tools(spec, unit.case) and unit.case.tool_results is not None:
            c = worst_case_steps(spec, unit.case, cand_prompt, cand_max,
                                 lambda pt, ct: providers.worst_case_cost(unit.cand, self.endpoints[unit.cand.key], pt, ct))
        if not self.loaded.judged(unit.case):
            if c is None:
                raise RunAborted("cannot bound cost for the budget: a model has no known price")
            return c
        assert spec.judge is not None and self.loaded.rubric is not None
        jparams = self._jparams
        j_max = int(jparams.get("max_tokens") or 1024)
        j_prompt = providers.count_message_tokens(judge_mod.judge_messages(self.loaded.rubric, unit.case, "")) + cand_max
        assert self.judge_endpoint is not None
        j = providers.worst_case_cost(spec.judge, self.judge_endpoint, 2 * j_prompt + j_max, 2 * j_max)
        if c is None or j is None:  # checked before the run starts
            raise RunAborted("cannot bound cost for the budget: a model has no known price")
        return c + j

    def check_budget_prices(self) -> None:
        spec = self.loaded.spec
        if spec.budget_usd is None:
            return
        for ref in [*spec.candidates, *([spec.judge] if spec.judge else [])]:
            ep = self.judge_endpoint if ref is spec.judge else self.endpoints[ref.key]
            assert ep is not None
            if providers.cost_of(ref, ep, 1000, 1000) is None:
                raise BadInput(
                    self.loaded.path,
                    f"model {ref.key}",
                    "budget_usd is set but this model's price is unknown; add 'price' (input_per_1m, output_per_1m)",
                )

    # -------------------------------------------------------------- execution

    def _submit(self, cache: tuple[str, str, dict[str, Any]] | None = None,
                result: tuple[Result, bool] | None = None) -> asyncio.Future[None]:
        """Hand a cache entry or a result to the writer; the future is done once it is committed."""
        loop = asyncio.get_running_loop()
        w = _Write(cache, result, loop.create_future())
        self._pending.append(w)
        if not self._drain_queued:  # a drain already queued takes this write too: a row handed over is always written
            self._drain_queued = True
            self._writer.submit(self._drain, loop)
        return w.done

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the writer thread: commit every write handed over so far in one transaction (`Ledger.write_batch`).

        Under load, the writes that arrive while a commit is under way go in together with the next one, so
        a run pays one commit for many results; alone, a write is committed at once. Each caller still
        resumes only after its own write is committed, so a crash loses no result that was reported done.
        If the batch fails, each write is retried on its own, so one bad row fails only its own caller.
        The callers are woken together, by one callback on the event loop."""
        self._drain_queued = False  # before taking the writes: one handed over from now on queues another drain
        batch: list[_Write] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return  # an earlier drain took them
        errors: list[BaseException | None] = [None] * len(batch)
        try:
            self.ledger.write_batch([w.cache for w in batch if w.cache], [w.result for w in batch if w.result])
        except Exception:
            for i, w in enumerate(batch):
                try:
                    if w.cache is not None:
                        self.ledger.cache_put(*w.cache)
                    elif w.result is not None:
                        self.ledger.add_result(*w.result)
                except Exception as e:
                    errors[i] = e
        with contextlib.suppress(RuntimeError):  # the loop is gone (the run was torn down): the rows are written
            loop.call_soon_threadsafe(_settle, batch, errors)

    def _cached(self, key: str) -> dict[str, Any] | None:
        """The cache entry of ``key``, or None. Candidate answers are read ahead, `_CACHE_AHEAD` pending units
        at a time in one query (a replay from the cache reads thousands); a key not found that way (a miss, or
        an entry another process wrote since) is looked up on its own, as every key was before. Entries the caller
        handed over (``cache_entries``) are served first."""
        hit = self._given.get(key)
        if hit is not None:
            return hit
        hit = self._prefetched.pop(key, None)
        if hit is None and self._ahead_at < len(self._ahead):
            at = self._ahead_at
            chunk = self._ahead[at:at + _CACHE_AHEAD]
            self._ahead_at += len(chunk)
            got = self.ledger.cache_get_many(chunk)
            self._prefetched.update(got)
            jkeys = self._judge_keys_ahead(self._ahead_units[at:at + len(chunk)], [got.get(k) for k in chunk])
            self._prefetched.update(self.ledger.cache_get_many(k for k in jkeys if k not in self._given))
            hit = self._prefetched.pop(key, None)
        return hit if hit is not None else self.ledger.cache_get(key)

    def _judge_keys_ahead(self, units: list[_Unit], answers: list[dict[str, Any] | None]) -> list[str]:
        """The judge's cache keys of the read-ahead units whose answer is cached (their first judge call, as
        `_grade` makes it), so the verdicts are read in the same bulk query; what was worked out is kept for
        `_grade` (a `JudgedAhead` without a reply). Tool-using cases, resumed error rows and pairwise judges are
        left out, and so are answers whose judge call is already known."""
        spec, rubric = self.loaded.spec, self.loaded.rubric
        if spec.judge is None or rubric is None or spec.judge.pairwise:
            return []
        jparams = self._jparams
        keys = []
        for unit, hit in zip(units, answers, strict=True):
            text = hit.get("text") if hit is not None else None
            if text is None or unit.prior is not None or has_tools(spec, unit.case) or not self.loaded.judged(unit.case):
                continue
            at = (id(unit.case), text)
            if at in self._judged_ahead:
                continue
            try:
                messages = judge_mod.judge_messages(rubric, unit.case, text)
            except Exception:  # noqa: S112  # left to `_grade`, which fails that one result with the error, as before
                continue
            key = cache_key(spec.judge, messages, jparams, 0, "judge")
            self._judged_ahead[at] = JudgedAhead(messages, key)
            keys.append(key)
        return keys

    async def _call(self, ref: ModelRef, ep: Endpoint, messages: list[dict[str, Any]], params: dict[str, Any],
                    sample: int, role: str, sem: asyncio.Semaphore, key: str | None = None,
                    writes: _UnitWrites | None = None) -> CallResult:
        """One call, or its answer from a batch or the cache. ``key``: its cache key, when already worked out.

        A new answer goes to the response cache: with ``writes`` (the unit's, see `_UnitWrites`) it is held
        there, and the unit's held writes are committed before it asks a model; without, it is committed now."""
        if key is None:
            key = cache_key(ref, messages, params, sample, role)
        res = self.batched.take(key) if self.batched is not None else None
        if res is None and self.use_cache:
            hit = self._cached(key)
            if hit is not None:
                return CallResult.from_cache(hit)
        spec = self.loaded.spec
        if res is None:
            if writes is not None:
                await writes.commit(self)
            async with sem, self._slots:  # the model's limit, then one of the run's slots (never the other way round)
                if self.pool is not None and not ep.local and ep.transport == "litellm":
                    res = await self.pool.complete(ref, ep, messages, params, spec.timeout_s, spec.retries)
                else:
                    res = await providers.complete(ref, ep, messages, params, spec.timeout_s, spec.retries)
            if self.batched is not None and key in self.batched.fallbacks:  # a batch line that failed: say so
                res.attempts = [self.batched.fallbacks[key], *res.attempts]
        res = res.with_secrets_redacted()  # a provider echoing a key must not put it in the cache or the results
        if res.ok:
            if writes is None:
                await self._submit(cache=(key, ref.model, res.to_cache()))
            else:
                writes.hold(cache=(key, ref.model, res.to_cache()))
        return res

    async def _score(self, unit: _Unit, cand_sem: asyncio.Semaphore, judge_sem: asyncio.Semaphore,
                     writes: _UnitWrites | None = None) -> tuple[Result, float]:
        """Answer, check and judge one unit; returns the result row and the money newly spent on it. ``writes``:
        see `_call` (the caller waits for them)."""
        spec = self.loaded.spec
        cand = unit.cand
        params = self._cand_params[cand.key]
        prior = unit.prior
        trajectory: dict[str, Any] | None = None
        if has_tools(spec, unit.case):  # a tool-using case: one or more calls (benchrun.trajectory), each cached
            ep = self.endpoints[cand.key]
            cres, trajectory = await run_trajectory(
                spec, unit.case, unit.messages, params,
                lambda msgs, p: self._call(cand, ep, msgs, p, unit.sample, "candidate", cand_sem, writes=writes),
                key=lambda msgs, p: cache_key(cand, msgs, p, unit.sample, "candidate"))
        elif prior is not None and prior.response_text is not None and prior.error is None:
            cres = CallResult(  # the answer was recorded; only judging failed last time
                text=prior.response_text, prompt_tokens=prior.prompt_tokens, completion_tokens=prior.completion_tokens,
                tokens_estimated=prior.tokens_estimated, cost_usd=prior.cost_usd, latency_ms=prior.latency_ms,
                retries=prior.retries, attempts=json.loads(prior.attempts), resolved_model=prior.resolved_model,
                cached=True,
            )
        else:
            cres = await self._call(cand, self.endpoints[cand.key], unit.messages, params, unit.sample, "candidate",
                                    cand_sem, unit.key, writes)
        row = ResultDraft(  # plain attributes while it is scored; `Result` without SQLModel's setattr (ledger/tables.py)
            run_id=self.run_id, case_id=unit.case.id, model_key=cand.key, model=cand.model,
            sample_index=unit.sample, category=unit.case.category, severity=unit.case.severity,
            status="error", messages=json.dumps(unit.messages), response_text=cres.text,
            resolved_model=cres.resolved_model, prompt_tokens=cres.prompt_tokens,
            completion_tokens=cres.completion_tokens, tokens_estimated=cres.tokens_estimated,
            cost_usd=cres.cost_usd, latency_ms=cres.latency_ms, retries=cres.retries,
            attempts=json.dumps(cres.attempts), cached=cres.cached, error=cres.error,
            scored_by=self.loaded.scored_by(unit.case),
        )
        if trajectory is not None:
            row.trajectory = json.dumps(trajectory)
        fresh = (cres.cost_usd or 0.0) if not cres.cached else 0.0
        if trajectory is not None:  # some steps may have come from the cache
            fresh = trajectory.get("fresh_cost_usd") or 0.0
        if not cres.ok:
            return row.row(), fresh
        assert cres.text is not None
        jcost = _JudgeCost()
        try:
            await self._grade(row, unit, cres.text, jcost, judge_sem, writes)
        except Exception as e:  # whatever an answer or a judge reply contains, it fails this result, not the run
            detail = providers.SECRETS.redact(f"{type(e).__name__}: {e}") or type(e).__name__
            row.status, row.passed = "error", None
            row.error = f"scoring failed: {detail[:300]}"
        return row.row(), fresh + jcost.fresh

    async def _grade(self, row: ResultDraft, unit: _Unit, text: str, jcost: _JudgeCost, judge_sem: asyncio.Semaphore,
                     writes: _UnitWrites | None = None) -> None:
        """Rule checks, then the judge, filling ``row`` in place (``writes``: see `_call`)."""
        spec, rubric = self.loaded.spec, self.loaded.rubric
        if self.loaded.judged(unit.case):
            row.injection_suspected = judge_mod.injection_signs(text, rubric.judge_prompt if rubric else "")
        elif rubric is not None and spec.judge is not None and spec.judge.pairwise:  # it will be shown to that judge
            from benchrun.scoring.pairwise import pairwise_prompt_source

            row.injection_suspected = judge_mod.injection_signs(text, pairwise_prompt_source(rubric))
        outcomes = await rules_mod.evaluate_async(unit.case, text, self.sandbox)  # code checks: off the loop
        if row.trajectory is not None:  # the tool calls' score is one more rule (scoring/tools.py)
            tscore = json.loads(row.trajectory).get("score") or {}
            outcomes.append(tool_scoring.rule_outcome(tscore))
            if tscore.get("severity") == "high":
                row.severity = "high"  # a forbidden call is a high-severity failure whatever the case's severity
        row.rules = json.dumps([o.to_dict() for o in outcomes])
        row.rules_passed = all(o.passed for o in outcomes)
        rule_errors = [o.error for o in outcomes if o.error]
        if rule_errors:  # e.g. no sandbox for a code check: the case could not be scored
            row.status, row.passed, row.rules_passed, row.error = "error", None, None, rule_errors[0]
            return
        if row.scored_by == "pairwise":  # no rule and no pointwise judge: the pairwise judge compares it later
            row.status, row.passed = "answered", None
            return
        if not self.loaded.judged(unit.case):  # scored by its rules alone: one call per case
            row.passed = row.rules_passed
            row.status = "passed" if row.passed else "failed"
            return

        assert self.judge_endpoint is not None and spec.judge is not None and rubric is not None
        jparams = self._jparams
        structured = spec.judge.structured_output != "none"
        at = (id(unit.case), text)
        ahead = self._judged_ahead.get(at)
        if ahead is not None:
            if ahead.reply is None:  # read ahead for this one result
                del self._judged_ahead[at]
            messages, keys = ahead.messages, [ahead.key]
        else:
            messages = judge_mod.judge_messages(rubric, unit.case, text)
            keys = [cache_key(spec.judge, messages, jparams, 0, "judge")]
        row.judge_cache_keys = json.dumps(keys)  # for `ledger copy`, which must not render the judge template
        jres = await self._call(spec.judge, self.judge_endpoint, messages, jparams, 0, "judge", judge_sem, keys[0],
                                writes)
        self._add_judge_usage(row, jres, jcost)
        verdict = None
        if jres.ok:
            assert jres.text is not None
            row.judge_raw = jres.text
            try:
                if ahead is not None and ahead.parsed is not None and ahead.reply == jres.text:  # parsed already
                    if isinstance(ahead.parsed, judge_mod.JudgeFormatError):
                        raise ahead.parsed
                    verdict = ahead.parsed
                else:
                    verdict = judge_mod.parse_verdict(rubric, jres.text, structured)
            except judge_mod.JudgeFormatError as e:
                row.judge_reasks = 1
                retry_msgs = judge_mod.reask_messages(messages, jres.text, str(e), rubric)
                keys.append(cache_key(spec.judge, retry_msgs, jparams, 0, "judge"))
                row.judge_cache_keys = json.dumps(keys)
                jres2 = await self._call(spec.judge, self.judge_endpoint, retry_msgs, jparams, 0, "judge", judge_sem,
                                         writes=writes)
                self._add_judge_usage(row, jres2, jcost)
                if jres2.ok:
                    assert jres2.text is not None
                    row.judge_raw = jres2.text
                    try:
                        verdict = judge_mod.parse_verdict(rubric, jres2.text, structured)
                    except judge_mod.JudgeFormatError as e2:
                        row.judge_error = f"judge answer invalid after one re-ask: {e2}"
                else:
                    row.judge_error = f"judge call failed on re-ask: {jres2.error}"
        else:
            row.judge_error = f"judge call failed: {jres.error}"

        if verdict is not None:
            row.judge_score = verdict.score
            row.judge_pass = verdict.judge_pass
            row.judge_reason = verdict.reason
            row.judge_failure_mode = verdict.failure_mode
        if row.rules_passed is False:
            row.status, row.passed = "failed", False  # the outcome is known whatever the judge said
        elif verdict is None:
            row.status, row.passed, row.error = "error", None, row.judge_error
        else:
            row.passed = verdict.passed
            row.status = "passed" if verdict.passed else "failed"

    @staticmethod
    def _add_judge_usage(row: ResultDraft, res: CallResult, acc: _JudgeCost) -> None:
        def add(a: Any, b: Any) -> Any:
            return b if a is None else (a if b is None else a + b)

        row.judge_prompt_tokens = add(row.judge_prompt_tokens, res.prompt_tokens)
        row.judge_completion_tokens = add(row.judge_completion_tokens, res.completion_tokens)
        row.judge_latency_ms = add(row.judge_latency_ms, res.latency_ms)
        row.judge_retries += res.retries
        if res.text is not None:
            if res.cost_usd is None:
                acc.unknown = True
            else:
                acc.total += res.cost_usd
                if not res.cached:
                    acc.fresh += res.cost_usd
        row.judge_cost_usd = None if acc.unknown else acc.total

    async def execute(self) -> RunOutcome:
        spec = self.loaded.spec
        for cand in spec.candidates:
            self.endpoints[cand.key] = await asyncio.to_thread(providers.resolve, cand, self.loaded.path or "spec")
        if spec.judge is not None:
            self.judge_endpoint = await asyncio.to_thread(providers.resolve, spec.judge, self.loaded.path or "spec")
        self.check_budget_prices()
        await providers.warm_up([*self.endpoints.values(), *([self.judge_endpoint] if self.judge_endpoint else [])])

        units = self.pending_units()
        self.units_per_model = {c.key: sum(1 for u in units if u.cand.key == c.key) for c in spec.candidates}
        if self.use_cache:
            for u in units:
                u.key = cache_key(u.cand, u.messages, self._cand_params[u.cand.key], u.sample, "candidate")
            self._ahead = [u.key for u in units]
            self._ahead_units = units
        if any(r.batch for r in [*spec.candidates, *([spec.judge] if spec.judge else [])]):
            from benchrun import batch

            judge = None if self.judge_endpoint is None or spec.judge is None else batch.Judge(
                spec.judge, self.judge_endpoint, self._jparams)
            on_wait = None if self.on_progress is None else (
                lambda what, hook=self.on_progress, n=len(units): hook(Progress(total=n, waiting=what)))
            self.batched = await batch.prepare(self.ledger, self.run_id, self._batch_plan(units), judge,
                                               use_cache=self.use_cache, budget_usd=spec.budget_usd, on_wait=on_wait)
        prog = Progress(total=len(units))
        queue: asyncio.Queue[_Unit] = asyncio.Queue()
        for u in units:
            queue.put_nowait(u)
        sems = {c.key: asyncio.Semaphore(c.concurrency or spec.concurrency.per_model) for c in spec.candidates}
        self._slots = asyncio.Semaphore(spec.concurrency.global_)
        judge_sem = asyncio.Semaphore((spec.judge.concurrency if spec.judge else None) or spec.concurrency.per_model)
        budget = spec.budget_usd

        async def worker() -> None:
            while self.state.stop is None:
                try:
                    unit = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                reserve = 0.0
                if budget is not None:
                    reserve = self._worst_case(unit)
                    if self.state.spent + self.state.reserved + reserve > budget:
                        if self.state.reserved == 0.0 or self.state.spent + reserve > budget:
                            self.state.stop = (
                                f"budget cap ${budget:.4f} reached: spent ${self.state.spent:.4f}; the next call could "
                                f"cost up to ${reserve:.4f}. Raise budget_usd and resume."
                            )
                            self.state.stop_status = "budget_exceeded"
                            return
                        queue.put_nowait(unit)  # wait for in-flight work to settle the real cost
                        await asyncio.sleep(0.05)
                        continue
                    self.state.reserved += reserve
                writes = _UnitWrites()
                try:
                    try:
                        row, fresh = await self._score(unit, sems[unit.cand.key], judge_sem, writes)
                    except BaseException:
                        writes.flush(self)  # an answer paid for is still written (the writer is drained at the end)
                        raise
                    writes.hold(result=(row, unit.prior is not None))
                    await writes.commit(self)  # its last answer and its result, usually in one transaction
                finally:
                    self.state.reserved -= reserve
                self.state.spent += fresh
                prog.done += 1
                prog.cost_usd += fresh
                if row.cost_usd is None and row.response_text is not None:
                    prog.cost_unknown += 1
                if row.cached:
                    prog.cached += 1
                if row.status == "error":
                    prog.errors += 1
                    await self._watch_faults(unit.cand, row)
                else:
                    self.state.consecutive_conn_faults[unit.cand.key] = 0
                if self.on_progress:
                    self.on_progress(prog)

        # Calls in flight never exceed the global limit: a call holds one of `_slots` from its request to its reply.
        # As many units are under way as there are slots, so a SIGKILL can lose at most one unrecorded answer per
        # slot (tests/reliability/test_rel_kill.py). Running twice as many units keeps the slots busier (measured:
        # docs/performance.md) but doubles that bound; not done.
        at_once = spec.concurrency.global_
        n_workers = max(1, min(at_once, len(units) or 1))
        if self.pool is not None:
            await self.pool.attach()
        tasks = [asyncio.create_task(worker()) for _ in range(n_workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._writer.shutdown(wait=True)  # every result handed to the writer is in the ledger
            if self.pool is not None:
                await self.pool.detach()
            await providers.close()
        if self.state.stop is not None:
            return RunOutcome(self.run_id, self.state.stop_status, self.state.stop, prog)
        return RunOutcome(self.run_id, "completed", None, prog)

    def _batch_plan(self, units: list[_Unit]) -> list[Any]:
        """The units as `benchrun.batch.prepare` needs them (waits for the run's batches; the rest runs as usual)."""
        from benchrun import batch

        rubric = self.loaded.rubric
        plan = []
        for u in units:
            prior = u.prior
            answer = prior.response_text if prior is not None and prior.error is None else None
            judged = rubric is not None and self.loaded.judged(u.case)
            plan.append(batch.Planned(
                u.cand, self.endpoints[u.cand.key], u.messages, self._cand_params[u.cand.key], u.sample,
                answer, (lambda text, c=u.case: judge_mod.judge_messages(rubric, c, text)) if judged else None))
        return plan

    async def _watch_faults(self, cand: ModelRef, row: Result) -> None:
        """Abort the run when a provider is plainly unreachable, instead of erroring every case."""
        err = row.error or ""
        if not any(sign in err for sign in _CONNECTION_SIGNS):
            self.state.consecutive_conn_faults[cand.key] = 0
            return
        ep = self.endpoints[cand.key]
        if ep.local:
            from benchrun import local_model

            try:
                await asyncio.to_thread(local_model.check_alive, ep.local_server)
            except RunAborted as e:
                self.state.stop, self.state.stop_status = str(e), "interrupted"
                return
        n = self.state.consecutive_conn_faults.get(cand.key, 0) + 1
        self.state.consecutive_conn_faults[cand.key] = n
        if n >= min(CONNECTION_FAULTS_BEFORE_ABORT, self.units_per_model.get(cand.key, 0)):
            from benchrun.errors import tidy_provider_error

            self.state.stop = (
                f"provider for {cand.key} unreachable: {n} calls in a row failed ({tidy_provider_error(err)[:160]})"
            )
            self.state.stop_status = "failed"
