"""Ledger tables (SQLModel). Plain columns and JSON text so `sqlite3` can read them.

The schema is created and upgraded only by `benchrun.ledger.migrations`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    name: str
    applied_at: dt.datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    __tablename__ = "run"

    id: str = Field(primary_key=True)
    name: str
    status: str = Field(index=True)  # running | completed | interrupted | failed | budget_exceeded
    created_at: dt.datetime = Field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    spec_hash: str
    spec_snapshot: str = Field(sa_column=Column(Text, nullable=False))  # JSON: spec + dataset + rubric
    spec_path: str | None = None
    dataset_name: str
    dataset_version: str
    dataset_hash: str = Field(index=True)
    rubric_name: str
    rubric_version: str
    rubric_hash: str
    prompt_hashes: str  # JSON {model_key: hash}
    models: str  # JSON [{key, model, alias, api_base, resolved_model}]
    sampling: str  # JSON {model_key: sampling params}
    samples_per_case: int
    judge_model: str
    judge_prompt_hash: str
    judge_sampling: str  # JSON
    package_versions: str  # JSON
    git_commit: str | None = None
    totals: str = "{}"  # JSON, filled at the end
    message: str | None = None  # why a run stopped early


class Result(SQLModel, table=True):
    __tablename__ = "result"
    __table_args__ = (UniqueConstraint("run_id", "case_id", "model_key", "sample_index", name="uq_result_cell"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    case_id: str
    model_key: str
    model: str
    sample_index: int
    category: str
    severity: str
    status: str  # passed | failed | error
    error: str | None = Field(default=None, sa_column=Column(Text))
    # the call to the candidate
    messages: str = Field(sa_column=Column(Text, nullable=False))  # JSON, exactly as sent
    response_text: str | None = Field(default=None, sa_column=Column(Text))
    resolved_model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = None  # None = unknown, never silently 0
    latency_ms: float | None = None
    retries: int = 0
    attempts: str = "[]"  # JSON list of failed attempts {error, wait_s}
    cached: bool = False
    # rules
    rules: str = "[]"  # JSON list of {rule, passed, detail}
    rules_passed: bool | None = None
    scored_by: str | None = None  # rules | judge | rules+judge (None: recorded before this column existed)
    # judge
    judge_score: int | None = None
    judge_pass: bool | None = None
    judge_reason: str | None = Field(default=None, sa_column=Column(Text))
    judge_failure_mode: str | None = None
    judge_error: str | None = Field(default=None, sa_column=Column(Text))
    judge_raw: str | None = Field(default=None, sa_column=Column(Text))
    judge_prompt_tokens: int | None = None
    judge_completion_tokens: int | None = None
    judge_cost_usd: float | None = None
    judge_latency_ms: float | None = None
    judge_retries: int = 0
    judge_reasks: int = 0
    passed: bool | None = None  # None when status == error
    created_at: dt.datetime = Field(default_factory=utcnow)
    # why the answer looks like it tries to steer its judge (scoring/judge.py:injection_signs), None if it does not
    injection_suspected: str | None = Field(default=None, sa_column=Column(Text))
    # JSON list of the judge calls' cache keys (first call, then its re-ask), written by the runner so that
    # `ledger copy` finds a run's judge cache entries without rendering a (stored, untrusted) judge template
    judge_cache_keys: str | None = Field(default=None, sa_column=Column(Text))
    # JSON of a tool-using case's trajectory (benchrun.trajectory): tools sent, every assistant message, tool
    # call and tool result in order, how it ended and its tool score (scoring/tools.py); None without tools
    trajectory: str | None = Field(default=None, sa_column=Column(Text))


class CacheEntry(SQLModel, table=True):
    """Response cache keyed by model, api_base, messages, sampling and sample index."""

    __tablename__ = "cache"

    key: str = Field(primary_key=True)
    model: str
    response: str = Field(sa_column=Column(Text, nullable=False))  # JSON of the completed call
    created_at: dt.datetime = Field(default_factory=utcnow)


class Report(SQLModel, table=True):
    """Analyses stored for later: calibrations, coverage reports, bias reports, comparisons."""

    __tablename__ = "report"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)  # calibration | coverage | bias_position | bias_verbosity | ...
    created_at: dt.datetime = Field(default_factory=utcnow)
    run_id: str | None = Field(default=None, index=True)
    dataset_hash: str | None = Field(default=None, index=True)
    judge_model: str | None = None
    judge_prompt_hash: str | None = None
    rubric_hash: str | None = None
    subject: str | None = None  # e.g. production sample name/hash
    summary: str | None = None  # one line for listings
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON


class RunLease(SQLModel, table=True):
    """Who is executing a run right now: one row per run while a process works on it (see `Ledger.acquire_lease`).

    ``owner`` is ``host:pid:token``; ``heartbeat_at`` is renewed while the owner lives. A second process
    refuses to run the same run unless the lease is stale (old heartbeat, or the owner's pid is dead on
    this host).
    """

    __tablename__ = "run_lease"

    run_id: str = Field(primary_key=True)
    owner: str
    acquired_at: dt.datetime = Field(default_factory=utcnow)
    heartbeat_at: dt.datetime = Field(default_factory=utcnow)


class RunShard(SQLModel, table=True):
    """One shard of a run split over N processes (`benchrun run SPEC --shard I/N --run-id ID`, see
    `benchrun.shards`): all N rows are written with the run by the first shard to arrive, so the
    number of shards is fixed by the run; each shard then marks its own row.

    ``status`` is ``waiting`` (not started yet), ``running``, ``done`` (every cell of the shard is
    recorded) or how its process stopped (``interrupted``, ``failed``, ``budget_exceeded``).
    """

    __tablename__ = "run_shard"

    run_id: str = Field(foreign_key="run.id", primary_key=True)
    shard: int = Field(primary_key=True)  # 1 .. shards
    shards: int
    status: str = "waiting"
    cells: int = 0  # cells of the run this shard owns
    host: str | None = None  # where it last ran
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    message: str | None = Field(default=None, sa_column=Column(Text))


class BatchJob(SQLModel, table=True):
    """One provider batch (files + batches API) of a run, recorded before it is created (see `benchrun.batch`).

    ``token`` is ours and goes into the batch's metadata, so a process that died between creating the
    batch and recording its id finds it again by listing the provider's batches. ``state`` is
    ``creating`` (not yet created, or created and not yet recorded), then the provider's status
    (``validating``, ``in_progress``, ``finalizing``, ``completed``, ``expired``, ``failed``,
    ``cancelled``), then ``collected`` once its answers are read, or ``abandoned`` (never created).
    """

    __tablename__ = "batch_job"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    token: str = Field(unique=True)
    batch_id: str | None = Field(default=None, index=True)  # the provider's id
    role: str  # candidate | judge
    model_key: str
    model: str
    api_base: str | None = None
    state: str
    n_lines: int = 0
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: str = "{}"  # JSON: the provider's request_counts, then ours {ok, failed, expired}
    message: str | None = Field(default=None, sa_column=Column(Text))
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class BatchLine(SQLModel, table=True):
    """One call in a batch: ``custom_id`` is the call's cache key. ``state``: ``submitted``, then ``ok``
    (answered in the batch), or ``failed`` / ``expired`` / ``cancelled`` (answered by a synchronous call
    instead, ``fallback`` = ``sync``), or ``abandoned`` with its batch."""

    __tablename__ = "batch_line"
    __table_args__ = (UniqueConstraint("job_id", "custom_id", name="uq_batch_line"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="batch_job.id", index=True)
    run_id: str = Field(index=True)
    custom_id: str
    state: str = "submitted"
    fallback: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))


class PairJudgement(SQLModel, table=True):
    """One order of one pair in a pairwise run (``judge.mode: pairwise``; see `benchrun.pairwise_run`).

    ``model_a`` / ``model_b`` are the pair as scheduled (which candidate is ``model_a`` is drawn with the
    run's ``pair_seed``); ``shown_first`` is the candidate shown as answer A in this call, ``ordering`` "AB"
    (model_a first) or "BA". ``displayed`` is the judge's parsed answer as it gave it (A | B | tie, in shown
    positions), ``winner`` the same in model terms (model_a | model_b | tie); both None with ``error``.
    The judge never sees model names.
    """

    __tablename__ = "pair_judgement"
    __table_args__ = (UniqueConstraint("run_id", "case_id", "model_a", "model_b", "ordering", name="uq_pair_judgement"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    case_id: str
    model_a: str
    model_b: str
    ordering: str  # AB | BA
    shown_first: str
    status: str  # judged | error
    displayed: str | None = None
    winner: str | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    raw: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    judge_model: str
    pairwise_prompt_hash: str
    rubric_hash: str
    cache_keys: str = "[]"  # JSON list: the first call's key, then its re-ask's
    reasks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    cached: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow)


_RESULT_FIELDS = frozenset(Result.model_fields)
_RESULT_DEFAULTS = {n: f.default for n, f in Result.model_fields.items()
                    if not f.is_required() and f.default_factory is None}
_RESULT_FACTORIES = {n: f.default_factory for n, f in Result.model_fields.items() if f.default_factory is not None}


def new_result(**values: object) -> Result:
    """``Result(**values)``, built the way SQLAlchemy builds a row it loads, for the runner's hot path.

    The same object: the same field values and defaults (factories called, as `Result(**values)` does),
    the same ``model_fields_set``, and change tracking for every attribute set afterwards. SQLModel's
    ``__init__`` sets each of the ~40 columns through SQLAlchemy's instrumented ``setattr`` (~20% of the
    runner's CPU in a replay from the cache); here the instance state is made first
    (``ClassManager.new_instance``, as a query does) and the values go straight into ``__dict__``.
    Table models are not validated by ``__init__`` either. An unknown name raises TypeError.
    """
    unknown = values.keys() - _RESULT_FIELDS
    if unknown:
        raise TypeError(f"Result has no field(s) {', '.join(sorted(unknown))}")
    row: Result = Result._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    d = row.__dict__
    d.update(_RESULT_DEFAULTS)  # then overwritten by the values given
    for name, factory in _RESULT_FACTORIES.items():
        if name not in values:
            d[name] = factory()  # type: ignore[call-arg]
    d.update(values)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


class ResultDraft:
    """A result's fields while the runner scores it: plain attributes, made the `Result` row by `row`.

    Reading a field not set gives its `Result` default, as on a new row; setting a name that is not a field
    raises AttributeError. ``row()`` is `new_result` of the fields given or set, so it is the row that
    ``new_result(...)`` followed by the same assignments would be (the same values, defaults and
    ``model_fields_set``), without SQLAlchemy's instrumented ``setattr`` per assignment (~15 us each,
    about 20 a judged result: ~0.3 ms a result in a replay from the cache)."""

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - _RESULT_FIELDS
        if unknown:
            raise TypeError(f"Result has no field(s) {', '.join(sorted(unknown))}")
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only called for a name not set
        if name in _RESULT_DEFAULTS:
            return _RESULT_DEFAULTS[name]
        raise AttributeError(f"Result field {name!r} is not set and has no plain default")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _RESULT_FIELDS:
            raise AttributeError(f"Result has no field {name!r}")
        self.__dict__[name] = value

    def row(self) -> Result:
        return new_result(**self.__dict__)
