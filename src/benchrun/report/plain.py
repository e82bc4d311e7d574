"""JSON-ready plain data: what the report builders return and `--json` prints."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def jsonable(obj: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, NaN/inf to None (JSON has no NaN), dict keys to str."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def money(x: float | None) -> str:
    """A cost as people read it: "$0.0024", "$1,234.50", or "unknown" (never $0 for an unpriced call)."""
    if x is None:
        return "unknown"
    return f"${x:.4f}" if x < 1 else f"${x:,.2f}"
