"""Does the eval set look like production? Coverage by embedding clusters.

Entry points (see docs/coverage.md):

- `run_coverage(production_path, dataset_path, **options) -> dict`
- `run_refresh(production_path, dataset_path, n, out_path, **options) -> dict`
- `benchrun.coverage.render` for the terminal table, HTML/PNG chart and JSON.
- `benchrun.cli.coverage.app` (typer) with the ``coverage`` and ``refresh`` commands.

Heavy libraries (sentence-transformers, torch, sklearn) are imported only when
a run needs them.
"""

from __future__ import annotations

from benchrun.coverage.pipeline import CoverageOptions, run_coverage, run_refresh
from benchrun.coverage.report import Bands, jensen_shannon_divergence

__all__ = ["Bands", "CoverageOptions", "jensen_shannon_divergence", "run_coverage", "run_refresh"]
