"""The Starlette app of `benchrun view`: pages, their ``.json`` twins, and the safety checks.

Safety (every request goes through `_Guard`):

* **Host**: without a token only ``127.0.0.1`` / ``localhost`` / ``[::1]`` are accepted as the
  ``Host`` header, so a web page the user visits cannot read the ledger through DNS rebinding.
* **Token** (``--token`` / ``BENCHRUN_VIEW_TOKEN``; required off loopback): checked on every
  request, from ``Authorization: Bearer T``, or the ``benchrun_view_token`` cookie that a first visit
  with ``?token=T`` sets (HttpOnly, SameSite=Strict), compared in constant time.
* **CSRF**: every write (POST) needs the ``X-CSRF-Token`` header holding the random token the
  pages carry in ``<meta name="csrf-token">`` (another site cannot read it), a JSON body, and an
  ``Origin``, if sent, naming this host.
* **Read-only** (``--read-only``): every write is refused (403) and the SQLite ledger is opened
  read-only.
* **Escaping**: Jinja2 autoescaping on every template; control characters (ANSI escapes) are
  shown as ``\\x1b`` text; no user text becomes a link; the Content-Security-Policy allows scripts
  from this server's ``/static/`` only, so even markup that slipped through could not run.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from benchrun.errors import BenchrunError, UsageError
from benchrun.ledger import Ledger
from benchrun.report.plain import jsonable
from benchrun.web import labelling, pages

HERE = Path(__file__).parent
TOKEN_COOKIE = "benchrun_view_token"  # noqa: S105 (a cookie name)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: Any) -> str:
    """Untrusted text with control characters (ANSI escapes, NUL, C1) made visible as ``\\xNN``; the
    template's autoescaping then makes it HTML text."""
    if text is None:
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _environment() -> Environment:
    """Templates from ``templates/``, autoescaped; number formats shared with the terminal renderers."""
    from benchrun.report.holistic import holistic_rows, method_notes
    from benchrun.report.html import quality_cost_svg
    from benchrun.report.terminal import TOOL_COLUMNS, _cost, _money, _ms
    from benchrun.report.terminal_compare import _iv_pts, _p_is, _pct, _pts

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
    env.filters.update(shown=shown, pct=_pct, pts=_pts, ivpts=_iv_pts, p_is=_p_is, money=_money, ms=_ms,
                       q=lambda s: quote(str(s), safe=""))
    env.globals.update(cost=_cost, urlencode=urlencode, quality_cost_svg=quality_cost_svg, holistic_rows=holistic_rows,
                       holistic_notes=method_notes, tool_columns=TOOL_COLUMNS)
    return env


def _host_of(header: str) -> str:
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Guard(BaseHTTPMiddleware):
    def __init__(self, app: Any, *, token: str | None, csrf: str, read_only: bool,
                 allowed_hosts: Sequence[str] | None) -> None:
        super().__init__(app)
        self.token, self.csrf, self.read_only, self.allowed_hosts = token, csrf, read_only, allowed_hosts

    def _token_ok(self, given: str | None) -> bool:
        return bool(given) and self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = _host_of(request.headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return _plain_error(request, 400, f"host {host!r} is not served here; open http://127.0.0.1:PORT/")
        if self.token is not None:
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            query_token = request.query_params.get("token")
            if self._token_ok(query_token) and request.method == "GET":
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
                resp: Response = RedirectResponse(target, status_code=303)
                resp.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                return _secure(resp)
            if not (self._token_ok(bearer) or self._token_ok(request.cookies.get(TOKEN_COOKIE))):
                return _plain_error(request, 401, "this server needs its token: open the URL with ?token=TOKEN "
                                    "once, or send Authorization: Bearer TOKEN")
        if request.method not in ("GET", "HEAD"):
            if self.read_only:
                return _plain_error(request, 403, "this server is read-only (--read-only): nothing can be written")
            if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), self.csrf.encode()):
                return _plain_error(request, 403, "missing or wrong CSRF token; reload the page and try again")
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
                return _plain_error(request, 403, f"cross-origin write from {origin!r} refused")
            if not request.headers.get("content-type", "").startswith("application/json"):
                return _plain_error(request, 415, "writes take a JSON body (Content-Type: application/json)")
        return _secure(await call_next(request))


def _secure(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _plain_error(request: Request, status: int, message: str) -> Response:
    return _secure(JSONResponse({"error": message, "status": status}, status_code=status))


def _split_json(value: str) -> tuple[str, bool]:
    return (value[:-5], True) if value.endswith(".json") else (value, False)


def create_app(ledger: str | Ledger | None = None, *, token: str | None = None, read_only: bool = False,
               allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The app over ``ledger`` (URL, SQLite path or an open `Ledger`). ``allowed_hosts`` None accepts any
    ``Host`` header (what `benchrun view` does when a token protects the server)."""
    store = ledger if isinstance(ledger, Ledger) else Ledger(ledger, read_only=read_only)
    csrf = secrets.token_urlsafe(32)
    env = _environment()

    def render(request: Request, template: str, data: dict[str, Any], json_twin: bool, status: int = 200) -> Response:
        if json_twin:
            return JSONResponse(jsonable(data), status_code=status)
        html = env.get_template(template).render(d=data, csrf=csrf, read_only=read_only, path=request.url.path,
                                                 query=request.url.query)
        return HTMLResponse(html, status_code=status)

    def run_or_404(run_id: str) -> Any:
        try:
            return store.get_run(run_id)
        except UsageError as e:
            raise HTTPException(404, str(e)) from None

    def index(request: Request) -> Response:
        p = request.query_params
        dates = {k: p.get(k) or None for k in ("since", "until")}
        for k, v in dates.items():
            if v is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                raise HTTPException(400, f"{k} must be a date YYYY-MM-DD, not {v!r}")
        data = pages.runs_list(store, dataset=p.get("dataset") or None, model=p.get("model") or None,
                               status=p.get("status") or None, q=p.get("q") or None, **dates)
        return render(request, "runs.html", data, request.url.path.endswith(".json"))

    def run_view(request: Request) -> Response:
        run_id, as_json = _split_json(request.path_params["run_id"])
        run = run_or_404(run_id)
        return render(request, "run.html", pages.run_page(store, run.id), as_json)

    def case_view(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        case_id, as_json = _split_json(request.path_params["case_id"])
        try:
            data = pages.case_page(store, run.id, case_id)
        except UsageError as e:
            raise HTTPException(404, str(e)) from None
        return render(request, "case.html", data, as_json)

    def compare_view(request: Request) -> Response:
        p = request.query_params
        as_json = request.url.path.endswith(".json")
        a, b, run = p.get("a", "").strip(), p.get("b", "").strip(), p.get("run", "").strip() or None
        if not a or not b:
            if as_json:
                raise HTTPException(400, "give ?a=...&b=... (MODEL_KEY with &run=RUN_ID, or RUN_ID:MODEL_KEY)")
            return render(request, "compare.html", {"compare": None, "query": {"a": a, "b": b, "run": run,
                                                                              "regressions_only": False}}, False)
        if run is not None:
            run = run_or_404(run).id
        for ref in (a, b):
            if ":" in ref:
                run_or_404(ref.split(":", 1)[0])
        data = pages.compare_page(store, a, b, run, regressions_only=p.get("regressions") in ("1", "on", "true"))
        return render(request, "compare.html", data, as_json)

    def diff_view(request: Request) -> Response:
        from benchrun.report.comparison import conditions_diff

        p = request.query_params
        as_json = request.url.path.endswith(".json")
        if not p.get("a") or not p.get("b"):
            raise HTTPException(400, "give ?a=RUN_ID&b=RUN_ID")
        data = conditions_diff(run_or_404(p["a"]), run_or_404(p["b"]))
        return render(request, "diff.html", data, as_json)

    def label_view(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        as_json = request.url.path.endswith(".json")
        p = request.query_params
        try:
            n, seed = int(p.get("n", "100")), int(p.get("seed", "0"))
            per_item = int(p["per_item"]) if p.get("per_item") else None
        except ValueError:
            raise HTTPException(400, "n, seed and per_item must be whole numbers") from None
        annotator = (p.get("annotator") or "").strip()[:labelling.MAX_ANNOTATOR] or None
        if labelling.is_pairwise(store, run.id):  # A / B / tie on blind pairs
            return render(request, "label_pairwise.html", labelling.pairwise_queue(store, run.id, annotator, n, seed),
                          as_json)
        return render(request, "label.html", labelling.queue(store, run.id, annotator, n, seed, per_item), as_json)

    def reveal_view(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        item_id, _ = _split_json(request.path_params["item_id"])
        return JSONResponse(jsonable(labelling.reveal_item(store, run.id, item_id)))

    async def label_save(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        body = await _json_body(request)
        from starlette.concurrency import run_in_threadpool

        run = await run_in_threadpool(run_or_404, run_id)
        pairwise = await run_in_threadpool(labelling.is_pairwise, store, run.id)
        out = await run_in_threadpool(labelling.pairwise_save if pairwise else labelling.save, store, run.id, body)
        return JSONResponse(jsonable(out))

    async def calibrate_view(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        body = await _json_body(request)
        from starlette.concurrency import run_in_threadpool

        run = await run_in_threadpool(run_or_404, run_id)
        try:
            threshold = float(body.get("threshold", 0.6))
        except (TypeError, ValueError):
            raise HTTPException(400, "threshold must be a number") from None
        return JSONResponse(jsonable(await run_in_threadpool(labelling.calibrate_now, store, run.id, threshold)))

    def calibrations_view(request: Request) -> Response:
        as_json = request.url.path.endswith(".json")
        run = request.query_params.get("run")
        if run:
            run = run_or_404(run).id
        return render(request, "calibrations.html", pages.calibrations_page(store, run), as_json)

    def stored_report_view(kind: str, template: str) -> Callable[[Request], Response]:
        def view(request: Request) -> Response:
            rid, as_json = _split_json(request.path_params["report_id"])
            data = pages.report_page(store, kind, int(rid)) if rid.isdigit() else None
            if data is None:
                raise HTTPException(404, f"no {kind} report {rid!r} in this ledger")
            return render(request, template, data, as_json)

        return view

    def coverage_list_view(request: Request) -> Response:
        return render(request, "coverage_list.html", pages.coverage_list(store), request.url.path.endswith(".json"))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error_page(request, exc.status_code, str(exc.detail))

    async def on_benchrun_error(request: Request, exc: Exception) -> Response:
        return _error_page(request, 400, str(exc))

    def _error_page(request: Request, status: int, message: str) -> Response:
        if request.url.path.endswith(".json") or request.method != "GET":
            return JSONResponse({"error": message, "status": status}, status_code=status)
        html = env.get_template("error.html").render(d={"status": status, "message": message}, csrf=csrf,
                                                     read_only=read_only, path=request.url.path, query="")
        return HTMLResponse(html, status_code=status)

    routes = [
        Route("/", index), Route("/.json", index), Route("/runs.json", index),
        Route("/compare", compare_view), Route("/compare.json", compare_view),
        Route("/diff", diff_view), Route("/diff.json", diff_view),
        Route("/calibrations", calibrations_view), Route("/calibrations.json", calibrations_view),
        Route("/calibrations/{report_id}", stored_report_view("calibration", "calibration.html")),
        Route("/coverage", coverage_list_view), Route("/coverage.json", coverage_list_view),
        Route("/coverage/{report_id}", stored_report_view("coverage", "coverage.html")),
        Route("/runs/{run_id}/label", label_view, methods=["GET"]),
        Route("/runs/{run_id}/label.json", label_view, methods=["GET"]),
        Route("/runs/{run_id}/label", label_save, methods=["POST"]),
        Route("/runs/{run_id}/label/reveal/{item_id}", reveal_view, methods=["GET"]),
        Route("/runs/{run_id}/calibrate", calibrate_view, methods=["POST"]),
        Route("/runs/{run_id}/cases/{case_id:path}", case_view),
        Route("/runs/{run_id}", run_view),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, token=token, csrf=csrf, read_only=read_only,
                                                          allowed_hosts=allowed_hosts)],
                    exception_handlers={HTTPException: on_http_error, BenchrunError: on_benchrun_error})
    app.state.store = store
    app.state.csrf = csrf
    return app


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 64_000:
        raise HTTPException(413, "request body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body
