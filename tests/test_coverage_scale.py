"""Coverage at production scale: remote embedders through the provider gateway, and k-means fitted on a
sample with every query assigned in chunks (docs/scale.md).

Remote embeddings come from our test server's ``/v1/embeddings`` (a hashed bag of words per text), reached
through the real gateway and CLI; clustering is checked against sklearn's full-data k-means and brute force.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from benchrun.cli.coverage import build_app
from benchrun.coverage import cluster as cl
from benchrun.coverage.embed import EmbeddingCache, text_hash
from fakeserver import FakeServer, count_tokens, embedding_vector

FIX = Path(__file__).parent / "fixtures" / "banking77"
MODEL = "litellm:openai/text-embedding-3-small"


def _texts(name: str) -> list[str]:
    with open(FIX / name, encoding="utf-8", newline="") as f:
        return [r["text"] for r in csv.DictReader(f)]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    prod = tmp_path / "prod.csv"
    prod.write_text((FIX / "production.csv").read_text(encoding="utf-8"), encoding="utf-8")
    cases = [{"id": f"e{i}", "input": t} for i, t in enumerate(_texts("eval_pool.csv")[:120])]
    ds = tmp_path / "eval.yaml"
    ds.write_text(yaml.safe_dump({"name": "bank", "version": "1", "cases": cases}), encoding="utf-8")
    return {"prod": prod, "ds": ds, "cache": tmp_path / "emb.sqlite"}


def _cli(files: dict[str, Path], *extra: str) -> Any:
    args = ["coverage", "-p", str(files["prod"]), "-d", str(files["ds"]), "--no-store", "--cache", str(files["cache"]),
            "--embedder", MODEL, *extra]
    return CliRunner().invoke(build_app(), args)


def _price_per_token() -> float:
    import litellm

    return float(litellm.model_cost["text-embedding-3-small"]["input_cost_per_token"])


def test_remote_embedder_end_to_end_with_retries_cost_and_cache(files: dict[str, Path]) -> None:
    # every batch: a 429 (Retry-After 0), then a 503, then the vectors
    faults = [{"kind": "429", "first_n": 1, "retry_after": 0}, {"kind": "503", "first_n": 1}]
    # 100 ms per request: the server counts a request in flight until it starts its reply, so the batches must
    # take long enough to overlap there for the concurrency to show
    with FakeServer({"faults": faults, "embedding_dim": 48, "latency_ms": 100}) as srv:
        res = _cli(files, "--api-base", srv.url, "--batch-size", "100", "--embed-concurrency", "4", "--json")
        assert res.exit_code == 0, res.output
        rep = json.loads(res.output)
        reqs = srv.requests()
        assert {r.path for r in reqs} == {"/v1/embeddings"}
        assert max(len(r.messages) for r in reqs) == 100  # batched
        assert srv.stats()["max_in_flight"] > 1  # concurrent
        ok = [r for r in reqs if r.outcome == "ok"]
        failed = [r for r in reqs if r.outcome != "ok"]
        texts = list(dict.fromkeys(_texts("production.csv") + _texts("eval_pool.csv")[:120]))
        assert len(ok) == -(-len(texts) // 100)
        assert sorted(r.outcome for r in failed) == sorted(["429", "503"] * len(ok))
        assert sorted(m["content"] for r in ok for m in r.messages) == sorted(texts)  # each text paid for once
        cost = rep["cost"]
        tokens = sum(count_tokens(t) for t in texts)
        assert cost["embedding_tokens"] == tokens and not cost["tokens_estimated"]
        assert cost["embedding_requests"] == len(reqs) and cost["embedding_retries"] == len(failed)
        assert cost["embedding_usd"] == pytest.approx(tokens * _price_per_token(), rel=1e-9)
        assert rep["timing"]["embedding"]["n_embedded"] == len(texts)
        # the cache holds the server's vectors, normalised, under the embedder's name
        with EmbeddingCache(files["cache"]) as c:
            got = c.get_many(MODEL, [text_hash(texts[0])])[text_hash(texts[0])]
        want = np.asarray(embedding_vector(texts[0], 48), dtype=np.float32)
        np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-6)
        assert rep["params"]["model"] == MODEL and rep["params"]["embedder_api_base"] == srv.url

        srv.reset()
        warm = _cli(files, "--api-base", srv.url, "--json")
        assert warm.exit_code == 0, warm.output
        w = json.loads(warm.output)
        assert srv.stats()["total"] == 0 and w["cost"]["embedding_usd"] == 0.0
        assert w["score"] == rep["score"] and w["clusters"] == rep["clusters"]


def test_remote_embedder_that_keeps_failing_exits_3_in_one_line_and_keeps_what_it_got(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-embedtest-0123456789abcdef"
    monkeypatch.setenv("H22C_EMBED_KEY", key)
    with open(files["prod"], "a", encoding="utf-8") as f:
        f.write("xyzzy where is my refund,refund\r\n")  # only the batch holding this query fails
    with FakeServer({"faults": [{"kind": "401", "contains": "xyzzy", "first_n": 1000}]}) as srv:
        res = _cli(files, "--api-base", srv.url, "--api-key-env", "H22C_EMBED_KEY", "--batch-size", "50")
        assert res.exit_code == 3, res.output
        out = res.output.strip()
        assert "\n" not in out and "Traceback" not in out and key not in out
        assert "AuthenticationError" in out and "re-run pays only for the rest" in out
        assert all(r.api_key == key for r in srv.requests())
        paid = {m["content"] for r in srv.requests() if r.outcome == "ok" for m in r.messages}
        with EmbeddingCache(files["cache"]) as c:
            assert c.count(MODEL) == len(paid) > 0  # batches that came back were cached
        srv.set_config({})
        srv.reset()
        res = _cli(files, "--api-base", srv.url, "--api-key-env", "H22C_EMBED_KEY", "--json")
        assert res.exit_code == 0, res.output
        again = {m["content"] for r in srv.requests() for m in r.messages}
        assert again and not again & paid  # nothing paid twice


def test_remote_options_without_remote_embedder_are_usage_errors(files: dict[str, Path]) -> None:
    res = CliRunner().invoke(build_app(), ["coverage", "-p", str(files["prod"]), "-d", str(files["ds"]), "--no-store",
                                           "--api-base", "http://127.0.0.1:9/v1"])
    assert res.exit_code == 2 and "--embedder litellm:MODEL" in res.output
    res = _cli(files, "--api-base", "http://user:pw@127.0.0.1:9/v1")
    assert res.exit_code == 2 and "pw" not in res.output.replace("--api-base", "")


def test_sampled_fit_on_real_queries_reports_sample_and_stability(files: dict[str, Path]) -> None:
    with FakeServer({}) as srv:
        full = _cli(files, "--api-base", srv.url, "--json", "--k", "20")
        sampled = _cli(files, "--api-base", srv.url, "--json", "--k", "20", "--fit-sample", "1000")
    assert full.exit_code == 0 and sampled.exit_code == 0, sampled.output
    f, s = json.loads(full.output), json.loads(sampled.output)
    assert f["params"]["fit_sample_size"] == 3000 and f["params"]["stability_jsd"] is None
    assert s["params"]["fit_sample_size"] == 1000 and 0 <= s["params"]["stability_jsd"] < 0.05
    # every production query is assigned (the shares cover all 3,000), and eval cases are placed as before
    assert sum(c["production_count"] for c in s["clusters"]) == 3000
    assert sum(c["eval_count"] for c in s["clusters"]) + s["outside_production"]["count"] == 120
    # a sampled fit measures about what the full fit measures
    assert abs(s["score"]["jsd"] - f["score"]["jsd"]) < 0.05


# ----------------------------------------------------------------------------- clustering, pure


def _mixture(n: int, k: int, d: int, seed: int, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    truth = rng.integers(0, k, n)
    x = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True) + spread * rng.normal(size=(n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


class _Reader:
    """Rows served one slice at a time, like a file read in chunks (not an ndarray)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.shape, self.reads = x, x.shape, 0

    def __getitem__(self, s: slice) -> np.ndarray:
        assert isinstance(s, slice)
        self.reads += 1
        return self.x[s].copy()


def test_chunked_assignment_equals_brute_force_and_reads_in_chunks() -> None:
    x, _ = _mixture(1000, 6, 16, seed=1)
    cents = cl._unit(np.random.default_rng(2).normal(size=(6, 16))).astype(np.float32)
    r = _Reader(x)
    labels, sims = cl.assign_chunks(r, cents, chunk=37)
    full = x @ cents.T
    np.testing.assert_array_equal(labels, full.argmax(axis=1))
    np.testing.assert_allclose(sims, full.max(axis=1), atol=1e-6)
    assert r.reads == -(-1000 // 37)
    idx = np.sort(np.random.default_rng(3).choice(1000, 111, replace=False))
    np.testing.assert_array_equal(cl._rows(_Reader(x), idx, chunk=37), x[idx])


def test_small_production_keeps_the_full_kmeans_fit() -> None:
    x, _ = _mixture(900, 5, 16, seed=4)
    a, b = cl.kmeans(x, 5, seed=0), cl.kmeans_at_scale(x, 5, seed=0, fit_sample=900)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.sample_size is None and b.stability_jsd is None


def test_sampled_fit_recovers_the_mixture_like_full_kmeans() -> None:
    x, truth = _mixture(20000, 8, 32, seed=5)
    full = cl.kmeans(x, 8, seed=0)
    s = cl.kmeans_at_scale(_Reader(x), 8, seed=0, fit_sample=2000)
    assert s.sample_size == 2000 and s.labels.shape == (20000,)
    assert adjusted_rand_score(truth, s.labels) > 0.99
    assert adjusted_rand_score(full.labels, s.labels) > 0.99
    # the similarities kept for the outside test are those to the own centroid
    own = np.stack([s.centroids[int(i)] for i in s.labels])
    np.testing.assert_allclose(cl.production_similarities(x, s), np.einsum("ij,ij->i", x, own), atol=1e-5)
    assert s.stability_jsd is not None and s.stability_jsd < 1e-3


def test_stability_is_larger_without_structure() -> None:
    """On points uniform on the sphere two sampled fits disagree more than on a clear mixture."""
    rng = np.random.default_rng(6)
    noise = cl._unit(rng.normal(size=(20000, 32))).astype(np.float32)
    clear, _ = _mixture(20000, 8, 32, seed=6)
    s_noise = cl.kmeans_at_scale(noise, 8, seed=0, fit_sample=2000).stability_jsd
    s_clear = cl.kmeans_at_scale(clear, 8, seed=0, fit_sample=2000).stability_jsd
    assert s_noise is not None and s_clear is not None and s_noise > 10 * s_clear


def test_matched_share_jsd_matches_scipy_after_relabelling() -> None:
    rng = np.random.default_rng(7)
    c1 = cl._unit(rng.normal(size=(6, 10)))
    perm = rng.permutation(6)
    c2 = cl._unit(c1[perm] + 0.01 * rng.normal(size=(6, 10)))
    p1 = rng.random(6)
    p2 = p1[perm] * (1 + 0.2 * rng.random(6))
    want = jensenshannon(p1, p2[np.argsort(perm)], base=2) ** 2
    assert cl.matched_share_jsd(c1, p1, c2, p2) == pytest.approx(want, rel=1e-9)


def test_embedding_cache_rows_are_keyed_by_embedder(files: dict[str, Path]) -> None:
    with FakeServer({}) as srv:
        assert _cli(files, "--api-base", srv.url, "--json").exit_code == 0
    con = sqlite3.connect(files["cache"])
    assert {m for (m,) in con.execute("SELECT DISTINCT model FROM embeddings")} == {MODEL}
    con.close()


def test_litellm_transport_embeds_the_same_vectors_with_the_same_retries_and_cost(tmp_path: Path,
                                                                                 files: dict[str, Path]) -> None:
    """``--embed-transport litellm`` goes through litellm.aembedding: same requests, vectors, retries and cost."""
    reports = {}
    for transport in ("openai", "litellm"):
        cache = tmp_path / f"{transport}.sqlite"
        with FakeServer({"faults": [{"kind": "429", "first_n": 1, "retry_after": 0}]}) as srv:
            res = CliRunner().invoke(build_app(), [
                "coverage", "-p", str(files["prod"]), "-d", str(files["ds"]), "--no-store", "--cache", str(cache),
                "--embedder", MODEL, "--api-base", srv.url, "--embed-transport", transport, "--batch-size", "500",
                "--json"])
            assert res.exit_code == 0, res.output
            reports[transport] = json.loads(res.output)
            assert sorted(r.outcome for r in srv.requests()) == sorted(["429", "ok"] * 7)
            with EmbeddingCache(cache) as c:
                reports[transport]["_vec"] = c.get_many(MODEL, [text_hash(_texts("production.csv")[0])])
    a, b = reports["openai"], reports["litellm"]
    assert a["cost"]["embedding_usd"] == pytest.approx(b["cost"]["embedding_usd"], rel=1e-12)
    assert a["cost"]["embedding_tokens"] == b["cost"]["embedding_tokens"]
    assert a["cost"]["embedding_retries"] == 7 and a["cost"]["embedding_requests"] == 14
    # litellm's OpenAI embedding path lets the SDK retry inside one attempt (providers._embed_attempt): the server
    # saw the same 14 requests, but only the attempts litellm surfaced are counted
    assert b["cost"]["embedding_requests"] <= 14
    assert a["score"] == b["score"] and a["clusters"] == b["clusters"]
    assert len(a["_vec"]) == len(b["_vec"]) == 1
    np.testing.assert_array_equal(next(iter(a["_vec"].values())), next(iter(b["_vec"].values())))


def test_refresh_uses_the_full_assignment_of_a_sampled_fit(tmp_path: Path, files: dict[str, Path]) -> None:
    out = tmp_path / "new.yaml"
    with FakeServer({}) as srv:
        res = CliRunner().invoke(build_app(), [
            "refresh", "-p", str(files["prod"]), "-d", str(files["ds"]), "--cache", str(files["cache"]), "--n", "30",
            "--out", str(out), "--embedder", MODEL, "--api-base", srv.url, "--fit-sample", "1000", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["n_selected"] == 30
    prod = set(_texts("production.csv"))
    cases = yaml.safe_load(out.read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 30 and all(c["input"] in prod for c in cases)
    # each candidate sits in a unit that was given slots, with its cluster from the full assignment
    given = {cid for u in result["units"] if u["allocated"] for cid in u["cluster_ids"]}
    assert all(c["provenance"]["cluster_id"] in given for c in cases)
    assert sum(u["allocated"] for u in result["units"]) == 30


def test_python_api_reports_embedding_cost_and_stability(files: dict[str, Path]) -> None:
    import benchrun

    with FakeServer({}) as srv:
        r = benchrun.measure_coverage(files["prod"], files["ds"], store=False, model=MODEL, api_base=srv.url,
                                      cache_path=files["cache"], fit_sample=1500, k=20, embed_concurrency=2)
        assert srv.stats()["max_in_flight"] <= 2
    assert r.embedding_cost_usd is not None and r.embedding_cost_usd == r.data["cost"]["embedding_usd"] > 0
    assert r.stability_jsd is not None and r.stability_jsd == r.data["params"]["stability_jsd"]
    assert r.data["params"]["fit_sample_size"] == 1500
