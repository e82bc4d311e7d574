"""Model prices for the OpenAI-compatible transport, from litellm's bundled price map read as data.

litellm ships ``model_prices_and_context_window_backup.json`` (the map it uses itself with
``LITELLM_LOCAL_MODEL_COST_MAP=True``, which benchrun sets). Reading that file costs a few
milliseconds; importing litellm to ask it costs seconds. The file is found through the
package's location (``importlib.util.find_spec`` does not import it), and priced the way
litellm prices a plain chat completion (``litellm.cost_per_token``): prompt tokens at
``input_cost_per_token``, completion tokens at ``output_cost_per_token``, with the
``*_above_Nk_tokens`` tier rates once the prompt is longer than N thousand tokens.
``tests/test_transports.py`` checks it against ``litellm.cost_per_token`` for every OpenAI
chat model in the map. A model the map does not know has no price (``None``), never zero (a
model it lists without token rates costs 0 per token, as litellm says).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


def price_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / PRICE_MAP_FILE
    return p if p.is_file() else None


@functools.cache
def price_map() -> dict[str, dict[str, Any]]:
    """litellm's bundled model map (empty when litellm is not installed)."""
    p = price_map_path()
    if p is None:
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if isinstance(v, dict) and k != "sample_spec"}


def model_entry(model: str) -> dict[str, Any] | None:
    """The map's entry for an OpenAI-transport model string (``openai/gpt-4o-mini`` or ``gpt-4o-mini``)."""
    m = price_map()
    prefixed = model.startswith("openai/")
    name = model.split("/", 1)[1] if prefixed else model
    if not prefixed and name.startswith("ft:") and "ft:gpt-3.5-turbo" not in name and "ft:gpt-4" not in name:
        return None  # litellm recognises an unprefixed fine-tune as OpenAI's only for these two families
    for key in (model, name, f"openai/{name}"):
        entry = m.get(key)
        if entry is not None and entry.get("litellm_provider") == "openai":
            return entry
    return None


def _rate(entry: dict[str, Any], base_key: str, prompt_tokens: int) -> float:
    rate = entry.get(base_key, 0.0)  # as litellm: a listed model without a token rate costs 0 per token
    if not isinstance(rate, (int, float)):
        rate = 0.0
    kind = base_key.split("_cost_per_token")[0]  # input / output
    best = 0
    for k, v in entry.items():
        t = _TIER.match(k.replace("output_", "input_", 1)) if k.startswith(f"{kind}_cost_per_token_above_") else None
        if t and isinstance(v, (int, float)):
            threshold = int(t.group(1)) * 1000
            if prompt_tokens > threshold and threshold > best:
                best, rate = threshold, v
    return float(rate)


def cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for one chat completion at the map's prices, or None when the map has no price for the model."""
    entry = model_entry(model)
    if entry is None:
        return None
    i = _rate(entry, "input_cost_per_token", prompt_tokens)
    o = _rate(entry, "output_cost_per_token", prompt_tokens)
    return prompt_tokens * i + completion_tokens * o


def batch_entry(model: str) -> dict[str, Any] | None:
    """The map's entry for a model called through a batch API, whichever transport: the entry of
    `model_entry` (OpenAI), else the model string as given or without its provider prefix."""
    entry = model_entry(model)
    if entry is not None:
        return entry
    m = price_map()
    return m.get(model) or (m.get(model.split("/", 1)[1]) if "/" in model else None)
