"""`benchrun view`: the local web app over the ledger (`benchrun.web.app`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from benchrun.cli.common import LedgerOpt, err, out

app = typer.Typer()

TOKEN_ENV = "BENCHRUN_VIEW_TOKEN"  # noqa: S105 (a variable name, not a secret)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("view")
def view(
    ledger: LedgerOpt = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs --token.")
                    ] = "127.0.0.1",
    token: Annotated[str | None, typer.Option("--token", help=f"Require this token on every request (or set "
                                              f"${TOKEN_ENV}).")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Refuse every write (labels, calibrations).")
                         ] = False,
) -> None:
    """A local web app over the ledger: runs, case drill-down, comparisons, blind labelling (JSON twins: add .json)."""
    from benchrun.errors import UsageError

    token = token or os.environ.get(TOKEN_ENV) or None
    if host not in _LOOPBACK and not token:
        raise UsageError(f"--host {host} serves the ledger beyond this machine: give --token TOKEN (or set "
                         f"${TOKEN_ENV}), or bind --host 127.0.0.1")
    if token is not None and len(token) < 16:
        raise UsageError("--token must be at least 16 characters (e.g. `python -c 'import secrets; "
                         "print(secrets.token_urlsafe(24))'`)")
    import uvicorn

    from benchrun.cli.common import open_ledger
    from benchrun.ledger import redact_url
    from benchrun.web.app import LOOPBACK_HOSTS, create_app

    store = open_ledger(ledger, read_only=read_only)
    web = create_app(store, token=token, read_only=read_only, allowed_hosts=None if token else LOOPBACK_HOSTS)
    shown_host = f"[{host}]" if ":" in host else host
    out().print(f"benchrun view: http://{shown_host}:{port}/  (ledger {redact_url(store.url)}"
                f"{', read-only' if read_only else ''}; Ctrl-C stops)", markup=False)
    if token:
        err().print("every request needs the token: open the URL once with ?token=TOKEN, or send "
                    "Authorization: Bearer TOKEN", markup=False)
    uvicorn.run(web, host=host, port=port, log_level="warning", server_header=False)
