"""The OpenAI-compatible transport: chat completions over one shared ``aiohttp.ClientSession``.

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
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import aiohttp  # imported at the first request (`_new_session`): a replay from the cache makes none

DEFAULT_BASE = "https://api.openai.com/v1"
# Model-string prefixes (litellm's provider names) whose servers speak the OpenAI chat API; the prefix is
# not sent. A model with another prefix (anthropic/, vertex_ai/, ollama/ native, ...) goes through litellm.
OPENAI_PREFIXES = ("openai/", "hosted_vllm/", "lm_studio/", "llamafile/")
MAX_BODY_BYTES = 64 * 1024 * 1024  # a response larger than this is refused, not parsed


# ----------------------------------------------------------------------------- faults


class ProviderError(Exception):
    """A failed attempt. ``retryable`` says whether the same request may succeed later."""

    retryable = False

    def __init__(self, message: str, status_code: int | None = None, headers: Mapping[str, str] | None = None) -> None:
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


def error_for_status(status: int, message: str, headers: Mapping[str, str] | None) -> ProviderError:
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

# One aiohttp session per event loop, its connector keeping the keep-alive connections of every host (no limit
# of its own: the runner's semaphores bound the calls in flight). aiohttp rather than httpx: against our test
# server at 128 calls in flight, a bare httpx POST cost 2.5 ms of CPU per call in the calling process (1.66x the
# ideal wall time on its own), httpx over an aiohttp transport 1.0 ms, aiohttp alone 0.6-0.9 ms (1.07x) --
# docs/performance.md. At 640 calls per second one process has 1.56 ms per call for everything.

_session: aiohttp.ClientSession | None = None
_session_loop: asyncio.AbstractEventLoop | None = None
_closer: Any = None  # an async generator whose `finally` closes the session when its event loop shuts down


def _new_session() -> aiohttp.ClientSession:
    import aiohttp  # ~0.1 s of CPU, 0.07 s of it two SSL contexts aiohttp builds as it is imported

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),  # each request sets its own, below
        # Proxies come from `_proxy_for`, not trust_env: aiohttp's trust_env looks up the proxy and ~/.netrc in a
        # thread on every request (two thread hops per call), and a netrc entry for the API host would clash
        # with our Authorization header.
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # an API call carries no cookies
    )


async def _close_at_shutdown(session: aiohttp.ClientSession) -> Any:
    """Held suspended until the event loop finalises its async generators (``asyncio.run`` does, before it closes
    the loop), then closes ``session``: every loop that made a call releases its connections, whoever ran it."""
    try:
        yield None
    finally:
        if not session.closed:
            await session.close()


_proxies: dict[tuple[str, str], str | None] = {}


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY`` / ``HTTPS_PROXY``, except hosts in
    ``NO_PROXY``), as litellm's and httpx's clients honour them; looked up once per scheme and host."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.hostname or "")
    if key not in _proxies:
        from urllib.request import getproxies, proxy_bypass

        proxy = getproxies().get(parts.scheme)
        _proxies[key] = None if not proxy or proxy_bypass(parts.hostname or "") else proxy
    return _proxies[key]


def session() -> aiohttp.ClientSession:
    """The running event loop's shared session (pooled keep-alive connections)."""
    global _session, _session_loop, _closer
    loop = asyncio.get_running_loop()
    if _session is None or _session_loop is not loop or _session.closed:
        # A new event loop (each asyncio.run) needs its own session: connections belong to the loop that opened them.
        _session = _new_session()
        _session_loop = loop
        _closer = _close_at_shutdown(_session)
        with contextlib.suppress(StopIteration):  # run it to its `yield`: its first step registers it with this loop
            _closer.__anext__().send(None)
    return _session


async def aclose() -> None:
    """Close the running loop's shared session (at the end of a run)."""
    global _session, _session_loop
    s = _session if _session_loop is asyncio.get_running_loop() else None
    _session, _session_loop = None, None
    if s is not None and not s.closed:
        await s.close()


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


async def _post(api_base: str | None, route: str, api_key: str | None, body: dict[str, Any], timeout_s: float,
                max_body: int = MAX_BODY_BYTES) -> Any:
    """POST ``body`` to ``{api_base}{route}`` and return the decoded JSON; every fault is a `ProviderError`.

    A body longer than ``max_body`` bytes is refused unread (by its Content-Length) or after reading one byte
    past the cap (chunked), never held whole."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise AuthenticationError(
            "no API key: set OPENAI_API_KEY, or name the variable that holds the key with api_key_env"
        )
    url = base_url(api_base) + route
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    client = session()  # the first one imports aiohttp
    import aiohttp

    try:
        async with asyncio.timeout(timeout_s):  # the whole attempt, as litellm's timeout is
            async with client.post(url, data=data, headers=headers, allow_redirects=False,
                                      proxy=_proxy_for(url)) as resp:
                status, resp_headers = resp.status, resp.headers
                length = resp.content_length
                if length is None:  # chunked: read up to one byte past the cap, never more
                    parts, size = [], 0
                    while size <= max_body:
                        part = await resp.content.read(max_body + 1 - size)
                        if not part:
                            break
                        parts.append(part)
                        size += len(part)
                    raw = b"".join(parts)
                else:
                    raw = b"" if length > max_body else await resp.read()
    except TimeoutError:
        raise Timeout("Request timed out.", status_code=408) from None
    except (aiohttp.ClientError, OSError, ValueError):  # refused, reset, cut off, malformed HTTP, a bad URL
        raise APIConnectionError("Connection error.") from None
    if (length is not None and length > max_body) or len(raw) > max_body:
        raise InternalServerError(f"the response body is larger than {max_body} bytes", status_code=500)
    if status >= 400:
        raise error_for_status(status, _error_message(raw, status), resp_headers)
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
