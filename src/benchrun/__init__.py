"""benchrun: private LLM evaluations with a reproducibility ledger.

The public Python API (documented in docs/python-api.md) is what the CLI is built on::

    import benchrun

    result = benchrun.run("runs/billing-support.yaml")
    assert result.passed(fail_on="high")

Names are loaded on first use (`__getattr__` below), so ``import benchrun`` stays as cheap as
the standard library: litellm, numpy and the ledger load when a function is first called.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    **dict.fromkeys(("arena", "run", "arun", "resume", "aresume", "load_spec", "compare", "reproduce", "shortlist",
                     "calibrate", "measure_coverage", "estimate", "report_markdown", "junit_report", "batch_status",
                     "Ledger", "RunResult", "ModelResult",
                     "ModelBreakdown", "RunInfo", "Comparison", "Reproduction", "Shortlist", "Calibration", "CoverageResult"),
                    "benchrun.api"),
    **dict.fromkeys(("BenchrunError", "BadInput", "UsageError", "RunAborted"), "benchrun.errors"),
    "Estimate": "benchrun.estimation",
}

__all__ = [
    "BadInput",
    "BenchrunError",
    "Calibration",
    "Comparison",
    "CoverageResult",
    "Estimate",
    "Ledger",
    "ModelBreakdown",
    "ModelResult",
    "Reproduction",
    "RunAborted",
    "RunInfo",
    "RunResult",
    "Shortlist",
    "UsageError",
    "__version__",
    "arena",
    "aresume",
    "arun",
    "batch_status",
    "calibrate",
    "compare",
    "estimate",
    "junit_report",
    "load_spec",
    "measure_coverage",
    "report_markdown",
    "reproduce",
    "resume",
    "run",
    "shortlist",
]

if TYPE_CHECKING:
    from benchrun.api import (
        Calibration,
        Comparison,
        CoverageResult,
        Ledger,
        ModelBreakdown,
        ModelResult,
        Reproduction,
        RunInfo,
        RunResult,
        Shortlist,
        arena,
        aresume,
        arun,
        batch_status,
        calibrate,
        compare,
        estimate,
        junit_report,
        load_spec,
        measure_coverage,
        report_markdown,
        reproduce,
        resume,
        run,
        shortlist,
    )
    from benchrun.errors import BadInput, BenchrunError, RunAborted, UsageError
    from benchrun.estimation import Estimate


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchrun' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """``benchrun.reproduce`` is both an API function and a submodule (the reproduction logic).

    Importing a submodule sets it as an attribute of its package, which would replace the
    function; this keeps the function (the submodule stays importable: ``from benchrun.reproduce
    import ...`` reads it from ``sys.modules``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
