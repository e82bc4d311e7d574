"""The OpenAI-compatible transport: chat completions over one shared ``httpx.AsyncClient``.

Most models teams evaluate speak the OpenAI chat API (OpenAI itself, vLLM, Ollama's ``/v1``,
llama.cpp, TGI, LM Studio, OpenRouter, Together, Groq, Fireworks, our embedded local model).
Calling them directly costs about a quarter of the CPU of a litellm call and avoids importing
litellm (seconds of start-up). `benchrun.providers` picks this transport or litellm per model
and owns what both share: the tenacity retry policy, ``Retry-After``, the classification of
faults into retryable and fatal, token estimates and cost.

One attempt is one POST to ``{api_base}/chat/completions`` (or ``/embeddings`` for embedding models). Faults are raised as the
exceptions below, named and classified as litellm names and classifies the same faults from the
same server (status 429 → ``RateLimitError``, 5xx, timeouts, connection faults and bodies that
are not a chat completion → retryable; 4xx → fatal), so a run's ledger reads the same whichever
transport made its calls (``tests/test_transports.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_BASE = "https://api.openai.com/v1"
# Model-string prefixes (litellm's provider names) whose servers speak the OpenAI chat API; the prefix is
# not sent. A model with another prefix (anthropic/, vertex_ai/, ollama/ native, ...) goes through litellm.
OPENAI_PREFIXES = ("openai/", "hosted_vllm/", "lm_studio/", "llamafile/")
MAX_BODY_BYTES = 64 * 1024 * 1024  # a response larger than this is refused, not parsed


# ----------------------------------------------------------------------------- faults


class ProviderError(Exception):
    """A failed attempt. ``retryable`` says whether the same request may succeed later."""

    retryable = False

    def __init__(self, message: str, status_code: int | None = None, headers: httpx.Headers | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.headers = headers


class BadRequestError(ProviderError):
    pass


class AuthenticationError(ProviderError):
    pass


class PermissionDeniedError(ProviderError):
    pass


class NotFoundError(ProviderError):
    pass


class UnprocessableEntityError(ProviderError):
    pass


class APIError(ProviderError):
    pass


class RateLimitError(ProviderError):
    retryable = True


class InternalServerError(ProviderError):
    retryable = True


class BadGatewayError(ProviderError):
    retryable = True


class ServiceUnavailableError(ProviderError):
    retryable = True


class Timeout(ProviderError):  # litellm's name for the same fault
    retryable = True


class APIConnectionError(ProviderError):
    retryable = True


_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    408: Timeout, 422: UnprocessableEntityError, 429: RateLimitError,
    500: InternalServerError, 502: BadGatewayError, 503: ServiceUnavailableError,
}


def error_for_status(status: int, message: str, headers: httpx.Headers | None) -> ProviderError:
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIError)
    return cls(message, status_code=status, headers=headers)


def _error_message(body: bytes, status: int) -> str:
    """The provider's own error message (``{"error": {"message": ...}}``), or the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return data["message"]
        if isinstance(data.get("detail"), str):
            return data["detail"]
    text = body[:300].decode("utf-8", "replace").strip()
    return text or f"HTTP {status}"


# ----------------------------------------------------------------------------- the client

# Calls are spread over a few clients, each with its own pool of keep-alive connections: httpcore's pool
# scans all its connections and waiting requests on every request, so one pool's CPU per call grows with
# the calls in flight (measured against the test server at 128 in flight: 12 ms per call with one
# client, 2 ms with 8; docs/performance.md).
SHARDS = 16

_clients: list[httpx.AsyncClient] = []
_client_loop: asyncio.AbstractEventLoop | None = None
_next = itertools.count()
_ssl: Any = None


def _new_client() -> httpx.AsyncClient:
    global _ssl
    if _ssl is None:  # one TLS context for every client (building one loads the CA bundle: milliseconds)
        _ssl = httpx.create_ssl_context()
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=60),
        timeout=httpx.Timeout(600.0),  # each request sets its own, below
        verify=_ssl,
        trust_env=True,
        follow_redirects=False,
    )


def client() -> httpx.AsyncClient:
    """One of the running event loop's shared clients, in turn (pooled keep-alive connections)."""
    global _client_loop
    loop = asyncio.get_running_loop()
    if _client_loop is not loop:
        # A new event loop (each asyncio.run) needs its own clients: connections belong to the loop that opened them.
        _clients.clear()
        _client_loop = loop
    i = next(_next) % SHARDS
    while len(_clients) <= i:
        _clients.append(_new_client())
    if _clients[i].is_closed:
        _clients[i] = _new_client()
    return _clients[i]


async def aclose() -> None:
    """Close the shared clients of the running loop (at the end of a run)."""
    global _client_loop
    clients = list(_clients) if _client_loop is asyncio.get_running_loop() else []
    _clients.clear()
    _client_loop = None
    for c in clients:
        if not c.is_closed:
            await c.aclose()


# ----------------------------------------------------------------------------- one attempt


@dataclass
class Completion:
    """What the gateway needs from one chat completion, whichever transport made it."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str | None
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


def wire_model(model: str) -> str:
    """The model name the server expects: the litellm-style provider prefix removed."""
    for p in OPENAI_PREFIXES:
        if model.startswith(p):
            return model[len(p):]
    return model


def base_url(api_base: str | None) -> str:
    base = api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or DEFAULT_BASE
    return base.rstrip("/")


def parse_completion(data: Any) -> Completion:
    """Read a chat-completion body; anything else is a retryable fault (a proxy's error page, a cut-off body)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise InternalServerError("the response is not a chat completion (no 'choices' list)", status_code=500)
    choices = data["choices"]
    text: Any = None
    finish: Any = None
    tool_calls: Any = None
    if choices:
        first = choices[0] if isinstance(choices[0], dict) else {}
        msg = first.get("message") if isinstance(first.get("message"), dict) else {}
        text = msg.get("content")
        finish = first.get("finish_reason")
        tool_calls = msg.get("tool_calls")
    if text is not None and not isinstance(text, str):
        text = json.dumps(text)  # content parts: keep them readable rather than fail
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}

    def _int(v: Any) -> int | None:
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None

    model = data.get("model")
    return Completion(
        text=text,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        model=model if isinstance(model, str) else None,
        finish_reason=finish if isinstance(finish, str) else None,
        tool_calls=tool_calls if isinstance(tool_calls, list) and tool_calls else None,
    )


async def attempt(
    model: str,
    api_base: str | None,
    api_key: str | None,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    timeout_s: float,
) -> Completion:
    """One chat completion; raises a `ProviderError` for every fault (never retries itself).

    ``params`` go into the body as given: sampling, ``response_format`` (structured output),
    ``tools`` / ``tool_choice``, ``seed``, ...
    """
    body = {"model": wire_model(model), "messages": messages, **params}
    return parse_completion(await _post(api_base, "/chat/completions", api_key, body, timeout_s))


async def _post(api_base: str | None, route: str, api_key: str | None, body: dict[str, Any], timeout_s: float) -> Any:
    """POST ``body`` to ``{api_base}{route}`` and return the decoded JSON; every fault is a `ProviderError`."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise AuthenticationError(
            "no API key: set OPENAI_API_KEY, or name the variable that holds the key with api_key_env"
        )
    url = base_url(api_base) + route
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with asyncio.timeout(timeout_s):  # the whole attempt, as litellm's timeout is
            resp = await client().post(url, json=body, headers=headers, timeout=httpx.Timeout(timeout_s))
            raw = resp.content
    except (TimeoutError, httpx.TimeoutException):
        raise Timeout("Request timed out.", status_code=408) from None
    except httpx.HTTPError:
        raise APIConnectionError("Connection error.") from None
    if len(raw) > MAX_BODY_BYTES:
        raise InternalServerError(f"the response body is larger than {MAX_BODY_BYTES} bytes", status_code=500)
    if resp.status_code >= 400:
        raise error_for_status(resp.status_code, _error_message(raw, resp.status_code), resp.headers)
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InternalServerError(str(e), status_code=500) from None  # json's words, as litellm reports them


# ----------------------------------------------------------------------------- embeddings


@dataclass
class Embeddings:
    """What the gateway needs from one embeddings response, whichever transport made it."""

    vectors: list[list[float]]  # one per input, in input order
    prompt_tokens: int | None
    model: str | None


def parse_embeddings(data: Any, n_inputs: int) -> Embeddings:
    """Read an embeddings body (``{"data": [{"index", "embedding"}], "usage"}``).

    Anything else, a missing or extra vector, a non-numeric or ragged vector, is a retryable fault (a proxy's
    error page, a cut-off body), as for chat completions.
    """
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InternalServerError("the response is not an embeddings list (no 'data' list)", status_code=500)
    if len(items) != n_inputs:
        raise InternalServerError(f"the response holds {len(items)} embeddings for {n_inputs} inputs", status_code=500)
    out: list[list[float] | None] = [None] * n_inputs
    dim: int | None = None
    for pos, item in enumerate(items):
        vec = item.get("embedding") if isinstance(item, dict) else None
        idx = item.get("index", pos) if isinstance(item, dict) else pos
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < n_inputs or out[idx] is not None:
            raise InternalServerError(f"embedding {pos} has a bad or repeated index", status_code=500)
        if (not isinstance(vec, list) or not vec
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vec)):
            raise InternalServerError(f"embedding {pos} is not a list of numbers", status_code=500)
        if dim is not None and len(vec) != dim:
            raise InternalServerError("the embeddings in one response have different lengths", status_code=500)
        dim = len(vec)
        out[idx] = vec
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    pt = usage.get("prompt_tokens")
    model = data.get("model")
    return Embeddings(
        vectors=[v for v in out if v is not None],
        prompt_tokens=int(pt) if isinstance(pt, (int, float)) and not isinstance(pt, bool) and pt > 0 else None,
        model=model if isinstance(model, str) else None,
    )


async def embed_attempt(
    model: str, api_base: str | None, api_key: str | None, texts: list[str], params: dict[str, Any], timeout_s: float
) -> Embeddings:
    """One POST to ``{api_base}/embeddings`` (OpenAI, TEI, vLLM, Ollama's /v1, ...); raises a `ProviderError`
    for every fault, classified as for chat completions (never retries itself)."""
    body = {"model": wire_model(model), "input": texts, "encoding_format": "float", **params}
    return parse_embeddings(await _post(api_base, "/embeddings", api_key, body, timeout_s), len(texts))
