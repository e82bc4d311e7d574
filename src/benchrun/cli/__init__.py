"""The `benchrun` command line: parse → call → render. Thin on purpose.

One module per command group (`run`, `runs`, `dataset`, `judge`, `compare`, `coverage`,
`ledger`); `app` is the lazily loading top-level group, `main` the entry point (one-line errors,
documented exit codes) and `console` the `benchrun` script around it (it ends the process without the
interpreter's teardown). Nothing outside this package imports it.
"""

from __future__ import annotations

from benchrun.cli.app import app, console, main

__all__ = ["app", "console", "main"]
