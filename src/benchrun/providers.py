"""The provider gateway: the only module that talks to models.

Two transports behind one interface (`complete` for chat, `embed` for embeddings):

* ``openai``: OpenAI-compatible servers over one shared aiohttp session (`benchrun.openai_http`):
  ``openai/...`` models, models with an ``api_base`` (vLLM, Ollama's /v1, llama.cpp, TGI, LM
  Studio, OpenRouter, ...) and the embedded local model;
* ``litellm``: everything else (Anthropic, Vertex, Bedrock, Azure, Cohere, ...). litellm is
  imported only when a model uses it (importing it takes seconds).

A spec's ``transport: litellm | openai`` forces either for one model. Both share what
follows. tenacity owns retries — litellm's own retries and the OpenAI SDK's are switched off —
with exponential backoff and jitter that honours ``Retry-After`` on 429 and retries 5xx,
timeouts, connection faults and bodies that are not a completion; faults are described the
same way whichever transport met them. Tokens come from the provider, or are counted with
tiktoken and flagged as estimated. Cost comes from the spec's per-model prices, or litellm's
price map (read as data on the fast path, `benchrun.prices`), or is unknown (``None``) — never
silently zero.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchrun import openai_http
from benchrun.errors import BadInput
from benchrun.spec import ModelRef, Price, Retries

_LITELLM_READY = False
T = TypeVar("T")


def setup_litellm() -> Any:
    """Import litellm configured for offline, quiet use (no cost-map download, no logs)."""
    global _LITELLM_READY
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    _point_tiktoken_at_bundled_encodings()
    import litellm

    if not _LITELLM_READY:
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True  # a provider that lacks e.g. `seed` ignores it instead of failing
        _LITELLM_READY = True
    return litellm


def _point_tiktoken_at_bundled_encodings() -> None:
    """tiktoken downloads its encodings by default; litellm ships the common ones."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        d = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        if d.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(d)


# ----------------------------------------------------------------------------- secrets


class Secrets:
    """Values that must never be printed or stored; `redact` removes them from any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and len(value) >= 8:  # shorter values are not keys; redacting them ("true", "1") would garble text
            self._values.add(value)

    def redact_values(self, text: str) -> str:
        """``text`` without the registered values (for model answers, where the generic patterns of `redact`
        would garble ordinary text)."""
        for v in sorted(self._values, key=len, reverse=True):
            if v in text:
                text = text.replace(v, "***")
        return text

    def redact(self, text: str | None) -> str | None:
        if text is None:
            return None
        for v in sorted(self._values, key=len, reverse=True):
            text = text.replace(v, "***")
        # generic bearer / sk- style keys that reached us from elsewhere
        text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}", r"\1***", text)
        text = re.sub(r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-***", text)
        return text


SECRETS = Secrets()


def collect_env_secrets() -> None:
    """Register every environment value whose name looks like a credential.

    ``*_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``, ``PGPASSWORD``, ``*_CREDENTIALS``, ... Keys
    read through a spec's ``api_key_env`` are registered when read, whatever the variable's name.
    """
    for name, value in os.environ.items():
        if re.search(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", name, re.IGNORECASE):
            SECRETS.add(value)


# ----------------------------------------------------------------------------- endpoints


LOCAL_PREFIX = "local/"  # the embedded default model, served by benchrun.local_model


@dataclass(frozen=True)
class Endpoint:
    """How to reach one model, with the key kept out of reprs."""

    model: str  # model string actually called (litellm's form: ``openai/NAME``, ``anthropic/NAME``, ...)
    api_base: str | None
    api_key: str | None = field(repr=False)
    local: bool = False
    local_server: Any = field(default=None, repr=False, compare=False)  # local_model.LocalEndpoint when local
    transport: str = "litellm"  # "openai" (aiohttp, benchrun.openai_http) or "litellm"


def transport_for(ref: ModelRef) -> str:
    """Which transport calls this model: the spec's ``transport``, else ``openai`` for what speaks the OpenAI API.

    That is ``openai/...`` models, the embedded local model, and models with an ``api_base`` unless their
    prefix names a litellm provider with its own API (``ollama/``, ``anthropic/``, ...; ``ollama`` servers
    also speak OpenAI's API under ``/v1``: use ``openai/NAME`` with ``api_base: http://HOST:11434/v1``).
    """
    if ref.transport is not None:
        return ref.transport
    if is_local(ref) or ref.model.startswith("openai/"):
        return "openai"
    if ref.api_base and ("/" not in ref.model or ref.model.startswith(openai_http.OPENAI_PREFIXES)):
        return "openai"
    return "litellm"


def uses_litellm(endpoints: Iterable[Endpoint]) -> bool:
    return any(ep.transport == "litellm" for ep in endpoints)


def is_local(ref: ModelRef) -> bool:
    """Is this the embedded local model (served by benchrun.local_model)?"""
    return ref.model.startswith(LOCAL_PREFIX) and ref.api_base is None


def resolve(ref: ModelRef, where: str = "spec") -> Endpoint:
    """Turn a spec's model reference into an endpoint (starting the local model if needed)."""
    if is_local(ref):
        from benchrun import local_model

        ep = local_model.ensure_server(ref.model)
        return Endpoint(ep.litellm_model, ep.api_base, ep.api_key, local=True, local_server=ep,
                        transport=transport_for(ref))
    key: str | None = None
    if ref.api_key_env:
        from benchrun.credentials import check_key_env_name

        check_key_env_name(ref, where, ref.key)  # before reading it: HOME or GITHUB_TOKEN is no model key
        key = os.environ.get(ref.api_key_env)
        if not key:
            raise BadInput(where, f"model {ref.key}", f"environment variable {ref.api_key_env} is not set; export it")
        SECRETS.add(key)
    elif ref.api_base:
        key = "not-needed"  # OpenAI-compatible local servers still require some key
    return Endpoint(ref.model, ref.api_base, key, transport=transport_for(ref))


# ----------------------------------------------------------------------------- tokens and cost


def count_tokens(text: str) -> int:
    """Token count with tiktoken's cl100k_base (an estimate for non-OpenAI models)."""
    _point_tiktoken_at_bundled_encodings()
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    return len(enc.encode(text, disallowed_special=()))


def count_message_tokens(messages: Iterable[dict[str, Any]]) -> int:
    # 4 tokens of framing per message, +3 for the reply priming (OpenAI cookbook convention)
    return sum(count_tokens(str(m.get("content", ""))) + 4 for m in messages) + 3


def cost_of(ref: ModelRef, endpoint: Endpoint, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD cost of one call, or None when neither the spec nor litellm knows the model's price."""
    if ref.price is not None:
        return price_cost(ref.price, prompt_tokens, completion_tokens)
    if endpoint.local:
        return 0.0
    if endpoint.transport == "openai":  # the same map litellm prices from, read as data (benchrun.prices)
        from benchrun import prices

        return prices.cost(endpoint.model, prompt_tokens, completion_tokens)
    litellm = setup_litellm()
    try:
        p, c = litellm.cost_per_token(
            model=endpoint.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:
        return None
    return float(p) + float(c)


def price_cost(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1_000_000


def worst_case_cost(ref: ModelRef, endpoint: Endpoint, prompt_tokens: int, max_tokens: int) -> float | None:
    return cost_of(ref, endpoint, prompt_tokens, max_tokens)


# ----------------------------------------------------------------------------- calls


@dataclass
class CallResult:
    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = None
    latency_ms: float | None = None
    retries: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    resolved_model: str | None = None
    cached: bool = False
    tool_calls: list[dict[str, Any]] | None = None  # as the provider sent them (OpenAI's shape)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_cache(self) -> dict[str, Any]:
        d = {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_estimated": self.tokens_estimated,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "resolved_model": self.resolved_model,
        }
        if self.tool_calls is not None:
            d["tool_calls"] = self.tool_calls
        return d

    def with_secrets_redacted(self) -> CallResult:
        """This result with registered secret values removed from the answer (`Secrets.redact_values`)."""
        if self.text is None:
            return self
        clean = SECRETS.redact_values(self.text)
        calls = self.tool_calls
        if calls is not None:
            import json

            dumped = json.dumps(calls)
            redacted = SECRETS.redact_values(dumped)
            calls = json.loads(redacted) if redacted != dumped else calls
        if clean == self.text and calls is self.tool_calls:
            return self
        return dataclasses.replace(self, text=clean, tool_calls=calls)

    @classmethod
    def from_cache(cls, d: dict[str, Any]) -> CallResult:
        r = cls(**d)
        r.cached = True
        return r


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmptyResponse(Exception):
    pass


def _retry_after_seconds(exc: BaseException) -> float | None:
    """Read ``Retry-After`` (seconds or HTTP date) from a transport's exception, if any."""
    headers: Any = None
    for attr in ("headers", "litellm_response_headers", "response"):
        obj = getattr(exc, attr, None)
        if obj is None:
            continue
        headers = getattr(obj, "headers", obj) if attr == "response" else obj
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
        except Exception:
            value = None
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                from email.utils import parsedate_to_datetime

                try:
                    when = parsedate_to_datetime(value)
                    return max(0.0, when.timestamp() - time.time())
                except (TypeError, ValueError):
                    return None
    return None


# litellm wraps the provider's message: "litellm.RateLimitError: RateLimitError: OpenAIException - <message>",
# "litellm.Timeout: APITimeoutError - Request timed out. Error_str: Request timed out. - timeout value=1.0, time
# taken=1.01 seconds"
_LITELLM_WRAPPER = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+:\s*)?(?:\w*(?:Exception|Error)\s+-\s+)?")
_LITELLM_TIMEOUT_TAIL = re.compile(r"\s*(?:Error_str:.*?)?(?:\s*-\s*timeout value=.*)?$", re.DOTALL)


def _fault(exc: BaseException) -> tuple[str, str]:
    """The fault's kind and own message, without a transport's wrapping, so both transports describe it alike."""
    name = type(exc).__name__
    if isinstance(exc, openai_http.ProviderError):
        return name, exc.message
    text = str(exc)
    if type(exc).__module__.startswith("litellm"):
        text = _LITELLM_WRAPPER.sub("", text, count=1)
        if name == "Timeout":
            text = _LITELLM_TIMEOUT_TAIL.sub("", text, count=1)  # the time taken is a timing, not the fault
        elif name == "InternalServerError" and text.startswith("Connection error"):
            name = "APIConnectionError"  # litellm's name for a refused or reset connection is a server error's
    return name, text


def classify(exc: BaseException) -> tuple[bool, str]:
    """Is this fault worth retrying, and a short description of it (``Kind: message``, the same per transport)."""
    name, msg = _fault(exc)
    status = getattr(exc, "status_code", None)
    msg = SECRETS.redact(msg) or ""
    msg = " ".join(msg.split())[:300]
    if isinstance(exc, openai_http.ProviderError):
        return exc.retryable, f"{name}: {msg}"
    retryable_types: tuple[type[BaseException], ...] = (asyncio.TimeoutError, EmptyResponse)
    litellm = sys.modules.get("litellm")  # an exception can only be litellm's once litellm was imported
    if litellm is not None:
        retryable_types += (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
        )
    if isinstance(exc, retryable_types):
        return True, f"{name}: {msg}"
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True, f"{name} ({status}): {msg}"
    # Note: litellm reports connection resets and malformed or truncated bodies as InternalServerError
    # (status 500, no response headers), so they are retried above; auth and bad-request errors are not.
    return False, f"{name}: {msg}"


async def warm_up(endpoints: Iterable[Endpoint] | None = None) -> None:
    """Load litellm's lazily imported call path once, so the first real call's latency is not inflated.

    Only when some endpoint uses litellm (``None``: warm it up regardless).
    """
    if endpoints is not None and not uses_litellm(endpoints):
        return
    litellm = setup_litellm()
    await litellm.acompletion(model="openai/warm-up", messages=[{"role": "user", "content": "hi"}], mock_response="ok")


async def close() -> None:
    """Close the fast transport's pooled connections (at the end of the event loop that used them)."""
    await openai_http.aclose()


def _from_litellm(resp: Any) -> openai_http.Completion:
    choice = resp.choices[0] if resp.choices else None
    msg = getattr(choice, "message", None)
    usage = getattr(resp, "usage", None)
    tool_calls = getattr(msg, "tool_calls", None)
    return openai_http.Completion(
        text=getattr(msg, "content", None),
        prompt_tokens=getattr(usage, "prompt_tokens", None) if usage else None,
        completion_tokens=getattr(usage, "completion_tokens", None) if usage else None,
        model=getattr(resp, "model", None),
        finish_reason=getattr(choice, "finish_reason", None),
        tool_calls=[t.model_dump() if hasattr(t, "model_dump") else dict(t) for t in tool_calls] if tool_calls else None,
    )


async def _attempt(endpoint: Endpoint, messages: list[dict[str, Any]], params: dict[str, Any],
                   timeout_s: float) -> openai_http.Completion:
    """One call through the endpoint's transport; raises on any fault."""
    if endpoint.transport == "openai":
        return await openai_http.attempt(endpoint.model, endpoint.api_base, endpoint.api_key, messages, params,
                                         timeout_s)
    litellm = setup_litellm()
    kwargs: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "timeout": timeout_s,
        "num_retries": 0,
        "max_retries": 0,
        **params,
    }
    if endpoint.api_base:
        kwargs["api_base"] = endpoint.api_base
    if endpoint.api_key:
        kwargs["api_key"] = endpoint.api_key
    async with asyncio.timeout(timeout_s + 5):  # a backstop should litellm's own timeout not fire
        resp = await litellm.acompletion(**kwargs)
    return _from_litellm(resp)


async def complete(
    ref: ModelRef,
    endpoint: Endpoint,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    timeout_s: float,
    retries: Retries,
) -> CallResult:
    """One chat completion with retries; never raises for provider faults (returns ``error``)."""
    async def one() -> openai_http.Completion:
        resp = await _attempt(endpoint, messages, params, timeout_s)
        if not resp.tool_calls and (resp.text is None or not str(resp.text).strip()):  # tool calls may carry no text
            raise EmptyResponse("the provider returned an empty answer")
        return resp

    attempts: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        resp, last_latency = await _retried(one, retries, attempts)
    except Exception as exc:
        return CallResult(text=None, **_failure(exc, attempts, started))
    text = resp.text if resp.text is not None else ""  # None only for an answer made of tool calls

    pt, ct = resp.prompt_tokens, resp.completion_tokens
    estimated = False
    if not pt or ct is None:  # litellm reports 0/0 when the provider sent no usage
        pt = count_message_tokens(messages)
        ct = count_tokens(str(text))
        estimated = True
    return CallResult(
        text=str(text),
        prompt_tokens=int(pt),
        completion_tokens=int(ct),
        tokens_estimated=estimated,
        cost_usd=cost_of(ref, endpoint, int(pt), int(ct)),
        latency_ms=round(last_latency, 2),
        retries=len(attempts),
        attempts=attempts,
        resolved_model=resp.model,
        tool_calls=resp.tool_calls,
    )


def _retrying(retries: Retries, attempts: list[dict[str, Any]]) -> Any:
    """The retry policy every call shares (tenacity): jittered exponential backoff that honours ``Retry-After``,
    retrying what `classify` calls retryable; each failed attempt is appended to ``attempts``."""
    from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        n = state.attempt_number
        backoff = min(retries.backoff_max_s, retries.backoff_base_s * (2 ** (n - 1)))
        wait = random.uniform(0, backoff) + backoff / 2  # jittered exponential
        ra = _retry_after_seconds(exc) if exc else None
        if ra is not None:
            wait = min(max(ra, 0.0), max(retries.backoff_max_s, ra if ra <= 120 else 120))
        if attempts:
            attempts[-1]["wait_s"] = round(wait, 3)
        return wait

    def _should_retry(exc: BaseException) -> bool:
        retry, desc = classify(exc)
        attempts.append({"error": desc, "retryable": retry})
        return retry

    return AsyncRetrying(
        stop=stop_after_attempt(retries.attempts), wait=_wait, retry=retry_if_exception(_should_retry), reraise=True
    )


async def _retried(call: Callable[[], Awaitable[T]], retries: Retries,
                   attempts: list[dict[str, Any]]) -> tuple[T, float]:
    """``call()`` under `_retrying`: its result and the milliseconds of the attempt that succeeded; raises the
    last fault when every attempt failed.

    The first attempt is made before tenacity is entered (setting up its iteration costs about as much CPU as
    the HTTP request itself, and most calls succeed at once); if it fails, tenacity starts from that fault as
    its own first attempt, so the records, waits and number of attempts are those of the policy alone."""
    t0 = time.perf_counter()
    try:
        result = await call()
    except Exception as exc:
        first: list[BaseException] = [exc]
    else:
        return result, (time.perf_counter() - t0) * 1000

    async def again() -> T:
        if first:
            raise first.pop()
        return await call()

    async for attempt in _retrying(retries, attempts):
        with attempt:
            t0 = time.perf_counter()
            result = await again()
            latency = (time.perf_counter() - t0) * 1000
    return result, latency


def _failure(exc: BaseException, attempts: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """The fields of a call that failed for good: its last fault, the attempts, the time spent."""
    retry, desc = classify(exc)
    if not attempts or attempts[-1]["error"] != desc:
        attempts.append({"error": desc, "retryable": retry})
    return {
        "latency_ms": (time.perf_counter() - started) * 1000,
        "retries": len(attempts) - 1,
        "attempts": attempts,
        "error": desc if not retry else f"gave up after {len(attempts)} attempts: {desc}",
    }


# ----------------------------------------------------------------------------- embeddings


@dataclass
class EmbedResult:
    """One embeddings call (a batch of texts) after retries: vectors in input order, or ``error``."""

    vectors: list[list[float]] | None
    prompt_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = None
    latency_ms: float | None = None
    retries: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    resolved_model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.vectors is not None


async def _embed_attempt(endpoint: Endpoint, texts: list[str], params: dict[str, Any],
                         timeout_s: float) -> openai_http.Embeddings:
    if endpoint.transport == "openai":
        return await openai_http.embed_attempt(endpoint.model, endpoint.api_base, endpoint.api_key, texts, params,
                                               timeout_s)
    litellm = setup_litellm()
    kwargs: dict[str, Any] = {"model": endpoint.model, "input": texts, "timeout": timeout_s, "num_retries": 0,
                              "max_retries": 0, **params}
    if endpoint.api_base:
        kwargs["api_base"] = endpoint.api_base
    if endpoint.api_key:
        kwargs["api_key"] = endpoint.api_key
    # Note: litellm's OpenAI/Azure embedding path reads max_retries=0 as unset (`max_retries or DEFAULT_MAX_RETRIES`)
    # and sets it on any client passed in, so the OpenAI SDK retries a 429/5xx up to twice inside one of our
    # attempts, uncounted; the openai transport (the default for openai/ models) has no such hidden retries.
    async with asyncio.timeout(timeout_s + 5):
        resp = await litellm.aembedding(**kwargs)
    data = resp.model_dump() if hasattr(resp, "model_dump") else dict(resp)
    return openai_http.parse_embeddings(data, len(texts))


async def embed(
    ref: ModelRef,
    endpoint: Endpoint,
    texts: list[str],
    params: dict[str, Any],
    timeout_s: float,
    retries: Retries,
) -> EmbedResult:
    """Embed one batch of texts with the retry policy of `complete`; never raises for provider faults.

    Cost is priced as a call whose prompt is the texts and whose completion is empty (the spec's
    price, else litellm's price map, else unknown); tokens are the provider's or tiktoken's estimate.
    """
    attempts: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        resp, last_latency = await _retried(lambda: _embed_attempt(endpoint, texts, params, timeout_s), retries,
                                            attempts)
    except Exception as exc:
        return EmbedResult(vectors=None, **_failure(exc, attempts, started))
    pt = resp.prompt_tokens
    estimated = pt is None
    if pt is None:
        pt = sum(count_tokens(t) for t in texts)
    return EmbedResult(
        vectors=resp.vectors,
        prompt_tokens=int(pt),
        tokens_estimated=estimated,
        cost_usd=cost_of(ref, endpoint, int(pt), 0),
        latency_ms=round(last_latency, 2),
        retries=len(attempts),
        attempts=attempts,
        resolved_model=resp.model,
    )


# ----------------------------------------------------------------------------- provider batch APIs (benchrun.batch)


def _batch_kwargs(endpoint: Endpoint) -> dict[str, Any]:
    """Where litellm sends the batch calls: the provider named by the model string, the endpoint's base and key."""
    model = endpoint.model
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    if provider in ("hosted_vllm", "lm_studio", "llamafile") or endpoint.transport == "openai":
        provider = "openai"  # OpenAI-compatible servers speak OpenAI's files and batches API
    kw: dict[str, Any] = {"custom_llm_provider": provider}
    if endpoint.api_base:
        kw["api_base"] = endpoint.api_base
    if endpoint.api_key:
        kw["api_key"] = endpoint.api_key
    return kw


async def batch_upload(endpoint: Endpoint, filename: str, content: bytes) -> Any:
    """Upload a batch input file (JSON Lines) through litellm's files API; returns litellm's file object."""
    litellm = setup_litellm()
    return await litellm.acreate_file(file=(filename, content), purpose="batch", **_batch_kwargs(endpoint))


async def batch_create(endpoint: Endpoint, input_file_id: str, completion_window: str, api_endpoint: str,
                       metadata: dict[str, str]) -> Any:
    """Create a batch of an uploaded file. Never retried here (``max_retries=0``): a blind retry after a
    timeout could create a second batch; `benchrun.batch` looks for the first by its metadata token instead."""
    litellm = setup_litellm()
    return await litellm.acreate_batch(completion_window=completion_window, endpoint=api_endpoint,
                                       input_file_id=input_file_id, metadata=metadata, max_retries=0,
                                       **_batch_kwargs(endpoint))


async def batch_list(endpoint: Endpoint, after: str | None, limit: int = 100) -> Any:
    """One page of the provider's batches, newest first (``after``: the last id of the previous page)."""
    litellm = setup_litellm()
    return await litellm.alist_batches(limit=limit, after=after, **_batch_kwargs(endpoint))


async def batch_retrieve(endpoint: Endpoint, batch_id: str) -> Any:
    """The provider's batch object (status, request counts, output and error file ids)."""
    litellm = setup_litellm()
    return await litellm.aretrieve_batch(batch_id=batch_id, **_batch_kwargs(endpoint))


async def batch_file_content(endpoint: Endpoint, file_id: str) -> Any:
    """A batch output or error file (``.content``: its bytes)."""
    litellm = setup_litellm()
    return await litellm.afile_content(file_id=file_id, **_batch_kwargs(endpoint))
