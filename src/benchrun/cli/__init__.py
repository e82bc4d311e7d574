"""The `benchrun` command line: parse → call → render. Thin on purpose.

One module per command group (`run`, `runs`, `dataset`, `judge`, `compare`, `coverage`,
`ledger`); `app` is the lazily loading top-level group and `main` the console entry point
(one-line errors, documented exit codes). Nothing outside this package imports it.
"""

from __future__ import annotations

from benchrun.cli.app import app, console, main

__all__ = ["app", "console", "main"]
