"""Coverage at production scale: 10k queries cold (empty embedding cache) and warm; or, with ``--n``,
k-means on N precomputed vectors (fit on a sample, every vector assigned in chunks).

    .venv/bin/python benchmarks/coverage_scale.py [--production ../shared/data/banking77/train.csv]
    .venv/bin/python benchmarks/coverage_scale.py --n 1000000 [--dim 384 --fit-sample 100000]
    .venv/bin/python benchmarks/coverage_scale.py --pipeline --n 1000000 [--fake-embedder] [--refresh 50]

With ``--n``: N unit vectors are made by random projection (a Gaussian D x dim matrix) of
points around ``--topics`` latent centres in D=64 dimensions, written as float32 to a temporary
file in chunks (untimed); a child process then reads them back in chunks (plain reads, no
memory map, so nothing of the file stays resident) and runs the library's steps: the
sampled MiniBatchKMeans fit, the chunked assignment of all N, and the second fit + assignment
that gives the stability JSD. It prints each step's wall time and the process's peak RSS
after it (``VmHWM``, so it includes the Python + numpy + sklearn baseline, also printed),
against the targets: under 60 s and under 2 GB for 1M x 384 on 2 cores. The machine is shared:
the load average is printed next to the numbers.

With ``--pipeline --n N``: the whole ``benchrun coverage`` pipeline (``--refresh M``: refresh for M cases)
on N synthetic production rows (word topics, one unique tag each) and 300 eval cases, in a child process
that prints its wall time, the report's timing split and its peak RSS. By default the embedding cache is
pre-filled with the rows' random-projection vectors (untimed, so the run is warm and has no model time);
``--fake-embedder`` embeds them cold through tests/fakeserver.py's ``/v1/embeddings``, served from this
parent process. Above ``--fit-sample`` the run streams the vectors through the cache (docs/scale.md).

Without ``--n``:

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


def _peak_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which a child inherits)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class F32Rows:
    """Rows of a headerless float32 file, read a slice at a time (what the clustering code slices)."""

    def __init__(self, path: Path, n: int, dim: int) -> None:
        self.path, self.shape = path, (n, dim)

    def __getitem__(self, s: slice) -> object:
        import numpy as np

        start, stop, _ = s.indices(self.shape[0])
        count = max(0, stop - start) * self.shape[1]
        return np.fromfile(self.path, dtype=np.float32, count=count, offset=start * self.shape[1] * 4).reshape(
            -1, self.shape[1])


def _write_vectors(path: Path, n: int, dim: int, topics: int, seed: int, chunk: int = 65_536) -> Path:
    """Random-projection embeddings (see the module docstring) and their latent topics, written in chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.normal(size=(topics, latent))
    proj = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    topic_file = path.with_suffix(".topics")
    with open(path, "wb") as f, open(topic_file, "wb") as t:
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            z = rng.integers(0, topics, m)
            pts = centres[z] + 0.6 * rng.normal(size=(m, latent))
            x = (pts @ proj).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            f.write(x.tobytes())
            t.write(z.astype(np.int32).tobytes())
    return topic_file


def _scale_child(args: argparse.Namespace) -> int:
    import numpy as np

    from benchrun.coverage import cluster as cl

    print(f"baseline after imports: peak RSS {_peak_mb():.0f} MB", flush=True)
    x = F32Rows(args.vectors, args.n, args.dim)
    k = args.k or cl.choose_k(args.n)
    m = min(args.fit_sample, args.n)
    rng = np.random.default_rng(0)
    perm = rng.permutation(args.n)
    t0 = time.perf_counter()
    first = np.sort(perm[:m])
    cents = cl._fit_centroids(cl._rows(x, first), k, 0, 2, None)
    t_fit = time.perf_counter() - t0
    print(f"fit      : {t_fit:6.1f} s  MiniBatchKMeans k={k} on a sample of {m} x {args.dim}   "
          f"peak RSS {_peak_mb():.0f} MB  (load average {os.getloadavg()[0]:.1f})", flush=True)
    t0 = time.perf_counter()
    labels, _sims = cl.assign_chunks(x, cents)  # the similarities are kept, as the pipeline keeps them
    t_assign = time.perf_counter() - t0
    print(f"assign   : {t_assign:6.1f} s  all {args.n} vectors, {cl.ASSIGN_CHUNK} per chunk        "
          f"peak RSS {_peak_mb():.0f} MB  (load average {os.getloadavg()[0]:.1f})", flush=True)
    t0 = time.perf_counter()
    second = np.sort(perm[m : 2 * m]) if args.n >= 2 * m else np.sort(rng.choice(args.n, m, replace=False))
    cents2 = cl._fit_centroids(cl._rows(x, second), k, 1, 2, None)
    labels2, _ = cl.assign_chunks(x, cents2)
    stab = cl.matched_share_jsd(cents, np.bincount(labels, minlength=k).astype(float), cents2,
                                np.bincount(labels2, minlength=k).astype(float))
    t_stab = time.perf_counter() - t0
    print(f"stability: {t_stab:6.1f} s  second fit + assignment, shares JSD {stab:.5f}    "
          f"peak RSS {_peak_mb():.0f} MB  (load average {os.getloadavg()[0]:.1f})", flush=True)
    from sklearn.metrics import adjusted_rand_score

    topics = np.fromfile(args.vectors.with_suffix(".topics"), dtype=np.int32)
    total, peak = t_fit + t_assign + t_stab, _peak_mb()
    print(f"agreement with the {args.topics} latent topics (adjusted Rand index): {adjusted_rand_score(topics, labels):.3f}")
    print(f"fit + assign = {t_fit + t_assign:.1f} s, with stability {total:.1f} s  "
          f"(target < 60 s: {'met' if total < 60 else 'MISSED'}); peak RSS {peak:.0f} MB "
          f"(target < 2048 MB: {'met' if peak < 2048 else 'MISSED'}); {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"a float32 matrix of all vectors would take {args.n * args.dim * 4 / 2**20:.0f} MB on its own")
    return 0


PIPELINE_MODEL = "litellm:openai/text-embedding-3-small"


def _pipeline_inputs(tmp: Path, n: int, dim: int, topics: int, precompute: bool, eval_cases: int = 300) -> None:
    """N synthetic production rows (``prod.csv``), an eval set (``eval.yaml``) and, with ``precompute``, the
    embedding cache (``emb.sqlite``) pre-filled with their random-projection vectors (all untimed).

    Query i of latent topic z is four of z's eight words, three of 2,000 shared words and a unique tag; its
    vector is the random projection of a point around z's centre (as `_write_vectors`).
    """
    import numpy as np
    import yaml

    from benchrun.coverage.embed import EmbeddingCache, text_hash

    rng = np.random.default_rng(7)
    latent = 64
    centres = rng.normal(size=(topics, latent))
    proj = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    topic_words = np.array([[f"topic{t}word{w}" for w in range(8)] for t in range(topics)])
    common = np.array([f"common{w}" for w in range(2000)])
    skew = 1.0 / np.arange(1, topics + 1)  # Zipf-like topic shares, as production traffic has
    skew /= skew.sum()

    def batch(m: int, start: int, p: np.ndarray) -> tuple[list[str], np.ndarray]:
        z = rng.choice(topics, m, p=p)
        tw = topic_words[z[:, None], rng.integers(0, 8, (m, 4))]
        cw = common[rng.integers(0, 2000, (m, 3))]
        texts = [" ".join([*a, *b, f"tag{start + i:x}"]) for i, (a, b) in enumerate(zip(tw, cw, strict=True))]
        x = ((centres[z] + 0.6 * rng.normal(size=(m, latent))) @ proj).astype(np.float32)
        return texts, x / np.linalg.norm(x, axis=1, keepdims=True)

    cache = EmbeddingCache(tmp / "emb.sqlite") if precompute else None
    with open(tmp / "prod.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        for s in range(0, n, 65_536):
            texts, x = batch(min(65_536, n - s), s, skew)
            w.writerows([t] for t in texts)
            if cache is not None:
                cache.put_many(PIPELINE_MODEL, [(text_hash(t), v) for t, v in zip(texts, x, strict=True)])
    eval_texts, ex = batch(eval_cases, 10**9, np.full(topics, 1.0 / topics))  # eval: uniform over topics
    if cache is not None:
        cache.put_many(PIPELINE_MODEL, [(text_hash(t), v) for t, v in zip(eval_texts, ex, strict=True)])
        cache.close()
    cases = [{"id": f"e{i}", "input": t} for i, t in enumerate(eval_texts)]
    (tmp / "eval.yaml").write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": cases}), encoding="utf-8")


def _pipeline_child(args: argparse.Namespace) -> int:
    from benchrun.coverage import run_coverage, run_refresh

    print(f"baseline after imports: peak RSS {_peak_mb():.0f} MB", flush=True)
    tmp = args.vectors
    opts = {"model": PIPELINE_MODEL, "cache_path": tmp / "emb.sqlite", "fit_sample": args.fit_sample,
            "api_base": args.api_base or None, "k": args.k or None}
    t0 = time.perf_counter()
    if args.refresh:
        res = run_refresh(tmp / "prod.csv", tmp / "eval.yaml", args.refresh, None, **opts)
        rep = res["coverage"]
    else:
        rep = run_coverage(tmp / "prod.csv", tmp / "eval.yaml", **opts)
    wall, peak = time.perf_counter() - t0, _peak_mb()
    t, e, prm = rep["timing"], rep["timing"]["embedding"], rep["params"]
    what = f"refresh --n {args.refresh}" if args.refresh else "coverage"
    print(f"{what} on {rep['production']['units']} queries: {wall:.1f} s wall, peak RSS {peak:.0f} MB; "
          f"streamed={prm['streamed']}, fit sample {prm['fit_sample_size']}, k={prm['k']}, "
          f"JSD {rep['score']['jsd']:.4f}, stability JSD {prm['stability_jsd']}")
    print(f"  load {t['load_s']:.1f} s, embedding {t['embed_s']:.1f} s ({e['n_embedded']} texts embedded, "
          f"{e['n_cached']} from the cache), cache {t['cache_s']:.1f} s + re-reads {t['cache_reread_s']:.1f} s, "
          f"clustering {t['cluster_s']:.1f} s, labels + table {t['analyse_s']:.1f} s")
    print(f"  a float32 matrix of all vectors would take {rep['production']['units'] * args.dim * 4 / 2**20:.0f} MB "
          f"on its own; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    import contextlib
    import subprocess

    sys.path.insert(0, str(ROOT / "tests"))
    from fakeserver import FakeServer

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    n = args.n or 100_000
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        _pipeline_inputs(tmp, n, args.dim, args.topics, precompute=not args.fake_embedder)
        print(f"wrote {n} production rows{'' if args.fake_embedder else ' and their precomputed vectors'} in "
              f"{time.perf_counter() - t0:.1f} s (untimed)", flush=True)
        with contextlib.ExitStack() as stack:
            url = ""
            if args.fake_embedder:  # in this (parent) process, so its CPU is not in the child's figures
                url = stack.enter_context(FakeServer({"embedding_dim": args.dim})).url
                print(f"embedding through the test server's /v1/embeddings at {url} (cold cache)", flush=True)
            cmd = [sys.executable, __file__, "--pipeline-child", "--vectors", str(tmp), "--n", str(n), "--dim",
                   str(args.dim), "--fit-sample", str(args.fit_sample), "--k", str(args.k or 0),
                   "--refresh", str(args.refresh), "--api-base", url]
            return subprocess.call(cmd)


def _scale(args: argparse.Namespace) -> int:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.f32"
        t0 = time.perf_counter()
        _write_vectors(path, args.n, args.dim, args.topics, seed=1)
        print(f"wrote {args.n} x {args.dim} float32 vectors ({path.stat().st_size / 2**20:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s (untimed below)", flush=True)
        cmd = [sys.executable, __file__, "--child", "--vectors", str(path), "--n", str(args.n), "--dim", str(args.dim),
               "--fit-sample", str(args.fit_sample), "--topics", str(args.topics), "--k", str(args.k or 0)]
        return subprocess.call(cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="k-means at scale on N precomputed vectors (see above)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--fit-sample", type=int, default=100_000)
    ap.add_argument("--topics", type=int, default=80, help="latent topics of the generated vectors")
    ap.add_argument("--k", type=int, default=0, help="clusters (default: the pipeline's choose_k(n))")
    ap.add_argument("--pipeline", action="store_true",
                    help="the whole `benchrun coverage` pipeline on --n synthetic production rows (see above)")
    ap.add_argument("--fake-embedder", action="store_true",
                    help="with --pipeline: embed through tests/fakeserver.py (cold) instead of a precomputed cache")
    ap.add_argument("--refresh", type=int, default=0, help="with --pipeline: run refresh for this many cases")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pipeline-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--api-base", default="", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--production", type=Path, default=DEFAULT_PRODUCTION, help="CSV with a 'text' column")
    ap.add_argument("--eval-cases", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="repetitions; the minimum time of each kind is reported")
    args = ap.parse_args()
    if args.child:
        return _scale_child(args)
    if args.pipeline_child:
        return _pipeline_child(args)
    if args.pipeline:
        return _pipeline(args)
    if args.n is not None:
        return _scale(args)
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
