"""Battles simulated from known Bradley-Terry strengths: shared by tests/test_arena.py and
benchmarks/arena_coverage.py, so the CI check and the full coverage study draw from one simulator."""

from __future__ import annotations

import math

import numpy as np

from benchrun.analysis.arena import Battle


def outcome(u: float, p: float, tau: float) -> str:
    """Verdict for the first model from a uniform ``u``: win, tie or loss with probabilities p − τ/2, τ, 1 − p − τ/2,
    so its expected score (ties half) is exactly p = σ(θ_i − θ_j): the Bradley-Terry model with ties as half a win."""
    return "win" if u < p - tau / 2 else ("tie" if u < p + tau / 2 else "loss")


def simulate(theta: np.ndarray, n_cases: int, pairs_per_case: int, seed: int | np.random.Generator, tie: float = 0.3,
             rho: float = 0.7) -> list[Battle]:
    """Battles from known log-strengths θ. Per case, ``pairs_per_case`` random pairs, each judged in both orders;
    the two orders share one uniform with probability ``rho`` (a consistent judge: battles on one case are
    correlated), otherwise each order draws its own. Ties have probability ``tie``·min(p, 1 − p). Every battle
    still has the exact BT marginal, so the true ratings are 1000 + 400·log10-odds of θ − mean θ."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    k = len(theta)
    out = []
    for c in range(n_cases):
        for _ in range(pairs_per_case):
            i, j = rng.choice(k, 2, replace=False)
            p = 1 / (1 + math.exp(-(theta[i] - theta[j])))
            tau = tie * min(p, 1 - p)
            u = rng.random()
            for first in (True, False):
                res = outcome(u if first or rng.random() < rho else rng.random(), p, tau)
                w = "tie" if res == "tie" else ("model_a" if (res == "win") == first else "model_b")
                out.append(Battle(f"m{i}", f"m{j}", w, case_id=f"c{c}") if first
                           else Battle(f"m{j}", f"m{i}", w, case_id=f"c{c}"))
    return out
