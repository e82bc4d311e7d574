"""Is the judge saying anything? Signs of a degenerate judge in one run's verdicts (pure; plain data in, plain data out).

A judge can fail without a single error: a small model that copies the example JSON of its
prompt, gives every answer the same score, or says ``score 1, pass: true`` on everything. Its
mean score then looks like a measurement (``mean judge 4.00``) and carries no information. The
signals, each with its threshold:

- ``constant_score``: the scores barely vary: population standard deviation at most
  ``max_score_sd`` (0.25 points on the 1-5 scale: e.g. all but 1 in 20 verdicts the same score),
  over at least ``min_verdicts`` verdicts.
- ``copied_prompt``: at least ``copied_share`` of the verdicts give a reason that is text of the
  judge prompt itself (the rubric's example answer, a scale or criterion description), compared
  after lower-casing and collapsing white space; only reasons of at least ``min_copy_chars`` count.
- ``contradicts_pass_rule``: at least ``contradiction_share`` of the verdicts contradict the
  rubric's pass rule on their own terms: ``pass: true`` with a score under ``min_score`` or a
  forbidden failure mode, or ``pass: false`` with a passing score and failure mode ``none``.
- ``single_failure_mode``: every verdict (at least ``min_verdicts``) names the same failure mode,
  and it is not the harmless case of ``none`` on answers that all pass: one mode for every
  failure, or ``none`` for answers the judge itself failed.
- ``repeated_reason``: at least ``repeated_share`` of the verdicts give word for word the same
  reason, over at least ``min_verdicts`` verdicts.

Any signal makes the judge ``degenerate``: its scores and passes should not be read as a
measurement of the answers. Below ``min_verdicts`` (10) verdicts the distribution signals are not
computed (too few to tell a uniform set of answers from a stuck judge); copying and contradictions
need at least ``min_pattern_verdicts`` (5).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def _core(text: str) -> str:
    """A reason without surrounding quotes and the final full stop, for substring matching."""
    return _norm(text).strip(" \"'`").rstrip(".").strip()


def judge_health(
    verdicts: Iterable[Mapping[str, Any]],
    prompt_texts: Sequence[str],
    min_score: int,
    forbidden_failure_modes: Sequence[str] = (),
    *,
    min_verdicts: int = 10,
    min_pattern_verdicts: int = 5,
    max_score_sd: float = 0.25,
    copied_share: float = 0.5,
    contradiction_share: float = 0.25,
    repeated_share: float = 0.9,
    min_copy_chars: int = 12,
) -> dict[str, Any]:
    """Signals of a degenerate judge over ``verdicts`` (dicts with ``judge_score``, ``judge_pass``,
    ``judge_reason``, ``judge_failure_mode``; rows without a score are ignored).

    ``prompt_texts`` is the static text the judge was given (system prompt, prompt template,
    criterion and scale descriptions); ``min_score`` and ``forbidden_failure_modes`` are the
    rubric's pass rule. Returns a plain dict: ``degenerate``, ``signals`` (kind + message),
    ``verdicts`` and the measured quantities behind each signal.
    """
    vs = [v for v in verdicts if v.get("judge_score") is not None]
    n = len(vs)
    prompt = _norm(" \n ".join(t for t in prompt_texts if t))
    scores = [int(v["judge_score"]) for v in vs]
    modes = Counter(str(v.get("judge_failure_mode")) for v in vs)
    reasons = [str(v.get("judge_reason") or "") for v in vs]
    forbidden = set(forbidden_failure_modes)

    sd = None
    modal_score, modal_share = None, None
    if n:
        mean = sum(scores) / n
        sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
        modal_score, cnt = Counter(scores).most_common(1)[0]
        modal_share = cnt / n

    copied: Counter[str] = Counter()
    for r in reasons:
        core = _core(r)
        if len(core) >= min_copy_chars and core in prompt:
            copied[r.strip()] += 1
    n_copied = sum(copied.values())

    contradictions = 0
    for v in vs:
        s, p, m = int(v["judge_score"]), v.get("judge_pass"), str(v.get("judge_failure_mode"))
        if p is None:
            continue
        passes_rule = s >= min_score and m not in forbidden
        if (p and not passes_rule) or (not p and s >= min_score and m == "none"):
            contradictions += 1

    signals: list[dict[str, Any]] = []
    if n >= min_verdicts and sd is not None and sd <= max_score_sd:
        same = f"all {n} verdicts gave score {modal_score}" if modal_share == 1 else (
            f"{modal_share:.0%} of {n} verdicts gave score {modal_score} (sd {sd:.2f})")
        signals.append({"kind": "constant_score", "message": same})
    if n >= min_pattern_verdicts and n_copied / n >= copied_share:
        top, _ = copied.most_common(1)[0]
        shown = top if len(top) <= 60 else top[:59] + "…"
        signals.append({"kind": "copied_prompt",
                        "message": f"{n_copied} of {n} reasons copy the judge prompt's own text (\"{shown}\")"})
    if n >= min_pattern_verdicts and contradictions / n >= contradiction_share:
        signals.append({"kind": "contradicts_pass_rule",
                        "message": f"{contradictions} of {n} verdicts contradict the pass rule "
                                   f"(pass field vs score >= {min_score})"})
    if n >= min_verdicts and len(modes) == 1:
        mode = next(iter(modes))
        judge_failed = sum(1 for v in vs if v.get("judge_pass") is False or int(v["judge_score"]) < min_score)
        if mode != "none" or judge_failed:
            signals.append({"kind": "single_failure_mode",
                            "message": f"every verdict names failure mode {mode!r}"
                                       + (f", also the {judge_failed} the judge failed" if mode == "none" else "")})
    if n >= min_verdicts and reasons:
        top_reason, cnt = Counter(r.strip() for r in reasons).most_common(1)[0]
        if top_reason and cnt / n >= repeated_share and not any(s["kind"] == "copied_prompt" for s in signals):
            shown = top_reason if len(top_reason) <= 60 else top_reason[:59] + "…"
            signals.append({"kind": "repeated_reason",
                            "message": f"{cnt} of {n} verdicts give the same reason (\"{shown}\")"})

    degenerate = bool(signals)
    return {
        "verdicts": n,
        "degenerate": degenerate,
        "signals": signals,
        "score_sd": sd,
        "modal_score": modal_score,
        "modal_share": modal_share,
        "copied_from_prompt": n_copied,
        "contradictions": contradictions,
        "failure_modes": dict(modes),
        "message": ("judge is degenerate: " + "; ".join(s["message"] for s in signals)
                    + ". Judge-based scores and passes carry no information.") if degenerate else None,
    }
