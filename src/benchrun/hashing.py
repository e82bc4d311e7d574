"""Canonical content hashing.

A hash is SHA-256 over canonical JSON: keys sorted, no insignificant
whitespace, UTF-8. Key order and YAML/JSON formatting therefore never change a
hash, while any change of content does.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any


def _default(obj: Any) -> Any:
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot hash object of type {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically (sorted keys, compact separators)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def content_hash(obj: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def short(h: str | None, n: int = 12) -> str:
    return (h or "")[:n]


def cache_key(ref: Any, messages: list[dict[str, Any]], params: dict[str, Any], sample: int, role: str) -> str:
    """The response cache's key of one call: model string, api_base, exact messages, sampling params,
    sample index and role (``ref`` is a `benchrun.spec.ModelRef`). Here, not in the runner, so that the
    pairwise judge and `ledger copy` share it without importing the runner."""
    return content_hash(
        {"model": ref.model, "api_base": ref.api_base, "messages": messages, "params": params, "sample": sample, "role": role}
    )
