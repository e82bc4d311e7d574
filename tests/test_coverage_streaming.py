"""Streaming coverage: more queries than the fit sample are embedded chunk by chunk into the cache and read
back from it, so no n x dim matrix is held (docs/scale.md). Its results must equal the in-memory path's
(the same queries without a cache, every vector held), and nothing may be embedded or paid for twice.

Embeddings come from our test server's ``/v1/embeddings`` (a hashed bag of words) through the real gateway.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest
import yaml

from benchrun.coverage import run_coverage, run_refresh
from benchrun.coverage.cluster import ASSIGN_CHUNK
from fakeserver import FakeServer

MODEL = "litellm:openai/text-embedding-3-small"
TOPICS = [
    "card blocked stolen frozen replace lost",
    "transfer pending arrived recipient beneficiary wire",
    "refund merchant dispute return charged twice",
    "exchange rate currency fee conversion abroad",
    "pin change forgot locked reset code",
    "top up failed declined balance wallet",
    "account verify identity passport selfie documents",
    "cash withdrawal atm machine wrong amount",
    "salary direct deposit payroll employer incoming",
    "virtual disposable online shopping number",
    "contactless tap terminal payment chip",
    "close delete account leave data",
]
N_PROD = ASSIGN_CHUNK + 7_000  # more than one streaming chunk, so duplicates cross a chunk boundary
FIT_SAMPLE = 5_000


def _texts(n: int, seed: int) -> list[str]:
    """Queries drawn from a skewed mixture of word topics; about a third repeat an earlier query."""
    rng = np.random.default_rng(seed)
    p = np.linspace(3.0, 1.0, len(TOPICS))
    p /= p.sum()
    words = [t.split() for t in TOPICS]
    out: list[str] = []
    for i in range(n):
        if out and rng.random() < 0.3:
            out.append(out[int(rng.integers(len(out)))])
            continue
        t = int(rng.choice(len(TOPICS), p=p))
        out.append(" ".join(rng.choice(words[t], 4)) + f" please help {i % 997}")
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("stream")
    prod_texts = _texts(N_PROD, seed=1)
    prod = tmp / "prod.csv"
    with open(prod, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([t] for t in prod_texts)
    # eval cases: mostly the first topics (under-covering the rest) and two outside production
    eval_texts = [t for t in _texts(400, seed=2) if t.split()[0] in " ".join(TOPICS[:5])][:80]
    eval_texts += ["what is the weather on mars", "write a haiku about penguins"]
    ds = tmp / "eval.yaml"
    cases = [{"id": f"e{i}", "input": t} for i, t in enumerate(eval_texts)]
    ds.write_text(yaml.safe_dump({"name": "bank", "version": "1", "cases": cases}), encoding="utf-8")
    return {"prod": prod, "ds": ds, "tmp": tmp, "prod_texts": prod_texts, "eval_texts": eval_texts}


def _comparable(rep: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rep.items() if k not in ("created_at", "timing", "cost")}
    out["params"] = {k: v for k, v in rep["params"].items() if k != "streamed"}
    return out


def test_streaming_equals_the_in_memory_path_and_embeds_each_text_once(files: dict[str, Any]) -> None:
    opts = {"model": MODEL, "fit_sample": FIT_SAMPLE, "seed": 3}
    with FakeServer({}) as srv:
        streamed = run_coverage(files["prod"], files["ds"], cache_path=files["tmp"] / "emb.sqlite",
                                api_base=srv.url, **opts)
        sent = sorted(m["content"] for r in srv.requests() if r.outcome == "ok" for m in r.messages)
        in_memory = run_coverage(files["prod"], files["ds"], cache_path=None, api_base=srv.url, **opts)
    assert streamed["params"]["streamed"] is True and in_memory["params"]["streamed"] is False
    assert streamed["production"]["units"] == N_PROD
    assert streamed["params"]["fit_sample_size"] == FIT_SAMPLE
    # the same clusters, shares, labels, representatives, eval placement, JSD, band and stability
    assert _comparable(streamed) == _comparable(in_memory)
    assert streamed["score"]["jsd"] == in_memory["score"]["jsd"] > 0
    assert streamed["params"]["stability_jsd"] == in_memory["params"]["stability_jsd"] is not None
    # the re-reads came from the cache: every distinct text went to the server exactly once
    assert sent == sorted(set(files["prod_texts"]) | set(files["eval_texts"]))
    assert streamed["cost"]["embedding_tokens"] == in_memory["cost"]["embedding_tokens"]
    assert streamed["timing"]["cache_reread_s"] > 0


def test_streaming_refresh_proposes_the_same_cases(files: dict[str, Any]) -> None:
    opts = {"model": MODEL, "fit_sample": FIT_SAMPLE, "seed": 3}
    with FakeServer({}) as srv:
        streamed, in_memory = (run_refresh(files["prod"], files["ds"], 25, None, cache_path=cache, api_base=srv.url,
                                           **opts) for cache in (files["tmp"] / "emb2.sqlite", None))
    assert streamed["coverage"]["params"]["streamed"] is True
    assert streamed["n_selected"] == in_memory["n_selected"] == 25
    assert streamed["cases"] == in_memory["cases"]
    assert streamed["units"] == in_memory["units"]
