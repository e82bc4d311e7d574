"""A real OpenAI-compatible HTTP server for benchrun's tests and benchmarks.

It speaks just enough of the OpenAI chat-completions API for litellm's ``openai/``
provider: ``POST /v1/chat/completions`` (also ``/chat/completions``). Replies come
from configurable rules; latency and faults (429/5xx, timeouts, connection resets,
malformed or truncated bodies, empty replies) are injected deterministically so a
test run can be reproduced exactly. Every request is recorded in memory so tests can
assert what the client actually sent and paid for.

Standard library only, so it also runs as a separate process::

    python tests/fakeserver.py --port 0 --config cfg.json --port-file /tmp/port

In-process::

    with FakeServer({"default_reply": "hi", "latency_ms": 200}) as srv:
        litellm.completion(model="openai/fake-a", api_base=srv.url, api_key="x", messages=[...])
        srv.stats()["completed"]

Endpoints
    POST /v1/chat/completions, /chat/completions   the completion API
    POST /v1/embeddings, /embeddings               the embeddings API: each input's vector is a hashed bag of
                                                    words (see ``embedding_vector``), so texts sharing words are
                                                    close and clusters mean something; faults apply as to chat
                                                    (the inputs are the "messages", one user message each)
    GET  /health                                    200 {"ok": true}
    GET  /stats                                     counters (see ``FakeServer.stats``)
    GET  /requests                                  the per-request log (see ``RequestRecord``)
    POST /reset                                     clear counters, log and fault state
    POST /config                                    replace the config (body: config JSON)
    POST /v1/files                                  upload a file (multipart: purpose, file), OpenAI's files API
    GET  /v1/files/{id}, /v1/files/{id}/content     a file's metadata / its bytes
    POST /v1/batches                                create a batch over an uploaded JSONL input file
    GET  /v1/batches, /v1/batches/{id}              list / retrieve batches
    POST /v1/batches/{id}/cancel                    cancel a batch (cancelled once it is next retrieved)

Config keys (all optional)
    latency_ms, latency_jitter_ms   artificial delay before every response; the jitter is
                                    uniform in [0, latency_jitter_ms] (not seeded: it changes
                                    timing only, never content).
    default_reply                   reply when no rule matches (default "OK").
    rules                           [{"model": regex, "contains": str, "regex": regex, "reply": str}];
                                    first match wins. ``model`` and ``regex`` use ``re.search``;
                                    ``contains``/``regex`` look at the text of all messages joined
                                    by newlines. ``{last_user}`` in a reply is replaced by the text
                                    of the last user message (literal replacement, so JSON braces
                                    in a reply are safe). A reply starting with ``TOOL_CALLS:``
                                    (build it with ``tool_calls_reply``) is sent as OpenAI
                                    ``tool_calls`` (content null, finish_reason "tool_calls"); rules
                                    also see ``tool`` messages, so a multi-step script matches on
                                    the tool results sent back.
                                    A rule with ``"longer_of": [regex_a, regex_b]`` is a length-preferring
                                    pairwise judge: group 1 of each regex (searched in that text) is
                                    answer A and answer B, and ``{longer}`` in its reply becomes "A" with
                                    probability sigma((len_a - len_b) / length_scale), else "B" (drawn
                                    from a hash of the text and ``seed``: the same prompt always gets the
                                    same answer); ``length_scale`` 0 (default) always names the longer
                                    one, "tie" when they are equally long or a regex finds nothing.
    resolved_model                  model name reported in responses (default: echo the request).
    no_usage                        true: omit ``usage`` from responses.
    timeout_sleep_s                 how long a "timeout" fault holds the connection (default 30).
    embedding_dim                   length of /v1/embeddings vectors (default 64).
    hold_until_in_flight            N: hold every request (before its latency) until N requests are in
                                    flight at once, then let everything through from then on (a one-shot
                                    gate, re-armed by /reset and /config). For tests that need several
                                    clients to overlap however far apart they start; if N is not reached
                                    within hold_timeout_s (default 120) the gate opens anyway.
    faults                          [{"kind": ..., "model": regex, "contains": str,
                                      "first_n": N | "rate": p, "seed": s, "retry_after": seconds}]
        kind: "429" | "500" | "502" | "503" (HTTP error with an OpenAI-style error body),
              "401" (401 whose error message echoes the API key the client sent, in full, as a careless
              provider or proxy might: for testing that keys in provider errors are redacted),
              "timeout" (hold the connection for timeout_sleep_s, then close it without a response),
              "reset" (close the socket with a TCP RST, no response),
              "malformed" (200 with a non-JSON body), "truncated" (200 whose body is the first half
              of a valid completion JSON, Content-Length matching the half), "empty" (a valid
              completion whose content is ""; for embeddings, a list with no vector).
        first_n: the first N requests of every distinct prompt key matching the fault fail.
        rate/seed: a request fails when a hash of (seed, prompt key, attempt number of that prompt
              key) falls below ``rate``. Keyed per prompt rather than per global request number, so
              the outcome does not depend on how concurrent requests interleave.
        retry_after: for HTTP error kinds, send a ``Retry-After: <seconds>`` header (omit: none).
        The first matching fault that fires decides; its counters are kept per fault and reset by
        /reset and /config.
    batch                           {"delay_s": s, "fail_contains": str, "expire_contains": str, "fail_batch": bool}
                                    for the batches API: a batch is "in_progress" until ``delay_s`` after it was
                                    created (default 0), then its lines are answered (each one logged as a request on
                                    path ``/v1/batches``, by the same rules, counted in /stats) and it is "completed".
                                    Lines whose text contains ``fail_contains`` fail (error file, status 500);
                                    lines containing ``expire_contains`` are never run and the batch ends
                                    "expired" (those lines in the error file with code ``batch_expired``);
                                    ``fail_batch`` makes the whole batch "failed" (validation error, no output);
                                    ``reject_create`` answers POST /v1/batches with 400 (a provider without batches).
                                    Output and error files are JSONL in OpenAI's format
                                    (``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
                                    "error"}``). Files and batches survive /config and are cleared by /reset.

A "prompt key" is SHA-256 over canonical JSON of {"model", "messages", "sampling"}, where sampling
holds the request fields in ``SAMPLING_KEYS`` that are present (see ``prompt_key``).
Token counts are whitespace word counts: prompt tokens over all message texts, completion tokens
over the reply.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SAMPLING_KEYS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "reasoning_effort",
)

FAULT_KINDS: frozenset[str] = frozenset(
    {"401", "429", "500", "502", "503", "timeout", "reset", "malformed", "truncated", "empty"}
)
_HTTP_ERROR_KINDS = {"429", "500", "502", "503"}
_CONFIG_KEYS = {
    "latency_ms",
    "latency_jitter_ms",
    "rules",
    "default_reply",
    "no_usage",
    "resolved_model",
    "faults",
    "timeout_sleep_s",
    "hold_until_in_flight",
    "hold_timeout_s",
    "embedding_dim",
    "batch",
}
_BATCH_KEYS = {"delay_s", "fail_contains", "expire_contains", "fail_batch", "reject_create"}
_RULE_KEYS = {"model", "contains", "regex", "reply", "replies", "longer_of", "length_scale", "seed"}
_FAULT_KEYS = {"kind", "model", "contains", "first_n", "rate", "seed", "retry_after"}
_ERROR_TEXT = {
    "429": ("Rate limit reached for requests", "rate_limit_exceeded"),
    "500": ("The server had an error while processing your request", "server_error"),
    "502": ("Bad gateway", "server_error"),
    "503": ("The engine is currently overloaded, please try again later", "server_error"),
}
COMPLETED_OUTCOMES = frozenset({"ok", "empty"})


# --------------------------------------------------------------------------- helpers


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prompt_key(model: str, messages: list[dict[str, Any]], sampling: dict[str, Any] | None = None) -> str:
    """SHA-256 of canonical JSON ``{"model", "messages", "sampling"}`` (the key /stats counts by).

    ``sampling`` should hold only the ``SAMPLING_KEYS`` fields the client sent.
    """
    return hashlib.sha256(
        _canonical({"model": model, "messages": messages, "sampling": sampling or {}}).encode("utf-8")
    ).hexdigest()


def message_text(content: Any) -> str:
    """Text of one message ``content``: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def count_tokens(text: str) -> int:
    """Whitespace word count: the fake server's notion of a token."""
    return len(text.split())


_WORDS = re.compile(r"\w+")


def embedding_vector(text: str, dim: int = 64) -> list[float]:
    """Deterministic unit vector of ``text``: a signed hashed bag of its lower-cased words.

    Word w adds +-1 at position ``sha256(w)[:4] mod dim`` (sign from the fifth byte); the sum is
    L2-normalised. A text without words maps to the first unit vector.
    """
    v = [0.0] * dim
    for w in _WORDS.findall(text.lower()):
        d = hashlib.sha256(w.encode("utf-8")).digest()
        v[int.from_bytes(d[:4], "big") % dim] += 1.0 if d[4] & 1 else -1.0
    norm = sum(x * x for x in v) ** 0.5
    if norm == 0:
        v[0] = 1.0
        return v
    return [x / norm for x in v]


def _fraction(seed: Any, key: str, attempt: int) -> float:
    digest = hashlib.sha256(f"{seed}|{key}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Rule:
    reply: str
    model: re.Pattern[str] | None = None
    contains: str | None = None
    regex: re.Pattern[str] | None = None
    replies: tuple[str, ...] = ()  # the n-th request of a prompt key gets replies[n % len] (samples that differ)
    longer_of: tuple[re.Pattern[str], re.Pattern[str]] | None = None  # a length-preferring pairwise judge
    length_scale: float = 0.0
    seed: Any = 0

    def longer(self, text: str) -> str:
        """"A", "B" or "tie": which of the two answers this length-preferring judge picks (see the module doc)."""
        assert self.longer_of is not None
        ma, mb = self.longer_of[0].search(text), self.longer_of[1].search(text)
        if ma is None or mb is None:
            return "tie"
        diff = len(ma.group(1)) - len(mb.group(1))
        if self.length_scale <= 0:
            return "tie" if diff == 0 else ("A" if diff > 0 else "B")
        import math

        p_a = 1.0 / (1.0 + math.exp(-diff / self.length_scale))
        u = _fraction(self.seed, hashlib.sha256(text.encode()).hexdigest(), 0)
        return "A" if u < p_a else "B"

    def matches(self, model: str, text: str) -> bool:
        if self.model is not None and not self.model.search(model):
            return False
        if self.contains is not None and self.contains not in text:
            return False
        return not (self.regex is not None and not self.regex.search(text))


@dataclass(frozen=True)
class Fault:
    kind: str
    model: re.Pattern[str] | None = None
    contains: str | None = None
    first_n: int | None = None
    rate: float | None = None
    seed: Any = 0
    retry_after: float | None = None

    def applies_to(self, model: str, text: str) -> bool:
        if self.model is not None and not self.model.search(model):
            return False
        return not (self.contains is not None and self.contains not in text)


@dataclass(frozen=True)
class Config:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rules: tuple[Rule, ...] = ()
    default_reply: str = "OK"
    no_usage: bool = False
    resolved_model: str | None = None
    faults: tuple[Fault, ...] = ()
    timeout_sleep_s: float = 30.0
    hold_until_in_flight: int = 0
    hold_timeout_s: float = 120.0
    embedding_dim: int = 64
    batch: dict[str, Any] = field(default_factory=dict)  # the batches API's behaviour (see the module doc)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> Config:
        """Validate a config dict; unknown keys and bad values raise ``ValueError`` (catch typos early)."""
        try:
            return cls._parse(raw)
        except re.error as exc:
            raise ValueError(f"fakeserver config: bad regex {exc.pattern!r}: {exc}") from exc
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"fakeserver config: {exc}") from exc

    @classmethod
    def _parse(cls, raw: dict[str, Any] | None) -> Config:
        if raw is not None and not isinstance(raw, dict):
            raise ValueError("fakeserver config must be a JSON object")
        raw = dict(raw or {})
        unknown = set(raw) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"fakeserver config: unknown keys {sorted(unknown)}; allowed {sorted(_CONFIG_KEYS)}")
        rules = []
        for i, r in enumerate(raw.get("rules") or []):
            bad = set(r) - _RULE_KEYS
            if bad or ("reply" in r) == ("replies" in r):
                raise ValueError(f"fakeserver config: rules[{i}] needs exactly one of 'reply' or 'replies', and only "
                                 f"{sorted(_RULE_KEYS)}")
            replies = r.get("replies")
            if replies is not None and (not isinstance(replies, list) or not replies):
                raise ValueError(f"fakeserver config: rules[{i}].replies must be a non-empty list")
            rules.append(
                Rule(
                    reply=str(r.get("reply", "")),
                    replies=tuple(str(x) for x in replies or ()),
                    model=re.compile(r["model"]) if r.get("model") is not None else None,
                    contains=r.get("contains"),
                    regex=re.compile(r["regex"]) if r.get("regex") is not None else None,
                    longer_of=(re.compile(r["longer_of"][0]), re.compile(r["longer_of"][1]))
                    if r.get("longer_of") is not None else None,
                    length_scale=float(r.get("length_scale", 0.0)),
                    seed=r.get("seed", 0),
                )
            )
        faults = []
        for i, f in enumerate(raw.get("faults") or []):
            bad = set(f) - _FAULT_KEYS
            kind = str(f.get("kind"))
            if bad or kind not in FAULT_KINDS:
                raise ValueError(
                    f"fakeserver config: faults[{i}] needs kind in {sorted(FAULT_KINDS)} and only {sorted(_FAULT_KEYS)}"
                )
            if (f.get("first_n") is None) == (f.get("rate") is None):
                raise ValueError(f"fakeserver config: faults[{i}] needs exactly one of 'first_n' or 'rate'")
            faults.append(
                Fault(
                    kind=kind,
                    model=re.compile(f["model"]) if f.get("model") is not None else None,
                    contains=f.get("contains"),
                    first_n=int(f["first_n"]) if f.get("first_n") is not None else None,
                    rate=float(f["rate"]) if f.get("rate") is not None else None,
                    seed=f.get("seed", 0),
                    retry_after=float(f["retry_after"]) if f.get("retry_after") is not None else None,
                )
            )
        return cls(
            latency_ms=float(raw.get("latency_ms", 0.0)),
            latency_jitter_ms=float(raw.get("latency_jitter_ms", 0.0)),
            rules=tuple(rules),
            default_reply=str(raw.get("default_reply", "OK")),
            no_usage=bool(raw.get("no_usage", False)),
            resolved_model=raw.get("resolved_model"),
            faults=tuple(faults),
            timeout_sleep_s=float(raw.get("timeout_sleep_s", 30.0)),
            hold_until_in_flight=int(raw.get("hold_until_in_flight", 0)),
            hold_timeout_s=float(raw.get("hold_timeout_s", 120.0)),
            embedding_dim=max(1, int(raw.get("embedding_dim", 64))),
            batch=_parse_batch(raw.get("batch")),
            raw=raw,
        )


def _parse_batch(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - _BATCH_KEYS:
        raise ValueError(f"fakeserver config: batch must be an object with only {sorted(_BATCH_KEYS)}")
    return {"delay_s": float(raw.get("delay_s", 0.0)), "fail_contains": raw.get("fail_contains"),
            "expire_contains": raw.get("expire_contains"), "fail_batch": bool(raw.get("fail_batch", False)),
            "reject_create": bool(raw.get("reject_create", False))}


# --------------------------------------------------------------------------- state


@dataclass
class RequestRecord:
    """One request as the server saw it.

    ``outcome`` is "ok" or the fault kind that fired; ``status`` is the HTTP status sent
    (None for "timeout" and "reset", which send nothing). ``completed`` is true when a
    well-formed chat.completion was sent (outcome "ok" or "empty").
    """

    n: int
    time: float
    path: str
    model: str
    messages: list[dict[str, Any]]
    sampling: dict[str, Any]
    prompt_key: str
    occurrence: int = 0  # how many earlier requests had the same prompt key (a rule's `replies` index)
    outcome: str = "pending"
    status: int | None = None
    reply: str | None = None
    client_port: int | None = None  # the client's TCP port: which connection (so which process) sent it
    api_key: str | None = None  # the key the request carried (Authorization: Bearer, api-key or x-api-key)

    @property
    def completed(self) -> bool:
        return self.outcome in COMPLETED_OUTCOMES

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["completed"] = self.completed
        return d


class _State:
    """Config, request log and fault counters, guarded by one lock."""

    def __init__(self, config: dict[str, Any] | None) -> None:
        self.lock = threading.Lock()
        self.config = Config.parse(config)
        self.records: list[RequestRecord] = []
        self.fault_seen: dict[tuple[int, str], int] = {}
        self.key_seen: dict[str, int] = {}  # requests per prompt key since the last config/reset
        self.stopping = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_by_model: dict[str, int] = {}
        self.max_in_flight_by_model: dict[str, int] = {}
        self.handlers_alive = 0
        self.idle = threading.Condition(self.lock)
        self.gate = threading.Condition(self.lock)  # hold_until_in_flight
        self.gate_open = False
        self.files: dict[str, dict[str, Any]] = {}  # OpenAI files API: id -> {"meta": file object, "data": bytes}
        self.batches: dict[str, dict[str, Any]] = {}  # id -> batch object (plus private "_..." fields)
        self.batch_calls: dict[str, int] = {}  # batches API calls by kind: files_create, batches_create, ...

    def set_config(self, config: dict[str, Any] | None) -> None:
        parsed = Config.parse(config)
        with self.lock:
            self.config = parsed
            self.fault_seen.clear()
            self.key_seen.clear()
            self.gate_open = False

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.fault_seen.clear()
            self.key_seen.clear()
            self.gate_open = False
            self.max_in_flight = self.in_flight
            self.max_in_flight_by_model = {m: n for m, n in self.in_flight_by_model.items() if n}
            self.files.clear()
            self.batches.clear()
            self.batch_calls.clear()

    def enter(self, model: str) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            n = self.in_flight_by_model[model] = self.in_flight_by_model.get(model, 0) + 1
            self.max_in_flight_by_model[model] = max(self.max_in_flight_by_model.get(model, 0), n)
            self.gate.notify_all()

    def pass_gate(self, cfg: Config) -> None:
        """Wait until ``hold_until_in_flight`` requests are in flight at once (once; see the config keys)."""
        if cfg.hold_until_in_flight <= 0:
            return
        deadline = time.monotonic() + cfg.hold_timeout_s
        with self.lock:
            while not self.gate_open and self.in_flight < cfg.hold_until_in_flight and not self.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.gate.wait(min(left, 0.1))
            self.gate_open = True
            self.gate.notify_all()

    def leave(self, model: str) -> None:
        with self.lock:
            self.in_flight -= 1
            self.in_flight_by_model[model] -= 1

    def admit(self, path: str, body: dict[str, Any],
              client_port: int | None = None) -> tuple[RequestRecord, Config, Fault | None]:
        """Log a request and decide (deterministically) which fault, if any, fires for it."""
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        sampling = {k: body[k] for k in SAMPLING_KEYS if k in body}
        key = prompt_key(model, messages, sampling)
        text = "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
        with self.lock:
            cfg = self.config
            rec = RequestRecord(
                n=len(self.records) + 1,
                time=time.time(),
                path=path,
                model=model,
                messages=messages,
                sampling=sampling,
                prompt_key=key,
                occurrence=self.key_seen.get(key, 0),
                client_port=client_port,
            )
            self.key_seen[key] = rec.occurrence + 1
            self.records.append(rec)
            fired: Fault | None = None
            for i, fault in enumerate(cfg.faults):
                if not fault.applies_to(model, text):
                    continue
                attempt = self.fault_seen.get((i, key), 0)
                self.fault_seen[(i, key)] = attempt + 1
                if fault.first_n is not None:
                    hit = attempt < fault.first_n
                else:
                    hit = _fraction(fault.seed, key, attempt) < (fault.rate or 0.0)
                if hit:
                    fired = fault
                    break
        return rec, cfg, fired

    def finish(self, rec: RequestRecord, outcome: str, status: int | None, reply: str | None = None) -> None:
        with self.lock:
            rec.outcome, rec.status, rec.reply = outcome, status, reply

    def stats(self) -> dict[str, Any]:
        with self.lock:
            recs = list(self.records)
            by_model: dict[str, int] = {}
            by_key: dict[str, int] = {}
            completed_by_key: dict[str, int] = {}
            by_outcome: dict[str, int] = {}
            by_status: dict[str, int] = {}
            for r in recs:
                by_model[r.model] = by_model.get(r.model, 0) + 1
                by_key[r.prompt_key] = by_key.get(r.prompt_key, 0) + 1
                by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + 1
                st = str(r.status) if r.status is not None else "none"
                by_status[st] = by_status.get(st, 0) + 1
                if r.completed:
                    completed_by_key[r.prompt_key] = completed_by_key.get(r.prompt_key, 0) + 1
            return {
                "total": len(recs),
                "completed": sum(1 for r in recs if r.completed),
                "by_model": by_model,
                "by_prompt_key": by_key,
                "completed_by_prompt_key": completed_by_key,
                "by_outcome": by_outcome,
                "by_status": by_status,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "max_in_flight_by_model": dict(self.max_in_flight_by_model),
                "batch_calls": dict(self.batch_calls),
                "batches": {b["id"]: b["status"] for b in self.batches.values()},
            }


# --------------------------------------------------------------------------- the files and batches API


class _Batches:
    """OpenAI's ``/v1/files`` and ``/v1/batches`` over the server's state (see the module doc's ``batch`` key)."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def _count(self, kind: str) -> None:
        self.state.batch_calls[kind] = self.state.batch_calls.get(kind, 0) + 1

    def add_file(self, data: bytes, purpose: str, filename: str, client: bool = True) -> dict[str, Any]:
        meta = {"id": f"file-{uuid.uuid4().hex[:24]}", "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": filename, "purpose": purpose, "status": "processed",
                "status_details": None}
        with self.state.lock:
            if client:
                self._count("files_create")
            self.state.files[meta["id"]] = {"meta": meta, "data": data}
        return meta

    def file(self, file_id: str, content: bool) -> tuple[dict[str, Any], bytes] | None:
        with self.state.lock:
            self._count("files_content" if content else "files_retrieve")
            f = self.state.files.get(file_id)
        return None if f is None else (f["meta"], f["data"])

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fid = body.get("input_file_id")
        with self.state.lock:
            self._count("batches_create")
            if self.state.config.batch.get("reject_create"):
                return 400, {"error": {"message": "batches are disabled on this server", "type": "invalid_request_error"}}
            if fid not in self.state.files:
                return 400, {"error": {"message": f"no file {fid!r}", "type": "invalid_request_error"}}
            now = int(time.time())
            b: dict[str, Any] = {
                "id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch",
                "endpoint": body.get("endpoint", "/v1/chat/completions"), "errors": None, "input_file_id": fid,
                "completion_window": body.get("completion_window", "24h"), "status": "in_progress",
                "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": now,
                "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": body.get("metadata"), "_due": time.monotonic() + self.state.config.batch.get("delay_s", 0.0),
            }
            lines = self.state.files[fid]["data"].decode("utf-8").splitlines()
            b["request_counts"]["total"] = sum(1 for ln in lines if ln.strip())
            self.state.batches[b["id"]] = b
        return 200, self.public(b)

    @staticmethod
    def public(b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def retrieve(self, bid: str) -> dict[str, Any] | None:
        with self.state.lock:
            self._count("batches_retrieve")
            b = self.state.batches.get(bid)
            if b is None:
                return None
            due = b["status"] == "in_progress" and time.monotonic() >= b["_due"]
            if b["status"] == "cancelling":
                b["status"], b["cancelled_at"] = "cancelled", int(time.time())
            if due:
                b["status"] = "finalizing"  # claimed: a concurrent retrieve does not run it again
        if due:
            self._run(b)
        with self.state.lock:
            return self.public(b)

    def list(self) -> dict[str, Any]:
        with self.state.lock:
            self._count("batches_list")
            data = [self.public(b) for b in self.state.batches.values()]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": False}

    def cancel(self, bid: str) -> dict[str, Any] | None:
        with self.state.lock:
            self._count("batches_cancel")
            b = self.state.batches.get(bid)
            if b is None:
                return None
            if b["status"] in ("in_progress", "validating"):
                b["status"], b["cancelling_at"] = "cancelling", int(time.time())
            return self.public(b)

    def _run(self, b: dict[str, Any]) -> None:
        """Answer the batch's lines (each logged as a request), write its output and error files."""
        cfg = self.state.config
        opts = cfg.batch
        with self.state.lock:
            data = self.state.files[b["input_file_id"]]["data"]
        now = int(time.time())
        if opts.get("fail_batch"):
            with self.state.lock:
                b.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                    {"code": "invalid_request", "message": "the batch failed validation (fakeserver fail_batch)",
                     "param": None, "line": None}]})
            return
        out: list[str] = []
        err: list[str] = []
        expired = False
        for ln in data.decode("utf-8").splitlines():
            if not ln.strip():
                continue
            line = json.loads(ln)
            cid, body = line.get("custom_id"), line.get("body") or {}
            messages = body.get("messages") or []
            text = "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
            rid = f"batch_req_{uuid.uuid4().hex[:24]}"
            if opts.get("expire_contains") is not None and opts["expire_contains"] in text:
                expired = True
                err.append(json.dumps({"id": rid, "custom_id": cid, "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired."}}))
                continue
            rec, _, _ = self.state.admit("/v1/batches", body)
            if opts.get("fail_contains") is not None and opts["fail_contains"] in text:
                self.state.finish(rec, "500", 500)
                err.append(json.dumps({"id": rid, "custom_id": cid, "response": {
                    "status_code": 500, "request_id": rid, "body": {"error": {
                        "message": _ERROR_TEXT["500"][0], "type": "server_error", "param": None, "code": None}}},
                    "error": None}))
                continue
            model = str(body.get("model", ""))
            reply = _reply_for(cfg, model, messages, rec.occurrence)
            self.state.finish(rec, "ok", 200, reply)
            out.append(json.dumps({"id": rid, "custom_id": cid, "response": {
                "status_code": 200, "request_id": rid, "body": _completion_body(cfg, model, messages, reply)},
                "error": None}))
        out_meta = self.add_file(("\n".join(out) + "\n").encode(), "batch_output", "output.jsonl", False) if out else None
        err_meta = self.add_file(("\n".join(err) + "\n").encode(), "batch_output", "errors.jsonl", False) if err else None
        with self.state.lock:
            b["output_file_id"] = out_meta["id"] if out_meta else None
            b["error_file_id"] = err_meta["id"] if err_meta else None
            b["request_counts"].update(completed=len(out), failed=len(err))
            if expired:
                b.update(status="expired", expired_at=now)
            else:
                b.update(status="completed", finalizing_at=now, completed_at=now)


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return out


# --------------------------------------------------------------------------- HTTP


def _reply_for(cfg: Config, model: str, messages: list[dict[str, Any]], occurrence: int = 0) -> str:
    text = "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
    reply = cfg.default_reply
    for rule in cfg.rules:
        if rule.matches(model, text):
            reply = rule.replies[occurrence % len(rule.replies)] if rule.replies else rule.reply
            if rule.longer_of is not None:
                reply = reply.replace("{longer}", rule.longer(text))
            break
    if "{last_user}" in reply:
        last_user = ""
        for m in messages:
            if isinstance(m, dict) and m.get("role") == "user":
                last_user = message_text(m.get("content"))
        reply = reply.replace("{last_user}", last_user)
    return reply


TOOL_CALLS_PREFIX = "TOOL_CALLS:"


def tool_calls_reply(calls: list[dict[str, Any]], content: str | None = None) -> str:
    """A reply (for ``rules``) that the server sends as OpenAI ``tool_calls``: each ``{"name", "arguments"}``,
    with ``arguments`` an object (sent as its JSON) or a string (sent verbatim, so it may be invalid JSON)."""
    return TOOL_CALLS_PREFIX + json.dumps({"calls": calls, "content": content})


def _tool_message(reply: str) -> dict[str, Any] | None:
    """A reply starting with ``TOOL_CALLS:`` (see `tool_calls_reply`) as an assistant message with tool_calls."""
    if not reply.startswith(TOOL_CALLS_PREFIX):
        return None
    spec = json.loads(reply[len(TOOL_CALLS_PREFIX):])
    calls = []
    for i, c in enumerate(spec["calls"]):
        args = c.get("arguments", {})
        calls.append({"id": f"call_{i}_{uuid.uuid4().hex[:8]}", "type": "function",
                      "function": {"name": c["name"], "arguments": args if isinstance(args, str) else json.dumps(args)}})
    return {"role": "assistant", "content": spec.get("content"), "tool_calls": calls}


def _completion_body(cfg: Config, model: str, messages: list[dict[str, Any]], reply: str) -> dict[str, Any]:
    tool_msg = _tool_message(reply)
    body: dict[str, Any] = {
        "id": f"chatcmpl-fake-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": cfg.resolved_model or model,
        "system_fingerprint": "fp_fakeserver",
        "choices": [
            {
                "index": 0,
                "message": tool_msg or {"role": "assistant", "content": reply},
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_msg else "stop",
            }
        ],
    }
    if not cfg.no_usage:
        prompt = sum(count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict))
        completion = count_tokens(reply)
        body["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return body


def _embeddings_body(cfg: Config, model: str, messages: list[dict[str, Any]], empty: bool) -> dict[str, Any]:
    texts = [message_text(m.get("content")) for m in messages]
    body: dict[str, Any] = {
        "object": "list",
        "model": cfg.resolved_model or model,
        "data": [] if empty else [
            {"object": "embedding", "index": i, "embedding": embedding_vector(t, cfg.embedding_dim)}
            for i, t in enumerate(texts)
        ],
    }
    if not cfg.no_usage:
        n = sum(count_tokens(t) for t in texts)
        body["usage"] = {"prompt_tokens": n, "total_tokens": n}
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr: tuple[str, int], state: _State) -> None:
        self.state = state
        self.open_conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping its keep-alive connection with a reset (aiohttp aborts idle connections when a run
        is torn down) while we wait for its next request is normal, not a server fault: say nothing. Anything
        else is printed as socketserver prints it."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.open_conns.add(request)
        with self.state.lock:
            self.state.handlers_alive += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handler_done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._handler_done()

    def _handler_done(self) -> None:
        with self.state.lock:
            self.state.handlers_alive -= 1
            self.state.idle.notify_all()

    def wait_handlers(self, timeout: float) -> bool:
        """Wait until every connection-handler thread has returned; False if some are still alive."""
        with self.state.lock:
            return self.state.idle.wait_for(lambda: self.state.handlers_alive == 0, timeout)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.open_conns.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self.conns_lock:
            conns = list(self.open_conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    _on_reply: Any = None  # while a completion is being served: marks it no longer in flight (see `_replying`)
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid the 40 ms delayed-ACK stall
    server: _Server
    server_version = "fakeserver/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing
    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(obj).encode("utf-8"), headers)

    def _replying(self) -> None:
        """The request being answered stops counting as in flight *before* its reply is written: once a client
        has the reply it may send its next request at once, and that one must not be counted beside this one
        (the counts would then exceed the client's real limit by a race between our threads)."""
        leave, self._on_reply = self._on_reply, None
        if leave is not None:
            leave()

    def _send_bytes(
        self, status: int, data: bytes, headers: dict[str, str] | None = None, ctype: str = "application/json"
    ) -> None:
        self._replying()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _sent_key(self) -> str:
        """The API key of this request: ``Authorization: Bearer KEY``, ``api-key`` or ``x-api-key``."""
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[len("bearer "):].strip()
        return self.headers.get("api-key") or self.headers.get("x-api-key") or auth

    def _reset_connection(self) -> None:
        """Close the socket with SO_LINGER 0 so the peer sees a TCP RST and no response."""
        self._replying()
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            conn.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    # -- routes
    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(200, {"ok": True})
        elif path == "/stats":
            self._send_json(200, state.stats())
        elif path == "/requests":
            with state.lock:
                recs = [r.to_json() for r in state.records]
            self._send_json(200, recs)
        elif path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": []})
        elif path.startswith(("/v1/files/", "/v1/batches")):
            self._batches_get(path)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if path == "/reset":
            state.reset()
            self._send_json(200, {"ok": True})
            return
        if path == "/config":
            try:
                state.set_config(json.loads(raw or b"{}"))
            except ValueError as exc:
                self._send_json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                return
            self._send_json(200, {"ok": True})
            return
        if path in ("/v1/embeddings", "/embeddings"):
            try:
                body = json.loads(raw)
                inputs = body.get("input") if isinstance(body, dict) else None
                if isinstance(inputs, str):
                    inputs = [inputs]
                if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
                    raise ValueError("body must be a JSON object whose 'input' is a string or a list of strings")
            except ValueError as exc:
                self._send_json(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})
                return
            messages = [{"role": "user", "content": t} for t in inputs]
            self._complete(state, path, {"model": body.get("model", ""), "messages": messages}, embed=True)
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            self._batches_post(path, raw)
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body must be a JSON object with a 'messages' list")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})
            return
        if body.get("stream"):
            self._send_json(400, {"error": {"message": "fakeserver does not stream", "type": "invalid_request_error"}})
            return
        self._complete(state, path, body)

    def _not_found(self, what: str) -> None:
        self._send_json(404, {"error": {"message": f"No such {what}", "type": "invalid_request_error"}})

    def _batches_get(self, path: str) -> None:
        api = _Batches(self.server.state)
        parts = path.split("/")[2:]  # ["files", ID, "content"?] or ["batches", ID?]
        if parts[0] == "files" and len(parts) in (2, 3):
            f = api.file(parts[1], content=len(parts) == 3)
            if f is None:
                self._not_found(f"file: {parts[1]}")
            elif len(parts) == 3 and parts[2] == "content":
                self._send_bytes(200, f[1], ctype="application/octet-stream")
            else:
                self._send_json(200, f[0])
        elif parts == ["batches"]:
            self._send_json(200, api.list())
        elif parts[0] == "batches" and len(parts) == 2:
            b = api.retrieve(parts[1])
            self._send_json(200, b) if b is not None else self._not_found(f"batch: {parts[1]}")
        else:
            self._not_found(f"route {path}")

    def _batches_post(self, path: str, raw: bytes) -> None:
        api = _Batches(self.server.state)
        parts = path.split("/")[2:]
        if parts == ["files"]:
            ctype = self.headers.get("Content-Type") or ""
            fields = _multipart(ctype, raw) if ctype.startswith("multipart/") else {}
            if "file" not in fields:
                self._send_json(400, {"error": {"message": "multipart field 'file' is required",
                                                "type": "invalid_request_error"}})
                return
            purpose = fields.get("purpose", (None, b"batch"))[1].decode()
            self._send_json(200, api.add_file(fields["file"][1], purpose, fields["file"][0] or "upload.jsonl"))
        elif parts == ["batches"]:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self._send_json(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request_error"}})
                return
            status, obj = api.create(body)
            self._send_json(status, obj)
        elif len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
            b = api.cancel(parts[1])
            self._send_json(200, b) if b is not None else self._not_found(f"batch: {parts[1]}")
        else:
            self._not_found(f"route {path}")

    def _complete(self, state: _State, path: str, body: dict[str, Any], embed: bool = False) -> None:
        model = str(body.get("model", ""))
        state.enter(model)
        self._on_reply = lambda: state.leave(model)  # called by `_replying`, or below if no reply was sent
        try:
            self._complete_inner(state, path, body, embed)
        finally:
            self._replying()

    def _complete_inner(self, state: _State, path: str, body: dict[str, Any], embed: bool = False) -> None:
        rec, cfg, fault = state.admit(path, body, self.client_address[1])
        rec.api_key = self._sent_key() or None
        state.pass_gate(cfg)
        kind = fault.kind if fault else None
        if kind == "timeout":
            state.finish(rec, "timeout", None)
            state.stopping.wait(cfg.timeout_sleep_s)
            self._reset_connection()
            return
        delay = cfg.latency_ms / 1000.0
        if cfg.latency_jitter_ms > 0:
            delay += random.uniform(0.0, cfg.latency_jitter_ms / 1000.0)
        if delay > 0 and state.stopping.wait(delay):
            state.finish(rec, "reset", None)
            self._reset_connection()
            return
        try:
            if kind == "reset":
                state.finish(rec, "reset", None)
                self._reset_connection()
            elif kind == "401":
                state.finish(rec, "401", 401)
                self._send_json(401, {"error": {"message": f"Incorrect API key provided: {self._sent_key()}. You can "
                                                           "find your API key in your account settings.",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "invalid_api_key"}})
            elif kind in _HTTP_ERROR_KINDS:
                assert fault is not None
                message, code = _ERROR_TEXT[kind]
                headers = {}
                if fault.retry_after is not None:
                    ra = fault.retry_after
                    headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
                state.finish(rec, kind, int(kind))
                err_type = "requests" if kind == "429" else "server_error"
                self._send_json(
                    int(kind), {"error": {"message": message, "type": err_type, "param": None, "code": code}}, headers
                )
            elif kind == "malformed":
                state.finish(rec, "malformed", 200)
                self._send_bytes(200, b"<html><body>upstream proxy error: not JSON {</body></html>")
            else:
                model = str(body.get("model", ""))
                messages = body["messages"]
                if embed:
                    reply = f"{0 if kind == 'empty' else len(messages)} embeddings"
                    data = json.dumps(_embeddings_body(cfg, model, messages, kind == "empty")).encode("utf-8")
                else:
                    reply = "" if kind == "empty" else _reply_for(cfg, model, messages, rec.occurrence)
                    data = json.dumps(_completion_body(cfg, model, messages, reply)).encode("utf-8")
                if kind == "truncated":
                    state.finish(rec, "truncated", 200)
                    self._send_bytes(200, data[: len(data) // 2])
                else:
                    state.finish(rec, kind or "ok", 200, reply)
                    self._send_bytes(200, data)
        except OSError:
            # the client went away (killed, timed out) before we could answer
            if rec.outcome in COMPLETED_OUTCOMES:
                state.finish(rec, "client_gone", None)
            self.close_connection = True


# --------------------------------------------------------------------------- public API


class FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 running in a background thread.

    ``url`` is the OpenAI base URL (ending in ``/v1``) to pass as ``api_base``. Use as a
    context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(self, config: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State(config)
        self._host, self._port = host, port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeServer:
        if self._httpd is not None:
            return self
        self._state.stopping.clear()
        self._httpd = _Server((self._host, self._port), self._state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fakeserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, wait_s: float = 5.0) -> bool:
        """Stop promptly: wake sleeping handlers (latency, "timeout" faults) and close all connections.

        Returns True when the accept loop and every handler thread have finished within ``wait_s``.
        """
        httpd = self._httpd
        if httpd is None:
            return True
        self._state.stopping.set()
        httpd.shutdown()
        httpd.close_all_connections()
        httpd.server_close()
        clean = httpd.wait_handlers(wait_s)
        if self._thread is not None:
            self._thread.join(timeout=wait_s)
            clean = clean and not self._thread.is_alive()
        self._httpd = None
        self._thread = None
        return clean

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``), for /stats, /health, ..."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI API base: ``http://127.0.0.1:PORT/v1``."""
        return self.base_url + "/v1"

    # control and inspection
    def set_config(self, config: dict[str, Any] | None) -> None:
        """Replace the config (validated; raises ValueError). Fault counters restart."""
        self._state.set_config(config)

    def reset(self) -> None:
        """Forget all recorded requests and fault counters."""
        self._state.reset()

    def stats(self) -> dict[str, Any]:
        """Counters: total, completed, by_model, by_prompt_key, completed_by_prompt_key, by_outcome, by_status,
        batch_calls (files and batches API calls by kind) and batches (id -> status). Batch lines that ran
        are requests on path ``/v1/batches``, counted like the others."""
        return self._state.stats()

    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._state.lock:
            return list(self._state.records)


def http_json(url: str, payload: Any | None = None, timeout: float = 10.0) -> Any:
    """GET (payload None) or POST JSON to a fakeserver control endpoint; for servers in another process."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="OpenAI-compatible fake server for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", type=Path, help="JSON config file")
    ap.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = ap.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
    srv = FakeServer(config, host=args.host, port=args.port).start()
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(str(srv.port), encoding="utf-8")
        os.replace(tmp, args.port_file)
    print(f"fakeserver listening on {srv.url}", file=sys.stderr, flush=True)
    while not done.wait(0.2):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
