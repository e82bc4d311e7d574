"""Coverage at production scale: 10k queries cold (empty embedding cache) and warm.

    .venv/bin/python benchmarks/coverage_scale.py [--production ../shared/data/banking77/train.csv]

Runs pure embedding, a cold run and a warm run ``--repeat`` times, interleaved, and prints
the minimum of each (robust to interference from other processes): wall times, the share of the cold run spent embedding, and the ratios to the targets:
cold within 1.3x of pure embedding time (load the model + encode the same texts with
sentence-transformers directly), warm under 5 s. Wall-clock numbers depend on the machine
and on whatever else is running; compare ratios, and rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PRODUCTION = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
EVAL_POOL = ROOT / "tests" / "fixtures" / "banking77" / "eval_pool.csv"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--production", type=Path, default=DEFAULT_PRODUCTION, help="CSV with a 'text' column")
    ap.add_argument("--eval-cases", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="repetitions; the minimum time of each kind is reported")
    args = ap.parse_args()
    if not args.production.exists():
        print(f"production file {args.production} not found; pass --production", file=sys.stderr)
        return 2

    import yaml

    with open(EVAL_POOL, encoding="utf-8", newline="") as f:
        pool = list(csv.DictReader(f))
    step = max(1, len(pool) // args.eval_cases)
    eval_rows = pool[::step][: args.eval_cases]
    with open(args.production, encoding="utf-8", newline="") as f:
        prod_texts = [r["text"] for r in csv.DictReader(f)]

    t = time.perf_counter()
    import sentence_transformers  # noqa: F401 - imported up front so no timing below includes it
    import sklearn.cluster  # noqa: F401

    from benchrun.coverage import run_coverage
    from benchrun.coverage.embed import resolve_model

    t_import = time.perf_counter() - t

    from sentence_transformers import SentenceTransformer

    _, target = resolve_model(None)
    pure: list[tuple[float, float, float]] = []  # (wall, cpu, load)
    colds: list[tuple[float, float, dict]] = []  # (wall, cpu, report)
    warms: list[tuple[float, float, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "eval.yaml"
        cases = [{"id": f"e{i}", "input": r["text"]} for i, r in enumerate(eval_rows)]
        ds.write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": cases}), encoding="utf-8")
        unique = list(dict.fromkeys(prod_texts + [r["text"] for r in eval_rows]))
        for rep in range(args.repeat):
            # pure embedding: load the model and encode the same unique texts, nothing else
            w, c = time.perf_counter(), time.process_time()
            model = SentenceTransformer(target, device="cpu")
            t_load = time.perf_counter() - w
            model.encode(unique, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
            pure.append((time.perf_counter() - w, time.process_time() - c, t_load))
            del model
            # the full coverage run with an empty cache
            cache = Path(tmp) / f"emb{rep}.sqlite"
            w, c = time.perf_counter(), time.process_time()
            cold = run_coverage(args.production, ds, cache_path=cache, batch_size=args.batch_size)
            colds.append((time.perf_counter() - w, time.process_time() - c, cold))
            w, c = time.perf_counter(), time.process_time()
            warm = run_coverage(args.production, ds, cache_path=cache, batch_size=args.batch_size)
            warms.append((time.perf_counter() - w, time.process_time() - c, warm))
            print(f"  repeat {rep + 1}: pure {pure[-1][0]:.1f} s, cold {colds[-1][0]:.1f} s, warm {warms[-1][0]:.2f} s "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)

    t_pure, c_pure = min(p[0] for p in pure), min(p[1] for p in pure)
    t_load = min(p[2] for p in pure)
    t_cold, c_cold, cold = min(colds, key=lambda x: x[0])
    c_cold = min(x[1] for x in colds)
    t_warm, _, warm = min(warms, key=lambda x: x[0])
    t_encode = t_pure - t_load
    ct, wt = cold["timing"], warm["timing"]
    n = cold["production"]["units"]
    print(f"production: {n} queries ({len(unique)} unique texts incl. {len(eval_rows)} eval cases); k={cold['params']['k']}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (imports took {t_import:.1f} s, untimed)")
    print(f"best of {args.repeat} (wall clock):")
    print(f"pure embedding : {t_pure:7.2f} s  (model load {t_load:.2f} s + encode {t_encode:.2f} s, "
          f"{len(unique) / t_encode:.0f} texts/s)")
    print(f"cold run       : {t_cold:7.2f} s  (embedding {ct['embed_s']:.2f} s = {100 * ct['embed_s'] / t_cold:.1f}% "
          f"of the run; cache {ct['cache_s']:.2f} s, clustering {ct['cluster_s']:.2f} s, "
          f"report {ct['analyse_s']:.2f} s, loading {ct['load_s']:.2f} s)")
    print(f"warm run       : {t_warm:7.2f} s  (embedded {wt['embedding']['n_embedded']} texts, "
          f"{100 * wt['embed_s'] / t_warm:.1f}% embedding; cache {wt['cache_s']:.2f} s, "
          f"clustering {wt['cluster_s']:.2f} s)")
    ratio = t_cold / t_pure
    print(f"cold / pure embedding = {ratio:.2f}x  (target <= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'})")
    print(f"cold / encode only    = {t_cold / t_encode:.2f}x")
    print(f"CPU time: pure {c_pure:.1f} s, cold {c_cold:.1f} s, ratio {c_cold / c_pure:.2f}x (less sensitive to other load)")
    print(f"warm = {t_warm:.2f} s  (target < 5 s: {'met' if t_warm < 5 else 'MISSED'})")
    same = cold["score"] == warm["score"] and cold["clusters"] == warm["clusters"]
    print(f"cold and warm reports identical: {same}; JSD {cold['score']['jsd']:.4f} ({cold['score']['band']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
