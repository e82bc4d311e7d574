"""The OpenAI-compatible transport's HTTP layer (aiohttp) against small real servers on 127.0.0.1.

What the shared identical-ledger tests (test_transports.py) do not reach: the cap on a response body (with a
Content-Length and chunked), redirects (never followed), proxies from the environment, and the shared session
being closed when its event loop ends, whoever ran the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from benchrun import openai_http

ROOT = Path(__file__).resolve().parents[1]
COMPLETION = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1}, "model": "m"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(307)
            self.send_header("Location", "/v1/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(COMPLETION).encode()
        if self.path.startswith("/big"):
            body = b'{"choices": [], "pad": "' + b"x" * 5000 + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if "/chunked" in self.path:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 1000):
                part = body[i:i + 1000]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[str]:
    _Handler.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _post(base: str, route: str, max_body: int = openai_http.MAX_BODY_BYTES) -> object:
    async def go() -> object:
        try:
            return await openai_http._post(base, route, "k", {"model": "m", "messages": []}, 10, max_body=max_body)
        finally:
            await openai_http.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("route", ["/big", "/big/chunked"])
def test_a_body_over_the_cap_is_refused_with_or_without_a_content_length(server: str, route: str) -> None:
    assert isinstance(_post(server, route), dict)  # under the real cap it is read whole
    with pytest.raises(openai_http.InternalServerError, match="larger than 4000 bytes") as e:
        _post(server, route, max_body=4000)
    assert e.value.retryable


def test_a_chunked_body_under_the_cap_is_read_whole(server: str) -> None:
    out = _post(server, "/ok/chunked")
    assert out == COMPLETION


def test_a_redirect_is_not_followed(server: str) -> None:
    with pytest.raises(openai_http.InternalServerError):  # a 307 is not a chat completion: a (retryable) fault
        _post(server, "/redirect")
    assert _Handler.seen == ["/redirect"]  # the server saw one request: the Location was not followed


def test_a_refused_connection_is_a_retryable_connection_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(openai_http.APIConnectionError) as e:
            _post(f"http://127.0.0.1:{port}", "/v1/chat/completions")
    assert e.value.retryable


def test_requests_go_through_the_proxy_named_in_the_environment(server: str) -> None:
    """HTTP_PROXY is honoured (NO_PROXY too), as litellm's and httpx's clients honour it: the proxy (our server)
    receives the request with the absolute URL of the host it stands for."""
    code = ("import asyncio, sys\nfrom benchrun import openai_http\n"
            "async def go():\n"
            "    r = await openai_http._post('http://api.example.invalid/v1', '/chat/completions', 'k', {}, 10)\n"
            "    await openai_http.aclose()\n    print(r['model'])\n"
            "asyncio.run(go())\n")
    env = {**os.environ, "HTTP_PROXY": server, "NO_PROXY": ""}
    env.pop("no_proxy", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "m"
    assert _Handler.seen == ["http://api.example.invalid/v1/chat/completions"]
    # a host in NO_PROXY is called directly, even with a proxy named (here one that refuses connections)
    direct = code.replace("http://api.example.invalid/v1", server + "/v1")
    env = {**env, "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
    r = subprocess.run([sys.executable, "-c", direct], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _Handler.seen[-1] == "/v1/chat/completions"


def test_the_session_is_closed_when_its_event_loop_ends_without_aclose(server: str) -> None:
    """A caller that never calls `aclose` (one asyncio.run per call, as a script would) leaves no open session:
    the loop's shutdown closes it, so nothing warns about an unclosed session or connector."""
    code = ("import asyncio, gc, sys, warnings\nwarnings.simplefilter('always')\nfrom benchrun import openai_http\n"
            "async def go():\n"
            f"    r = await openai_http._post({server!r}, '/v1/chat/completions', 'k', {{}}, 10)\n"
            "    return r['model'], openai_http._session\n"
            "out = []\n"
            "for _ in range(3):\n"
            "    model, s = asyncio.run(go())\n"
            "    out.append((model, s.closed))\n"
            "del s\ngc.collect()\nprint(out)\n")
    r = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == str([("m", True)] * 3)
    assert "Unclosed" not in r.stderr and "unclosed" not in r.stderr, r.stderr[-2000:]
    assert len(_Handler.seen) == 3
