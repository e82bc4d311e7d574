"""Refresh: propose new eval cases from production, stratified by cluster.

Units. Each cluster is a sampling unit, except clusters under ``edge_share``
(default 0.5%) of traffic, which are pooled into one "edge-case pool" sampled
as a single unit (so the long tail is represented without one slot per tiny
cluster).

Priority of a unit u with production share p and eval share e:

    w_u = sqrt(p) * ((1 - min(1, e / p)) + light)

The square root lets small uncovered units get a real share instead of one
proportional to their traffic; the deficit term ``1 - min(1, e/p)`` makes
under-covered units aggressive (1 + light for an uncovered unit) and covered
ones light (``light``, default 0.1, for a unit whose eval share already
matches its traffic). The n slots go one at a time to the unit with the
highest ``w_u / (2 a_u + 1)`` (Sainte-Laguë / Webster divisors, a_u = slots
given so far), skipping units that have run out of candidates.

Candidates inside a unit are drawn in a weighted random order (Efraimidis &
Spirakis 2006: key ``U^(1/weight)``) with ``weight = w_row * (1 - s)^novelty``:
``w_row`` is the production weight (weekday weights carry over) and ``s`` the
cosine similarity to the closest existing eval case, so inside a cluster that
is partly covered the queries least like the current cases come first
(``novelty=0`` samples uniformly; default 2). A
candidate is rejected when its normalised text equals an existing case, when
its cosine similarity to any existing case or to any already chosen candidate
is at least ``near_duplicate`` (default 0.9).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EDGE_POOL = "edge-case pool"


@dataclass
class Unit:
    key: str
    cluster_ids: list[int]
    label: str
    production_share: float
    eval_share: float
    eval_count: int
    members: np.ndarray  # production row indices
    weight: float = 0.0
    allocated: int = 0
    exhausted: bool = False
    chosen: list[int] = field(default_factory=list)

    @property
    def coverage_ratio(self) -> float:
        return min(1.0, self.eval_share / self.production_share) if self.production_share > 0 else 1.0


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def build_units(clusters: list[dict[str, Any]], prod_labels: np.ndarray, edge_share: float = 0.005) -> list[Unit]:
    """Clusters (report dicts) to sampling units, pooling those under ``edge_share``."""
    units: list[Unit] = []
    pool: list[dict[str, Any]] = []
    for c in clusters:
        if c["production_share"] < edge_share:
            pool.append(c)
            continue
        units.append(
            Unit(
                key=f"cluster {c['id']}",
                cluster_ids=[c["id"]],
                label=c["label"],
                production_share=c["production_share"],
                eval_share=c["eval_share"],
                eval_count=c["eval_count"],
                members=np.flatnonzero(prod_labels == c["id"]),
            )
        )
    if pool:
        ids = [c["id"] for c in pool]
        units.append(
            Unit(
                key=EDGE_POOL,
                cluster_ids=ids,
                label=f"{len(ids)} clusters under {100 * edge_share:g}% of traffic each",
                production_share=float(sum(c["production_share"] for c in pool)),
                eval_share=float(sum(c["eval_share"] for c in pool)),
                eval_count=int(sum(c["eval_count"] for c in pool)),
                members=np.flatnonzero(np.isin(prod_labels, ids)),
            )
        )
    return units


def unit_weight(production_share: float, coverage_ratio: float, light: float = 0.1) -> float:
    """``sqrt(p) * ((1 - r) + light)`` (see the module docstring)."""
    return math.sqrt(max(0.0, production_share)) * ((1.0 - coverage_ratio) + light)


def weighted_order(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation where heavier items tend to come first (Efraimidis-Spirakis keys)."""
    w = np.asarray(weights, dtype=float)
    u = rng.random(w.size)
    keys = np.log(np.maximum(u, 1e-300)) / np.where(w > 0, w, 1e-12)
    return np.argsort(-keys, kind="stable")


def select(
    units: list[Unit],
    n: int,
    *,
    prod_texts: list[str],
    prod_vecs: np.ndarray,
    prod_weights: np.ndarray,
    eval_texts: list[str],
    eval_vecs: np.ndarray,
    near_duplicate: float = 0.9,
    light: float = 0.1,
    novelty: float = 2.0,
    seed: int = 0,
) -> list[int]:
    """Choose up to ``n`` production rows; fills ``unit.allocated`` / ``unit.chosen``. Returns row indices."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = np.random.default_rng(seed)
    existing = {_norm(t) for t in eval_texts}
    if eval_vecs.shape[0]:
        from benchrun.coverage.cluster import nearest_neighbour_sims

        max_sim_eval = nearest_neighbour_sims(prod_vecs, eval_vecs)[1]
    else:
        max_sim_eval = np.full(prod_vecs.shape[0], -1.0)
    queues: list[deque[int]] = []
    for u in units:
        u.weight = unit_weight(u.production_share, u.coverage_ratio, light)
        nov = np.clip(1.0 - max_sim_eval[u.members], 1e-6, 2.0) ** novelty
        order = u.members[weighted_order(prod_weights[u.members] * nov, rng)]
        queues.append(deque(int(i) for i in order))
    picked: list[int] = []
    picked_vecs = np.zeros((n, prod_vecs.shape[1]), dtype=np.float32)
    while len(picked) < n:
        best, best_p = -1, -1.0
        for j, u in enumerate(units):
            if u.exhausted or u.weight <= 0:
                continue
            pr = u.weight / (2 * u.allocated + 1)
            if pr > best_p:
                best, best_p = j, pr
        if best < 0:
            break
        u, q = units[best], queues[best]
        got = -1
        while q:
            i = q.popleft()
            if _norm(prod_texts[i]) in existing or max_sim_eval[i] >= near_duplicate:
                continue
            if picked and float(np.max(picked_vecs[: len(picked)] @ prod_vecs[i])) >= near_duplicate:
                continue
            got = i
            break
        if got < 0:
            u.exhausted = True
            continue
        picked_vecs[len(picked)] = prod_vecs[got]
        picked.append(got)
        u.allocated += 1
        u.chosen.append(got)
    return picked


def why(u: Unit, edge_share: float, n_requested: int | None = None) -> str:
    """A sentence explaining the unit's share of the new cases (``n_requested``: the whole budget, named when
    it ran out before this unit got any)."""
    p, e = 100 * u.production_share, 100 * u.eval_share
    if u.key == EDGE_POOL:
        head = f"{len(u.cluster_ids)} small clusters (each < {100 * edge_share:g}% of traffic) pooled: {p:.1f}% of traffic"
    else:
        head = f"{p:.1f}% of traffic"
    if u.allocated == 0 and not u.exhausted and u.coverage_ratio < 1.0:
        budget = f"all {n_requested} new cases" if n_requested else "the budget"
        what = "no eval case yet" if u.eval_count == 0 else f"only {e:.1f}% of eval cases ({u.eval_count})"
        return (f"{head}; {what}, but {budget} went to clusters that needed them more (more traffic or fewer "
                "eval cases) -> 0 new; ask for more (--n) to reach it")
    if u.eval_count == 0:
        body = "no eval case yet, so sampled aggressively"
    elif u.coverage_ratio < 0.5:
        body = f"only {e:.1f}% of eval cases ({u.eval_count}), so sampled aggressively"
    elif u.coverage_ratio < 1.0:
        body = f"{e:.1f}% of eval cases ({u.eval_count}), slightly under its traffic, so sampled moderately"
    else:
        body = f"{e:.1f}% of eval cases ({u.eval_count}), already covered, so sampled lightly"
    tail = f" -> {u.allocated} new"
    if u.exhausted:
        tail += " (ran out of distinct, non-duplicate queries)"
    return f"{head}; {body}{tail}"


def candidate_cases(
    units: list[Unit],
    *,
    prod_turns: list[list[str]],
    prod_cluster: np.ndarray,
    cluster_labels: dict[int, str],
    taken_ids: set[str],
    added: dt.date,
) -> list[dict[str, Any]]:
    """Case dicts (benchrun dataset schema) for the chosen rows, with provenance and empty ideal."""
    import hashlib

    cases: list[dict[str, Any]] = []
    for u in units:
        for i in u.chosen:
            turns = prod_turns[i]
            cid = int(prod_cluster[i])
            h = hashlib.sha256("\n".join(turns).encode("utf-8")).hexdigest()[:10]
            case_id = f"prod-{added:%Y%m%d}-{'noise' if cid < 0 else cid}-{h}"
            while case_id in taken_ids:
                case_id += "x"
            taken_ids.add(case_id)
            inp: Any = turns[0] if len(turns) == 1 else [{"role": "user", "content": t} for t in turns]
            cases.append(
                {
                    "id": case_id,
                    "input": inp,
                    "ideal": "",
                    "tags": ["needs-review"],
                    "provenance": {
                        "source": "production",
                        "added": added.isoformat(),
                        "cluster_id": cid,
                        "cluster_label": cluster_labels.get(cid, ""),
                    },
                    "metadata": {"refresh_unit": u.key},
                }
            )
    return cases
