"""Coverage of the arena's case-bootstrap intervals, and the tie rule's false positives, by simulation.

8 models with known Bradley-Terry strengths (Elo 1000 +- 650), 200 cases, 3 random pairs per case
each judged in both orders (6 battles), ties, and a consistent judge: the two orders share their
randomness with probability 0.7, so battles on one case are correlated (which is why the bootstrap
resamples cases; the same study with battles resampled is printed for contrast).
Each repetition rates a fresh data set with `benchrun.analysis.arena.rate` and checks whether each
model's 95% interval contains its true rating (mean-anchored at 1000); target 0.93-0.97.
A second study rates 6 equal models and counts data sets in which any pair is called untied
(target at most 5%).

    .venv/bin/python benchmarks/arena_coverage.py --reps 200 --draws 1000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchrun.analysis.arena import ELO_SCALE, Battle, rate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from arenasim import simulate  # the tests' simulator: one source of simulated battles


def _coverage(theta: np.ndarray, a: argparse.Namespace, rng: np.random.Generator, by_case: bool) -> np.ndarray:
    truth = 1000 + ELO_SCALE * (theta - theta.mean())
    covered = np.zeros(len(theta))
    for rep in range(a.reps):
        battles = simulate(theta, a.cases, 3, rng)
        if not by_case:
            battles = [Battle(b.model_a, b.model_b, b.winner) for b in battles]
        res = rate(battles, n_boot=a.draws, seed=rep, by_category=False)
        for r in res.ratings:
            i = int(r.model[1:])
            covered[i] += r.interval.low <= truth[i] <= r.interval.high
    return covered / a.reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    theta = np.linspace(-1.5, 1.5, 8)
    t0 = time.perf_counter()
    se = math.sqrt(0.95 * 0.05 / (8 * a.reps))
    for by_case, label in ((True, "bootstrap over cases (benchrun)"), (False, "bootstrap over battles (for contrast)")):
        cov = _coverage(theta, a, rng, by_case)
        print(f"{label}: coverage of 95% rating intervals, 8 models x {a.cases} cases x 6 battles, {a.reps} reps, "
              f"{a.draws} draws: {cov.mean():.3f} overall (MC se about {se:.3f}; target 0.93-0.97); per model "
              + " ".join(f"{c:.3f}" for c in cov), flush=True)
    untied = 0
    for rep in range(a.reps):
        res = rate(simulate(np.zeros(6), a.cases, 3, rng), n_boot=a.draws, seed=10_000 + rep, by_category=False)
        untied += any(not t.tied for t in res.tests)
    print(f"equal models: data sets with any untied pair {untied}/{a.reps} = {untied / a.reps:.3f} (target <= 0.05)")
    print(f"time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
