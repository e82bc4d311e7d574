"""How long `benchrun arena` takes on a large battle set.

100,000 battles among 50 models on 10,000 cases (10 battles per case), 10% ties, rated with
1,000 case-bootstrap draws (Bradley-Terry fit per draw, pair tests, rank intervals, win-rate
matrix). Prints the wall time of `benchrun.analysis.arena.rate` and its ratio to the 30 s target.

    .venv/bin/python benchmarks/arena_scale.py            # the full size
    .venv/bin/python benchmarks/arena_scale.py --draws 50 # a quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchrun.analysis.arena import Battle, rate

TARGET_S = 30.0


def simulate(n_battles: int, n_models: int, n_cases: int, seed: int = 0) -> list[Battle]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, n_models)
    names = [f"model-{i:02d}" for i in range(n_models)]
    i = rng.integers(0, n_models, n_battles)
    j = (i + rng.integers(1, n_models, n_battles)) % n_models
    p = 1 / (1 + np.exp(-(theta[i] - theta[j])))
    u = rng.random(n_battles)
    tie = rng.random(n_battles) < 0.1
    case = rng.integers(0, n_cases, n_battles)
    winner = np.where(tie, "tie", np.where(u < p, "model_a", "model_b"))
    return [Battle(names[a], names[b], str(w), case_id=f"c{c}") for a, b, w, c in zip(i, j, winner, case, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--draws", type=int, default=1000)
    a = ap.parse_args()
    battles = simulate(a.battles, a.models, a.cases)
    t0 = time.perf_counter()
    res = rate(battles, n_boot=a.draws, by_category=False)
    dt = time.perf_counter() - t0
    print(f"{a.battles} battles, {a.models} models, {res.n_cases} cases, {a.draws} bootstrap draws: "
          f"{dt:.1f} s (target < {TARGET_S:.0f} s at 1,000 draws; ratio {dt / TARGET_S:.2f})")
    top = res.ratings[0]
    print(f"top: {top.model} {top.rating:.0f} [{top.interval.low:.0f}, {top.interval.high:.0f}], "
          f"rank interval {top.rank_interval}")


if __name__ == "__main__":
    main()
