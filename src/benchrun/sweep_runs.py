"""`benchrun sweep`: run one spec under every combination of a few setup factors.

Each combination is a normal run in the ledger whose stored snapshot carries the sweep tag
``{"id", "factors", "setup"}`` (no new column). The factors are what a spec already expresses:

* ``prompt``: the spec's prompt (``prompt.version`` names it) or a YAML file holding a prompt
  (``version``, ``system``, ``template``), relative to the spec or the working directory;
* ``fewshot``: the number of exemplars (``0`` = none; otherwise the spec's ``fewshot`` settings with
  this ``n``, or ``from: same`` when the spec has none);
* ``temperature``, ``top_p``, ``seed``, ``max_tokens``: the spec's ``sampling`` (and any candidate's
  own value of that parameter, so that every candidate runs the setup).

Every setup is built and its templates rendered before the first run, so a bad value is bad
input with nothing recorded. The response cache makes a repeated sweep cheap; the budget
(``budget_usd`` of the spec, or the caller's) applies to the whole sweep: each run gets what is
left, and the sweep stops after a run that did not complete.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchrun.analysis.sweep import FACTORS, SAMPLING_FACTORS
from benchrun.errors import BadInput

MAX_SETUPS = 64


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """``["prompt=v1,v2", "temperature=0,0.7"]`` to ``{"prompt": ["v1", "v2"], ...}`` (values as text)."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, vals = item.partition("=")
        name = name.strip()
        values = [v.strip() for v in vals.split(",") if v.strip()]
        if not sep or not values:
            raise BadInput(None, "--vary", f"'{item}' is not FACTOR=VALUE,VALUE; e.g. --vary temperature=0,0.7")
        if name not in FACTORS:
            raise BadInput(None, "--vary", f"unknown factor '{name}'; sweep varies {', '.join(FACTORS)}")
        if name in out:
            raise BadInput(None, "--vary", f"factor '{name}' given twice; list all its values once: {name}=A,B")
        if len(set(values)) != len(values):
            raise BadInput(None, "--vary", f"factor '{name}' repeats a value")
        out[name] = values
    if not out:
        raise BadInput(None, "--vary", "give at least one factor to vary, e.g. --vary temperature=0,0.7")
    n = 1
    for v in out.values():
        n *= len(v)
    if n > MAX_SETUPS:
        raise BadInput(None, "--vary", f"{n} setups is more than {MAX_SETUPS}; vary fewer factors or values")
    return out


def setups(factors: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of the factors' values, the first factor varying slowest."""
    names = list(factors)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(factors[n] for n in names))]


def _number(name: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise BadInput(None, "--vary", f"{name}={value}: not {'an integer' if kind is int else 'a number'}") from None


def _prompt(loaded: Any, value: str) -> Any:
    from benchrun.spec import load_prompt, resolve_path

    if value == loaded.spec.prompt.version:
        return loaded.spec.prompt
    base = Path(loaded.path).parent if loaded.path else Path.cwd()
    p = resolve_path(base, value)
    if not p.is_file():
        raise BadInput(None, "--vary", f"prompt={value}: neither the spec's prompt version "
                       f"({loaded.spec.prompt.version!r}) nor a prompt file (YAML with version, system, template)")
    return load_prompt(p)


def apply_setup(loaded: Any, setup: Mapping[str, str]) -> Any:
    """A copy of ``loaded`` with the setup's factor values in place (the spec otherwise unchanged)."""
    from benchrun.spec import FewShot

    out = loaded.model_copy(deep=True)
    spec = out.spec
    for name, value in setup.items():
        if name == "prompt":
            own = [c.key for c in spec.candidates if c.prompt is not None]
            if own:
                raise BadInput(loaded.path, f"model {own[0]}", "has its own prompt, which a prompt sweep would not "
                               "change; remove it or sweep without --vary prompt")
            spec.prompt = _prompt(loaded, value)
        elif name == "fewshot":
            n = _number(name, value, int)
            if n < 0:
                raise BadInput(None, "--vary", f"fewshot={value}: give 0 (none) or a positive count")
            if n == 0:
                spec.fewshot = None
            elif spec.fewshot is not None:
                spec.fewshot = spec.fewshot.model_copy(update={"n": n})
            else:
                spec.fewshot = FewShot(n=n)
        else:
            assert name in SAMPLING_FACTORS
            v = _number(name, value, int if name in ("seed", "max_tokens") else float)
            spec.sampling = spec.sampling.model_validate({**spec.sampling.model_dump(), name: v})
            for c in spec.candidates:
                if c.sampling is not None and getattr(c.sampling, name) is not None:
                    c.sampling = c.sampling.model_validate({**c.sampling.model_dump(), name: v})
    return out


@dataclass
class SweepRuns:
    """What `run_sweep` did: the sweep id, each setup's run (None: not run), and why it stopped early."""

    sweep_id: str
    factors: dict[str, list[str]]
    runs: list[tuple[dict[str, str], str | None]] = field(default_factory=list)
    spent_usd: float = 0.0
    stopped: str | None = None


def prepare_setups(loaded: Any, factors: Mapping[str, Sequence[str]], sweep_id: str) -> list[Any]:
    """Every setup's spec, tagged with the sweep, templates rendered (bad input before anything runs)."""
    from benchrun import runner
    from benchrun.errors import BadInput as Bad

    out = []
    for setup in setups(factors):
        variant = apply_setup(loaded, setup)
        try:
            runner.check_templates(variant)  # renders every candidate's messages, few-shot exemplars included
        except Bad as e:
            raise Bad(e.file, e.where, f"setup {dict(setup)}: {e.what}") from None
        variant.sweep = {"id": sweep_id, "factors": list(factors), "setup": dict(setup)}
        out.append(variant)
    return out


def run_sweep(loaded: Any, factors: Mapping[str, Sequence[str]], run_one: Callable[[Any], tuple[str, str, float]],
              budget_usd: float | None = None) -> SweepRuns:
    """Run every setup with ``run_one(variant) -> (run_id, status, fresh spend)``; stop after a run that did not
    complete or when the budget is spent (``budget_usd``, else the spec's)."""
    sweep_id = "sw-" + secrets.token_hex(4)
    variants = prepare_setups(loaded, factors, sweep_id)
    total = budget_usd if budget_usd is not None else loaded.spec.budget_usd
    res = SweepRuns(sweep_id, {k: list(v) for k, v in factors.items()})
    for variant in variants:
        setup = variant.sweep["setup"]
        if res.stopped is not None:
            res.runs.append((setup, None))
            continue
        if total is not None:
            left = total - res.spent_usd
            if left <= 0:
                res.stopped = f"sweep budget ${total:.4f} spent"
                res.runs.append((setup, None))
                continue
            variant.spec.budget_usd = left
        run_id, status, spent = run_one(variant)
        res.spent_usd += spent
        res.runs.append((setup, run_id))
        if status != "completed":
            res.stopped = f"run {run_id} ended '{status}'; the remaining setups were not run"
    return res
