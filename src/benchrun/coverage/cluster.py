"""Clustering production traffic and placing eval cases in those clusters.

All vectors are unit length, so cosine similarity is a dot product and
Euclidean k-means on them approximates spherical k-means.

- k-means (default): ``k`` given, or ``k = clip(round(sqrt(n / 2)), 20, 80)``
  (the common rule of thumb k ≈ sqrt(n/2), Mardia et al. 1979), further capped at
  ``n // 5`` so that clusters hold about five queries or more. No silhouette
  search: it costs several fits and on sentence embeddings its optimum is flat.
  Fitted with a fixed seed and a small ``n_init``.
- HDBSCAN (``method="hdbscan"``, Campello et al. 2013; scikit-learn's
  implementation) for long-tailed traffic; its noise points form the
  ``UNCLUSTERED`` group (id -1).

At scale (more than ``fit_sample`` rows, default 100,000): k-means is fitted with
sklearn's ``MiniBatchKMeans`` (Sculley 2010, "Web-scale k-means clustering") on a
uniform random sample of ``fit_sample`` rows, and then every row is assigned to
the centroid of highest cosine similarity in chunks of ``ASSIGN_CHUNK`` rows, so
memory beyond the vectors themselves is O(chunk x k), not O(n). The vectors may
be any object that slices like an array (a numpy array, a memmap, a chunked
reader such as `benchrun.coverage.embed.CachedRows`); it is read in two passes
(one gathers both fit samples, one assigns every row to both fits). Shares, the outside test and refresh then use the full assignment.
Stability: a second fit on a different sample (disjoint when n >= 2 x fit_sample)
assigns every row again; its clusters are matched one to one to the first fit's
by the assignment that maximises total centroid cosine similarity (Hungarian
method, ``scipy.optimize.linear_sum_assignment``), and the JSD between the two
fits' matched production shares is reported (0 = the same shares). Up to
``fit_sample`` rows, the full-data ``KMeans`` fit above is used unchanged.

Eval cases: with k-means each goes to the nearest centroid; with HDBSCAN it
takes the group of its nearest production query (so it can land in
"unclustered"). An eval case is "outside production" when its similarity is
below the ``outside_percentile``-th percentile (default 1) of the same quantity
measured on production itself: similarity to the own centroid for k-means,
similarity to the nearest other production query for HDBSCAN.

Labels are c-TF-IDF top terms (Grootendorst 2022, BERTopic):
``w(t, c) = tf(t, c) / |c| * log(1 + A / f(t))`` with ``tf`` the count of term t
in cluster c, ``|c|`` the words in c, ``A`` the mean words per cluster and
``f(t)`` the count of t over all clusters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

UNCLUSTERED = -1
FIT_SAMPLE = 100_000
ASSIGN_CHUNK = 32_768
_WORD = r"(?u)\b[a-zA-Z][a-zA-Z0-9'_-]+\b"
K_MIN, K_MAX = 20, 80


@dataclass
class Clustering:
    """Cluster labels of production rows and one unit centroid per cluster id."""

    method: str
    labels: np.ndarray  # int per production row; -1 = unclustered (HDBSCAN noise)
    ids: list[int]  # cluster ids in use (sorted, may include -1)
    centroids: dict[int, np.ndarray]  # unit vectors
    k: int  # number of real clusters (without the unclustered group)
    sims: np.ndarray | None = None  # cosine similarity of each row to its centroid (streaming fit only)
    sample_size: int | None = None  # rows the centroids were fitted on (None: all)
    stability_jsd: float | None = None  # JSD between the shares of two fits on different samples


def choose_k(n: int, k_min: int = K_MIN, k_max: int = K_MAX) -> int:
    """``clip(round(sqrt(n/2)), k_min, k_max)``, at most ``n // 5`` (and at least 1)."""
    if n <= 0:
        raise ValueError("cannot cluster zero rows")
    k = min(max(round(math.sqrt(n / 2)), k_min), k_max)
    return max(1, min(k, n // 5 if n >= 5 else 1))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def kmeans(
    x: np.ndarray, k: int | None = None, *, seed: int = 0, n_init: int = 2, weights: np.ndarray | None = None
) -> Clustering:
    """k-means on unit vectors (sklearn ``KMeans``, Lloyd, k-means++ init)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = x.shape[0]
    k = choose_k(n) if k is None else k
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of production rows ({n}), got {k}")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    # float64 avoids sklearn's slow chunked upcast of float32; one thread is faster than two here on 2-core
    # machines (small BLAS calls, and any other busy process makes threaded k-means crawl)
    with threadpool_limits(limits=1):
        labels = km.fit_predict(x.astype(np.float64), sample_weight=weights).astype(int)
    ids = sorted(int(i) for i in np.unique(labels))
    centroids = {i: _unit(km.cluster_centers_[i]).astype(np.float32) for i in ids}
    return Clustering("kmeans", labels, ids, centroids, len(ids))


def _rows(x: Any, idx: np.ndarray, chunk: int = ASSIGN_CHUNK) -> np.ndarray:
    """The rows ``idx`` (sorted) of an array-like, read one chunk at a time (float32)."""
    return _rows_many(x, [idx], chunk)[0]


def _rows_many(x: Any, idxs: list[np.ndarray], chunk: int = ASSIGN_CHUNK) -> list[np.ndarray]:
    """The rows of each sorted index array in ``idxs``, in one pass over ``x`` (each chunk read at most once)."""
    outs = [np.empty((idx.size, x.shape[1]), dtype=np.float32) for idx in idxs]
    got = [0] * len(idxs)
    for s in range(0, x.shape[0], chunk):
        spans = [np.searchsorted(idx, [s, s + chunk]) for idx in idxs]
        if all(hi <= lo for lo, hi in spans):
            continue
        block = np.asarray(x[s : s + chunk], dtype=np.float32)
        for j, (idx, (lo, hi)) in enumerate(zip(idxs, spans, strict=True)):
            if hi > lo:
                outs[j][got[j] : got[j] + hi - lo] = block[idx[lo:hi] - s]
                got[j] += hi - lo
    return outs


def _fit_centroids(sample: np.ndarray, k: int, seed: int, n_init: int, weights: np.ndarray | None) -> np.ndarray:
    """Unit centroids (k x d, float32) of ``MiniBatchKMeans`` on the sample rows."""
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    km = MiniBatchKMeans(n_clusters=k, n_init=n_init, random_state=seed, batch_size=4096, max_no_improvement=20)
    with threadpool_limits(limits=1):
        km.fit(sample, sample_weight=weights)
    return _unit(km.cluster_centers_).astype(np.float32)


def assign_chunks(x: Any, centroids: np.ndarray, chunk: int = ASSIGN_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Index of the most cosine-similar centroid of every row, and that similarity, chunk by chunk."""
    return assign_chunks_many(x, [centroids], chunk)[0]


def assign_chunks_many(
    x: Any, centroid_sets: list[np.ndarray], chunk: int = ASSIGN_CHUNK
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`assign_chunks` for several centroid matrices in one pass over ``x`` (each chunk read once)."""
    n = x.shape[0]
    out = [(np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float32)) for _ in centroid_sets]
    cts = [np.ascontiguousarray(c.T, dtype=np.float32) for c in centroid_sets]
    for s in range(0, n, chunk):
        rows = np.asarray(x[s : s + chunk], dtype=np.float32)
        for (labels, sims), ct in zip(out, cts, strict=True):
            block = rows @ ct
            j = block.argmax(axis=1)
            labels[s : s + chunk] = j
            sims[s : s + chunk] = block[np.arange(block.shape[0]), j]
    return out


def _shares(labels: np.ndarray, k: int, weights: np.ndarray | None) -> np.ndarray:
    return np.bincount(labels, weights=weights, minlength=k).astype(float)


def matched_share_jsd(c1: np.ndarray, p1: np.ndarray, c2: np.ndarray, p2: np.ndarray) -> float:
    """JSD between the shares ``p1`` of fit 1 and ``p2`` of fit 2 after matching fit 2's clusters to fit 1's
    one to one (Hungarian method on centroid cosine similarity; see the module docstring)."""
    from scipy.optimize import linear_sum_assignment

    from benchrun.coverage.report import jensen_shannon_divergence

    rows, cols = linear_sum_assignment(-(c1 @ c2.T))
    return jensen_shannon_divergence(p1[rows], p2[cols])


def kmeans_at_scale(
    x: Any,
    k: int | None = None,
    *,
    seed: int = 0,
    n_init: int = 2,
    weights: np.ndarray | None = None,
    fit_sample: int = FIT_SAMPLE,
    stability: bool = True,
    chunk: int = ASSIGN_CHUNK,
) -> Clustering:
    """k-means for any n: `kmeans` up to ``fit_sample`` rows, else a sampled fit + streaming assignment.

    ``x`` is a numpy array or anything that slices like one (rows are read ``chunk`` at a time).
    """
    n = x.shape[0]
    if n <= fit_sample:
        return kmeans(np.asarray(x), k, seed=seed, n_init=n_init, weights=weights)
    k = choose_k(n) if k is None else k
    if not 1 <= k <= fit_sample:
        raise ValueError(f"k must be between 1 and the fit sample ({fit_sample}), got {k}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    first = np.sort(perm[:fit_sample])
    # the stability fit's sample: the next fit_sample rows of the permutation (disjoint when n >= 2 x fit_sample)
    second = None
    if stability:
        second = np.sort(perm[fit_sample : 2 * fit_sample] if n >= 2 * fit_sample else rng.choice(n, fit_sample, False))
    # two passes over x whatever the options: one reads both samples, one assigns every row to both fits
    samples = _rows_many(x, [first] if second is None else [first, second], chunk)
    w1 = weights[first] if weights is not None else None
    cents = _fit_centroids(samples[0], k, seed, n_init, w1)
    sets = [cents]
    if second is not None:
        w2 = weights[second] if weights is not None else None
        sets.append(_fit_centroids(samples[1], k, seed + 1, n_init, w2))
    del samples
    assigned = assign_chunks_many(x, sets, chunk)
    labels, sims = assigned[0]
    ids = sorted(int(i) for i in np.unique(labels))
    stab: float | None = None
    if second is not None:
        labels2 = assigned[1][0]
        stab = matched_share_jsd(cents, _shares(labels, k, weights), sets[1], _shares(labels2, k, weights))
    del assigned
    return Clustering(
        "kmeans",
        labels.astype(int),
        ids,
        {i: cents[i] for i in ids},
        len(ids),
        sims=sims,
        sample_size=fit_sample,
        stability_jsd=stab,
    )


def hdbscan(x: np.ndarray, *, min_cluster_size: int | None = None, seed: int = 0) -> Clustering:
    """HDBSCAN (sklearn) on unit vectors; noise is the `UNCLUSTERED` group.

    For speed, vectors are first reduced to at most 32 PCA components; Euclidean
    distance on unit vectors is monotone in cosine distance.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    n = x.shape[0]
    mcs = min_cluster_size or max(5, n // 400)
    if n < 2:
        labels = np.full(n, UNCLUSTERED)
    else:
        dims = min(32, x.shape[1], n - 1)
        with threadpool_limits(limits=1):
            z = PCA(n_components=dims, random_state=seed).fit_transform(x) if dims < x.shape[1] else x
            labels = HDBSCAN(min_cluster_size=max(2, mcs), copy=True).fit_predict(z).astype(int)
    ids = sorted(int(i) for i in np.unique(labels))
    centroids = {i: _unit(x[labels == i].mean(axis=0)).astype(np.float32) for i in ids}
    return Clustering("hdbscan", labels, ids, centroids, len([i for i in ids if i != UNCLUSTERED]))


def _centroid_matrix(c: Clustering) -> tuple[list[int], np.ndarray]:
    ids = [i for i in c.ids if i != UNCLUSTERED]
    return ids, np.stack([c.centroids[i] for i in ids]) if ids else np.zeros((0, 0), dtype=np.float32)


def nearest_neighbour_sims(a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``: (index of most similar row of ``b``, that cosine similarity)."""
    idx = np.zeros(a.shape[0], dtype=int)
    sim = np.zeros(a.shape[0], dtype=np.float32)
    for s in range(0, a.shape[0], chunk):
        block = a[s : s + chunk] @ b.T
        if exclude_self:
            r = np.arange(block.shape[0])
            block[r, s + r] = -np.inf
        idx[s : s + chunk] = block.argmax(axis=1)
        sim[s : s + chunk] = block[np.arange(block.shape[0]), idx[s : s + chunk]]
    return idx, sim


def production_similarities(x: np.ndarray, c: Clustering) -> np.ndarray:
    """The reference distribution for "outside production" (see the module docstring)."""
    if c.sims is not None:
        return c.sims
    if c.method == "hdbscan":
        if x.shape[0] < 2:
            return np.ones(x.shape[0], dtype=np.float32)
        return nearest_neighbour_sims(x, x, exclude_self=True)[1]
    return np.einsum("ij,ij->i", x, np.stack([c.centroids[int(lab)] for lab in c.labels]))


def assign(
    x_prod: np.ndarray, c: Clustering, x_eval: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster id and similarity (as used for the outside test) of each eval vector."""
    if x_eval.shape[0] == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
    if c.method == "hdbscan":
        idx, sim = nearest_neighbour_sims(x_eval, x_prod)
        return c.labels[idx].astype(int), sim
    ids, cm = _centroid_matrix(c)
    j, sim = nearest_neighbour_sims(x_eval, cm)
    return np.array([ids[i] for i in j], dtype=int), sim


def outside_threshold(prod_sims: np.ndarray, percentile: float = 1.0) -> float:
    """The ``percentile``-th percentile of production's own similarities (linear interpolation)."""
    if prod_sims.size == 0:
        return -1.0
    return float(np.percentile(prod_sims, percentile))


def representatives(x: Any, texts: list[str], c: Clustering, n: int = 3) -> dict[int, list[str]]:
    """Per cluster, the ``n`` distinct production texts closest to its centroid.

    After a sampled fit the similarities kept from the assignment (``c.sims``) are used, so ``x`` is not read.
    """
    out: dict[int, list[str]] = {}
    for i in c.ids:
        members = np.flatnonzero(c.labels == i)
        sims = c.sims[members] if c.sims is not None else x[members] @ c.centroids[i]
        picked: list[str] = []
        seen: set[str] = set()
        for j in members[np.argsort(-sims, kind="stable")]:
            key = " ".join(texts[j].lower().split())
            if key in seen:
                continue
            seen.add(key)
            picked.append(texts[j])
            if len(picked) == n:
                break
        out[i] = picked
    return out


def ctfidf_labels(texts: list[str], labels: np.ndarray, ids: list[int], top: int = 3) -> dict[int, str]:
    """c-TF-IDF top terms per cluster, joined with " / " (formula in the module docstring)."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(texts[j] for j in np.flatnonzero(labels == i)) for i in ids]
    try:
        vec = CountVectorizer(stop_words="english", token_pattern=_WORD)
        counts = vec.fit_transform(docs)
    except ValueError:  # only stop words
        return {i: "(no terms)" for i in ids}
    terms = vec.get_feature_names_out()
    # sparse throughout: the vocabulary of a million queries is large, and a dense clusters x terms matrix is
    # not (80 x 1M terms x 8 bytes = 640 MB per copy). Zero counts have weight 0 and are never chosen.
    counts = counts.tocsr()
    counts.sort_indices()
    words = np.asarray(counts.sum(axis=1), dtype=float).ravel()
    f = np.asarray(counts.sum(axis=0), dtype=float).ravel()
    a = float(words.mean())
    idf = np.log(1.0 + a / np.where(f == 0, 1.0, f))
    out: dict[int, str] = {}
    for r, i in enumerate(ids):
        lo, hi = counts.indptr[r], counts.indptr[r + 1]
        cols = counts.indices[lo:hi]
        w = counts.data[lo:hi].astype(float) / (words[r] if words[r] != 0 else 1.0) * idf[cols]
        order = np.argsort(-w, kind="stable")
        chosen = [terms[cols[j]] for j in order[:top] if w[j] > 0]
        out[i] = " / ".join(chosen) if chosen else "(no terms)"
    return out
