"""Circular evaluation of multiple-choice cases (``shuffle_choices: K``): is the answer right under every
order of the choices, or only under the dataset's own?

Each case is asked K times, sample i under choice order i (order 0 the dataset's own; see
`benchrun.spec.choice_order`). Per model, over the cases answered under all K orders without an error:

* ``original``: share correct under the dataset's order (what a public harness reports);
* ``circular``: share correct under all K orders (CircularEval, Liu et al. 2023, "MMBench", §3.3);
* ``order_sensitive``: share correct under the original order but wrong under another: position bias
  of the candidate itself (original − circular, since circular ⊆ original).

Each is a proportion of cases with its Wilson score interval (Wilson 1927). A case with an error or a
missing order under any order is left out of all three and counted in ``errored_cases``: it could not
be scored, so it is neither a pass nor a failure. Pure: plain rows in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from benchrun.analysis.stats import wilson_interval


def circular_accuracy(rows: Iterable[Mapping[str, Any]], order: list[str], k: int,
                      level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per model key (in ``order``): the three shares above with intervals, and the case counts."""
    by: dict[str, dict[str, dict[int, str]]] = {key: {} for key in order}
    for r in rows:
        if r["model_key"] in by:
            by[r["model_key"]].setdefault(r["case_id"], {})[int(r["sample_index"])] = r["status"]
    out: dict[str, dict[str, Any]] = {}
    for key in order:
        complete = {cid: s for cid, s in by[key].items()
                    if all(s.get(i) in ("passed", "failed") for i in range(k))}
        n = len(complete)
        orig = sum(s[0] == "passed" for s in complete.values())
        circ = sum(all(s[i] == "passed" for i in range(k)) for s in complete.values())
        out[key] = {
            "orders": k, "cases": n, "errored_cases": len(by[key]) - n,
            "original": asdict(wilson_interval(orig, n, level)) if n else None,
            "circular": asdict(wilson_interval(circ, n, level)) if n else None,
            "order_sensitive": asdict(wilson_interval(orig - circ, n, level)) if n else None,
            "order_sensitive_cases": sorted(cid for cid, s in complete.items()
                                            if s[0] == "passed" and not all(s[i] == "passed" for i in range(k))),
        }
    return out
