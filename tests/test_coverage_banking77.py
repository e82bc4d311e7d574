"""Coverage and refresh end to end on real queries (Banking77 subset) with the real embedding model.

Production = 3,000 Banking77 training queries; eval cases come from held-out test queries
(tests/fixtures/banking77/ATTRIBUTION.md). The embedding cache is filled once per session.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console
from scipy.spatial.distance import jensenshannon
from typer.testing import CliRunner

from benchrun.cli.coverage import build_app
from benchrun.coverage import render, run_coverage, run_refresh
from benchrun.coverage.embed import EmbeddingCache, EmbedStats, embed_texts, text_hash
from benchrun.coverage.pipeline import _options, analyse
from benchrun.errors import BadInput
from benchrun.spec import load_dataset

pytestmark = pytest.mark.slow

FIX = Path(__file__).parent / "fixtures" / "banking77"
PRODUCTION = FIX / "production.csv"
FEW = ["card_arrival", "exchange_rate", "pin_blocked", "top_up_failed", "lost_or_stolen_card"]


def _rows(name: str) -> list[dict[str, str]]:
    with open(FIX / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write_dataset(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    cases = []
    for i, r in enumerate(rows):
        case = {"id": f"{name}-{i}", "input": r["text"], "category": r.get("category", "uncategorised")}
        case["provenance"] = {"added": f"2024-{1 + i % 12:02d}-15"}
        cases.append(case)
    path.write_text(yaml.safe_dump({"name": name, "version": "1", "cases": cases}), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("coverage")
    prod = _rows("production.csv")
    pool = _rows("eval_pool.csv")
    cache = d / "emb.sqlite"
    st = EmbedStats()
    embed_texts([r["text"] for r in prod] + [r["text"] for r in pool], cache_path=cache, stats=st)
    assert st.n_embedded == st.n_unique  # cold cache
    share = Counter(r["category"] for r in prod)
    by_cat: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in pool:
        by_cat[r["category"]].append(r)
    stratified: list[dict[str, str]] = []
    for cat in sorted(by_cat):  # proportional to production, 300 cases
        stratified += by_cat[cat][: round(300 * share[cat] / len(prod))]
    cats = sorted(by_cat)
    half = set(cats[::2])
    return {
        "dir": d,
        "cache": cache,
        "prod": prod,
        "category": {r["text"]: r["category"] for r in prod},
        "narrow": _write_dataset(d / "narrow.yaml", "narrow", [r for r in pool if r["category"] in FEW]),
        "stratified": _write_dataset(d / "stratified.yaml", "stratified", stratified),
        "half": _write_dataset(d / "half.yaml", "half", [r for r in pool if r["category"] in half]),
        "half_cats": half,
    }


def _scipy_jsd(report: dict[str, Any]) -> float:
    d = report["distributions"]
    return float(jensenshannon(d["production"], d["eval"], base=2) ** 2)


def test_narrow_eval_scores_high_and_uncovered_clusters_are_the_missing_intents(env: dict[str, Any]) -> None:
    a = analyse(PRODUCTION, env["narrow"], _options({"cache_path": env["cache"]}))
    rep = a.report
    assert rep["timing"]["embedding"]["n_embedded"] == 0  # everything came from the cache
    assert rep["score"]["jsd"] == pytest.approx(_scipy_jsd(rep), abs=1e-12)
    assert rep["score"]["band"] == "refresh"
    assert rep["score"]["jsd"] > rep["score"]["floor_p95"]  # far beyond sampling noise
    cats = [env["prod"][i]["category"] for i in range(len(env["prod"]))]
    uncovered = [c for c in rep["clusters"] if c["eval_count"] == 0]
    assert uncovered, "a 5-intent eval set must leave clusters uncovered"
    # uncovered clusters come first, largest traffic first
    assert rep["clusters"][: len(uncovered)] == uncovered
    shares = [c["production_share"] for c in uncovered]
    assert shares == sorted(shares, reverse=True)
    for c in uncovered:  # each uncovered cluster is dominated by intents the eval set lacks
        members = [cats[i] for i in np.flatnonzero(a.clustering.labels == c["id"])]
        top, _ = Counter(members).most_common(1)[0]
        assert top not in FEW, (c["label"], Counter(members).most_common(3))
        assert len(c["representatives"]) == 3
        assert c["newest_eval_added"] is None
    in_uncovered = [cats[i] for i in np.flatnonzero(np.isin(a.clustering.labels, [c["id"] for c in uncovered]))]
    assert sum(c not in FEW for c in in_uncovered) / len(in_uncovered) > 0.95
    covered = [c for c in rep["clusters"] if c["eval_count"] > 0]
    assert all(c["newest_eval_added"] is not None for c in covered)


def test_stratified_eval_scores_low(env: dict[str, Any]) -> None:
    rep = run_coverage(PRODUCTION, env["stratified"], cache_path=env["cache"])
    assert rep["score"]["jsd"] == pytest.approx(_scipy_jsd(rep), abs=1e-12)
    assert rep["score"]["band"] == "good"
    assert rep["score"]["jsd"] < rep["score"]["floor_p95"]  # indistinguishable from a random production sample
    narrow = run_coverage(PRODUCTION, env["narrow"], cache_path=env["cache"])
    assert rep["score"]["jsd"] < narrow["score"]["jsd"] / 5
    json.dumps(rep)  # plain, JSON-serialisable


def test_refresh_picks_mostly_missing_intents_and_writes_a_loadable_dataset(env: dict[str, Any]) -> None:
    out = env["dir"] / "new_cases.yaml"
    res = run_refresh(PRODUCTION, env["half"], 60, out, cache_path=env["cache"], today=dt.date(2025, 3, 1))
    assert res["n_selected"] == 60
    cat = env["category"]
    half = env["half_cats"]
    picked = [cat[c["input"]] for c in res["cases"]]
    missing_share = sum(c not in half for c in picked) / len(picked)
    traffic_missing = sum(r["category"] not in half for r in env["prod"]) / len(env["prod"])
    assert missing_share >= 2 / 3, Counter(picked).most_common(10)
    assert missing_share > traffic_missing + 0.15  # far above what uniform sampling would give

    ds = load_dataset(out)
    assert len(ds.cases) == 60 and ds.name == "half-refresh-candidates"
    for c in ds.cases:
        assert c.ideal == ""
        assert c.provenance.source == "production"
        assert c.provenance.added == dt.date(2025, 3, 1)
        assert c.provenance.cluster_id is not None and c.provenance.cluster_label
    existing = {c.input_text().lower().strip() for c in load_dataset(env["half"]).cases}
    texts = [c.input_text() for c in ds.cases]
    assert not existing & {t.lower().strip() for t in texts}
    vecs = embed_texts(texts, cache_path=env["cache"])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, 0)
    assert sims.max() < 0.9  # no near-duplicates among the candidates
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# benchrun refresh")
    assert sum(u["allocated"] for u in res["units"]) == 60
    assert all(u["why"] for u in res["units"])

    narrow = run_refresh(PRODUCTION, env["narrow"], 40, None, cache_path=env["cache"])
    picked = [cat[c["input"]] for c in narrow["cases"]]
    assert sum(c not in FEW for c in picked) / len(picked) > 0.95


def test_cache_embeds_only_new_texts(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    texts = [r["text"] for r in _rows("eval_pool.csv")[:30]]
    s1, s2 = EmbedStats(), EmbedStats()
    a = embed_texts(texts[:20] + texts[:5], cache_path=cache, stats=s1)
    b = embed_texts(texts, cache_path=cache, stats=s2)
    assert (s1.n_unique, s1.n_embedded) == (20, 20)
    assert (s2.n_cached, s2.n_embedded) == (20, 10)
    assert np.array_equal(a[:20], b[:20]) and np.array_equal(a[20:], a[:5])
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    with EmbeddingCache(cache) as c:
        assert c.count("all-MiniLM-L6-v2") == 30
    # the key is (model, sha256(text)): the same text under another model name is not a hit
    with EmbeddingCache(cache) as c:
        h = text_hash(texts[0])
        assert set(c.get_many("all-MiniLM-L6-v2", [h])) == {h}
        assert c.get_many("some/other-model", [h]) == {}


def test_warm_rerun_is_identical(env: dict[str, Any]) -> None:
    r1 = run_coverage(PRODUCTION, env["narrow"], cache_path=env["cache"])
    r2 = run_coverage(PRODUCTION, env["narrow"], cache_path=env["cache"])
    for k in ("score", "clusters", "distributions"):
        assert r1[k] == r2[k]
    assert r2["timing"]["embedding"]["n_embedded"] == 0


def test_weekday_and_window_options_on_real_data(env: dict[str, Any], tmp_path: Path) -> None:
    # production with timestamps: 70 days, a spike of the 5 eval intents on Mondays
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday
    rows = []
    for i, r in enumerate(env["prod"]):
        day = i % 70
        if r["category"] in FEW:
            day = 7 * (i % 10)  # always a Monday
        rows.append({"text": r["text"], "timestamp": (start + dt.timedelta(days=day, hours=9)).isoformat()})
    p = tmp_path / "prod.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    plain = run_coverage(p, env["narrow"], cache_path=env["cache"])
    weighted = run_coverage(p, env["narrow"], cache_path=env["cache"], by_weekday=True)
    assert weighted["production"]["by_weekday"] is True
    assert weighted["score"]["jsd"] == pytest.approx(_scipy_jsd(weighted), abs=1e-12)
    windowed = run_coverage(p, env["narrow"], cache_path=env["cache"], window_days=30)
    assert windowed["production"]["rows_used"] < plain["production"]["rows_used"]
    assert windowed["production"]["skipped"]["outside the time window"] == (
        plain["production"]["rows_used"] - windowed["production"]["rows_used"]
    )


def test_hdbscan_option(env: dict[str, Any]) -> None:
    rep = run_coverage(PRODUCTION, env["narrow"], cache_path=env["cache"], method="hdbscan")
    assert rep["params"]["method"] == "hdbscan"
    assert rep["score"]["jsd"] == pytest.approx(_scipy_jsd(rep), abs=1e-12)
    assert rep["score"]["band"] == "refresh"
    noise = [c for c in rep["clusters"] if c["id"] == -1]
    assert noise and noise[0]["label"].startswith("unclustered")
    strat = run_coverage(PRODUCTION, env["stratified"], cache_path=env["cache"], method="hdbscan")
    assert strat["score"]["band"] == "good"


def test_sessions_reveal_missing_multi_turn_coverage(env: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(5)
    texts = [r["text"] for r in env["prod"]]
    rng.shuffle(texts)
    it = iter(texts)
    rows = []
    for s in range(300):  # one-turn sessions that succeed without tools
        rows.append({"text": next(it), "session_id": f"a{s}", "turn": 0, "tool_calls": 0, "outcome": "success"})
    for s in range(300):  # three-turn agent sessions with tool calls, half abandoned
        for t in range(3):
            rows.append(
                {
                    "text": next(it),
                    "session_id": f"b{s}",
                    "turn": t,
                    "tool_calls": 1 if t < 2 else 0,
                    "outcome": "abandoned" if s % 2 else "success",
                }
            )
    p = tmp_path / "sessions.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    pool = _rows("eval_pool.csv")
    single = [{"id": f"s{i}", "input": r["text"]} for i, r in enumerate(pool[:150])]
    multi = [
        {
            "id": f"m{i}",
            "input": [
                {"role": "user", "content": pool[200 + 3 * i]["text"]},
                {"role": "tool", "content": "{}"},
                {"role": "user", "content": pool[201 + 3 * i]["text"]},
                {"role": "tool", "content": "{}"},
                {"role": "user", "content": pool[202 + 3 * i]["text"]},
            ],
            "metadata": {"outcome": "abandoned" if i % 2 else "success"},
        }
        for i in range(75)
    ]
    only_single = tmp_path / "single.yaml"
    only_single.write_text(yaml.safe_dump({"name": "single", "version": "1", "cases": single}), encoding="utf-8")
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump({"name": "mixed", "version": "1", "cases": single[:75] + multi}), encoding="utf-8")

    text_only = run_coverage(p, only_single, cache_path=env["cache"])
    by_session = run_coverage(p, only_single, cache_path=env["cache"], sessions=True)
    assert by_session["production"]["unit"] == "session" and by_session["production"]["units"] == 600
    assert text_only["score"]["band"] == "good"  # first-turn text alone looks covered ...
    assert by_session["score"]["band"] == "refresh"  # ... but no eval case is a multi-turn agent session
    assert by_session["uncovered"]["production_share"] > 0.4
    fixed = run_coverage(p, mixed, cache_path=env["cache"], sessions=True)
    assert fixed["score"]["jsd"] < by_session["score"]["jsd"] / 3
    res = run_refresh(p, only_single, 20, tmp_path / "s_new.yaml", cache_path=env["cache"], sessions=True)
    ds = load_dataset(tmp_path / "s_new.yaml")
    multi_turn = [c for c in ds.cases if not isinstance(c.input, str)]
    assert len(multi_turn) >= 15, res["units"]  # refresh proposes the uncovered multi-turn sessions
    with pytest.raises(BadInput, match="session id column"):
        run_coverage(PRODUCTION, only_single, cache_path=env["cache"], sessions=True)


def test_malformed_production_is_bad_input(env: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("query,category\nhello,x\n", encoding="utf-8")
    with pytest.raises(BadInput, match="no column 'text'"):
        run_coverage(bad, env["narrow"], cache_path=env["cache"])
    with pytest.raises(BadInput, match="no column 'body'"):
        run_coverage(bad, env["narrow"], cache_path=env["cache"], text_column="body")
    empty = tmp_path / "e.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BadInput, match="empty"):
        run_coverage(empty, env["narrow"], cache_path=env["cache"])
    with pytest.raises(BadInput, match="--model"):
        run_coverage(PRODUCTION, env["narrow"], cache_path=tmp_path / "x.sqlite", model=str(tmp_path / "nope"))


def test_render_outputs(env: dict[str, Any], tmp_path: Path) -> None:
    rep = run_coverage(PRODUCTION, env["narrow"], cache_path=env["cache"])
    con = Console(record=True, width=200)
    render.print_coverage(rep, console=con, max_rows=10)
    text = con.export_text()
    assert f"{rep['score']['jsd']:.3f}" in text and "REFRESH" in text
    assert rep["clusters"][0]["label"] in text and "uncovered" in text
    html = render.write_html(rep, tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and rep["clusters"][0]["label"] in html
    png = render.write_png(rep, tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_coverage_and_refresh(env: dict[str, Any], tmp_path: Path) -> None:
    stored: list[dict[str, Any]] = []
    app = build_app(on_report=stored.append)
    runner = CliRunner()
    ledger = tmp_path / "ledger.sqlite"
    base = ["--production", str(PRODUCTION), "--cache", str(env["cache"]), "--ledger", str(ledger)]
    r = runner.invoke(app, ["coverage", *base, "--dataset", str(env["narrow"]), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["kind"] == "coverage" and rep["dataset"]["hash"] == load_dataset(env["narrow"]).hash
    assert stored and stored[-1]["score"] == rep["score"]

    # recorded in the ledger: `coverage history` shows the trend, newest first
    r = runner.invoke(app, ["coverage", *base, "--dataset", str(env["stratified"]), "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["coverage", "history", "--ledger", str(ledger), "--json"])
    assert r.exit_code == 0, r.output
    hist = json.loads(r.stdout)
    assert [h["band"] for h in hist] == ["good", "refresh"] and hist[1]["jsd"] == rep["score"]["jsd"]
    r = runner.invoke(app, ["coverage", "history", "--ledger", str(ledger), "--dataset", str(env["narrow"]), "--json"])
    assert [h["dataset_hash"] for h in json.loads(r.stdout)] == [rep["dataset"]["hash"]]

    r = runner.invoke(app, ["coverage", *base, "--dataset", str(env["narrow"]), "--fail-above", "0.25"])
    assert r.exit_code == 1
    r = runner.invoke(
        app, ["coverage", *base, "--dataset", str(env["stratified"]), "--fail-above", "0.25", "--html", str(tmp_path / "x.html")]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.html").exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "hi"}\n', encoding="utf-8")
    r = runner.invoke(app, ["coverage", "--production", str(bad), "--dataset", str(env["narrow"]), "--ledger", str(ledger)])
    assert r.exit_code == 2
    assert "no column 'text'" in r.output

    out = tmp_path / "new.yaml"
    r = runner.invoke(app, ["refresh", "--production", str(PRODUCTION), "--cache", str(env["cache"]),
                            "--dataset", str(env["narrow"]), "--n", "10", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(load_dataset(out).cases) == 10
