"""`benchrun labels`, `calibrate` and `bias` end to end: real CLI, our OpenAI-compatible server, real SQLite.

Numbers are checked against sklearn / statsmodels computed here on the same vectors.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from benchrun.labels import blind_item_id, load_labels
from benchrun.spec import PassRule
from conftest import RUBRIC, Project, fake_config, make_cases
from fakeserver import FakeServer


def _jeffreys_kappa_interval(table: np.ndarray) -> tuple[float, float]:
    """95% equal-tailed interval of Cohen's kappa under the Dirichlet(n + 1/2) posterior, by scipy Monte Carlo."""
    from scipy.stats import dirichlet

    p = dirichlet.rvs(np.asarray(table, dtype=float).ravel() + 0.5, size=200_000, random_state=7)
    po = p[:, 0] + p[:, 3]
    r1, c1 = p[:, 2] + p[:, 3], p[:, 1] + p[:, 3]
    pe = r1 * c1 + (1 - r1) * (1 - c1)
    lo, hi = np.quantile((po - pe) / (1 - pe), [0.025, 0.975])
    return float(lo), float(hi)


def start_run(project: Project, cases: int = 6, **spec: Any) -> str:
    project.write_dataset(make_cases(cases))
    project.write_rubric()
    path = project.write_spec(**spec)
    r, summary = project.cli_json("run", str(path))
    assert r.returncode == 0, r.stderr
    return str(summary["conditions"]["run_id"])


def ledger_rows(project: Project, sql: str, *args: Any) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute(sql, args)]
    con.close()
    return out


def judge_side(project: Project, run_id: str) -> dict[str, dict[str, Any]]:
    """item id -> the judge's verdict under the rubric's pass rule, read straight from the ledger."""
    rule = PassRule.model_validate(RUBRIC["pass_rule"])
    out = {}
    for r in ledger_rows(project, "SELECT * FROM result WHERE run_id = ?", run_id):
        out[blind_item_id(run_id, r["id"])] = {
            "pass": rule.evaluate(r["judge_score"], bool(r["judge_pass"]), r["judge_failure_mode"]),
            "score": r["judge_score"], "model_key": r["model_key"], "response": r["response_text"],
        }
    return out


def read_template(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True) if not ln.startswith("#")]
    reader = csv.DictReader(io.StringIO("".join(lines)))
    return list(reader.fieldnames or []), list(reader)


def fill(path: Path, out: Path, judge: dict[str, dict[str, Any]], disagree_every: int | None, limit: int | None = None,
         annotator: str = "ann") -> tuple[list[bool], list[bool], list[int], list[int]]:
    """Label the template: agree with the judge, except every `disagree_every`-th row. Returns the vectors."""
    header, rows = read_template(path)
    human_p, judge_p, human_s, judge_s = [], [], [], []
    for i, row in enumerate(rows[:limit]):
        j = judge[row["item_id"]]
        hp = j["pass"] if not (disagree_every and i % disagree_every == 0) else not j["pass"]
        hs = 5 if hp else 2
        if disagree_every and i % 7 == 3:
            hs = 4 if hp else 1  # some score spread for the weighted kappa
        row.update(human_score=str(hs), human_pass="yes" if hp else "no",
                   failure_mode="none" if hp else "wrong_policy", annotator=annotator)
        human_p.append(hp)
        judge_p.append(j["pass"])
        human_s.append(hs)
        judge_s.append(j["score"])
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows[:limit] if limit else rows)
    return human_p, judge_p, human_s, judge_s


# ----------------------------------------------------------------------------- labels + calibrate


def test_export_import_calibrate_matches_sklearn_and_shows_in_run(project: Project) -> None:
    run_id = start_run(project, cases=15)  # 30 results: 15 good (judge pass), 15 bad (judge fail)
    tpl = project.root / "to_label.csv"
    r, info = project.cli_json("labels", "export", run_id, "--sample", "30", "--out", str(tpl))
    assert r.returncode == 0, r.stderr
    assert info["written"] == 30 and info["judged_results"] == 30
    header, rows = read_template(tpl)
    assert header[:5] == ["item_id", "case_id", "input", "ideal", "response"]
    judge = judge_side(project, run_id)
    assert {row["item_id"] for row in rows} == set(judge)  # every item maps back to one ledger result
    text = tpl.read_text()
    assert "openai/" not in text and "good" not in "".join(row["item_id"] for row in rows)

    labelled = project.root / "labelled.csv"
    human_p, judge_p, human_s, judge_s = fill(tpl, labelled, judge, disagree_every=5)
    assert sum(h != j for h, j in zip(human_p, judge_p, strict=True)) == 6  # known disagreement: 6 of 30

    r, imp = project.cli_json("labels", "import", str(labelled), "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert imp["labels"] == 30 and imp["hash"] == load_labels(labelled).hash
    stored = ledger_rows(project, "SELECT * FROM report WHERE kind = 'labels'")
    assert len(stored) == 1 and json.loads(stored[0]["payload"])["hash"] == imp["hash"]

    r, cal = project.cli_json("calibrate", "--labels", str(labelled), "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert cal["n"] == 30 and cal["judge_source"] == "run verdicts"
    assert cal["kappa"] == pytest.approx(cohen_kappa_score(human_p, judge_p), abs=1e-12)
    rep = cal["report"]
    assert rep["percent_agreement"]["estimate"] == pytest.approx(24 / 30)
    assert rep["weighted_kappa"] == pytest.approx(
        cohen_kappa_score(human_s, judge_s, weights="quadratic", labels=[1, 2, 3, 4, 5]), abs=1e-12)
    table = np.array([[sum(1 for h, j in zip(human_p, judge_p, strict=True) if h == a and j == b)
                       for b in (False, True)] for a in (False, True)])
    sm = sm_cohens_kappa(table)
    assert rep["kappa"]["se"] == pytest.approx(sm.std_kappa, abs=1e-12)
    # the interval is the Jeffreys posterior interval (issue 13), checked with an independent Monte Carlo
    lo, hi = _jeffreys_kappa_interval(table)
    assert cal["kappa_interval"] == pytest.approx([lo, hi], abs=0.01)
    assert "Jeffreys" in rep["kappa"]["method"]
    if abs(lo - 0.6) > 0.01:
        assert cal["trusted"] is bool(lo >= 0.6)
    assert rep["pass_confusion"] == table.tolist()
    assert any("only 30 labelled items" in w for w in rep["warnings"])  # sample-size warning below 100

    _r, shown = project.cli_json("runs", "show", run_id)
    jc = shown["judge_calibration"]
    assert jc["trusted"] is cal["trusted"] and jc["kappa"] == pytest.approx(cal["kappa"]) and jc["n"] == 30
    assert jc["report_id"] == cal["report_id"]

    # perfect agreement on the same items: the newest calibration is the one a run shows
    perfect = project.root / "perfect.csv"
    hp2, jp2, _, _ = fill(tpl, perfect, judge, disagree_every=None)
    r, cal2 = project.cli_json("calibrate", "--labels", str(perfect), "--run", run_id)
    assert r.returncode == 0 and cal2["kappa"] == pytest.approx(cohen_kappa_score(hp2, jp2)) == pytest.approx(1.0)
    _r, shown = project.cli_json("runs", "show", run_id)
    assert shown["judge_calibration"]["report_id"] == cal2["report_id"]
    # at perfect agreement the Jeffreys interval needs no special case: upper end 1, lower end from the posterior
    table2 = np.array([[sum(1 for h, j in zip(hp2, jp2, strict=True) if h == a and j == b)
                        for b in (False, True)] for a in (False, True)])
    lo2, _ = _jeffreys_kappa_interval(table2)
    assert cal2["kappa_interval"][0] == pytest.approx(lo2, abs=0.01) and cal2["kappa_interval"][1] == 1.0
    assert lo2 > 0.61 and cal2["trusted"] is True
    assert shown["judge_calibration"]["trusted"] is True
    # the human-readable form names the verdict
    text_out = project.cli("calibrate", "--labels", str(perfect), "--run", run_id)
    assert text_out.returncode == 0 and "TRUSTED" in text_out.stdout and "NOT TRUSTED" not in text_out.stdout
    shown_text = project.cli("runs", "show", run_id)
    assert "judge calibration: trusted" in shown_text.stdout


def test_stratified_export_spreads_models(project: Project) -> None:
    run_id = start_run(project, cases=15)
    tpl = project.root / "t.csv"
    r, info = project.cli_json("labels", "export", run_id, "--sample", "8", "--out", str(tpl), "--seed", "3")
    assert r.returncode == 0 and info["written"] == 8
    judge = judge_side(project, run_id)
    _h, rows = read_template(tpl)
    models = [judge[row["item_id"]]["model_key"] for row in rows]
    assert models.count("good") >= 2 and models.count("bad") >= 2  # every (model, category, severity, verdict) stratum
    # same seed, same sample
    tpl2 = project.root / "t2.csv"
    project.cli("labels", "export", run_id, "--sample", "8", "--out", str(tpl2), "--seed", "3")
    assert tpl2.read_text() == tpl.read_text()


def test_too_few_labels_refused_with_exit_2(project: Project, server: FakeServer) -> None:
    run_id = start_run(project, cases=15)
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", "30", "--out", str(tpl))
    few = project.root / "few.csv"
    fill(tpl, few, judge_side(project, run_id), disagree_every=4, limit=19)
    before = server.stats()["completed"]
    r = project.cli("calibrate", "--labels", str(few), "--run", run_id)
    assert r.returncode == 2
    assert "only 19 labelled item(s)" in r.stderr and "at least 20" in r.stderr
    # re-judging with another judge is refused before any call is paid for
    r = project.cli("calibrate", "--labels", str(few), "--run", run_id, "--judge", "openai/judge2",
                    "--api-base", project.url)
    assert r.returncode == 2 and "at least 20" in r.stderr
    assert server.stats()["completed"] == before
    assert ledger_rows(project, "SELECT * FROM report WHERE kind = 'calibration'") == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"human_score": "6"}, "human_score must be an integer 1-5"),
        ({"item_id": "item-000000000000"}, "unknown item id"),
        ({"failure_mode": "rude"}, "failure_mode 'rude' is not in the rubric"),
        ({"human_pass": "maybe"}, "human_pass must be"),
    ],
)
def test_bad_labels_file_is_one_line_exit_2(project: Project, edit: dict[str, str], message: str) -> None:
    run_id = start_run(project)
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", "12", "--out", str(tpl))
    labelled = project.root / "l.csv"
    fill(tpl, labelled, judge_side(project, run_id), disagree_every=None)
    header, rows = read_template(labelled)
    rows[2].update(edit)
    with labelled.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    for cmd in (["labels", "import", str(labelled), "--run", run_id],
                ["calibrate", "--labels", str(labelled), "--run", run_id]):
        r = project.cli(*cmd)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "l.csv:line 4" in r.stderr  # header is line 1, third row is line 4
        assert r.stderr.strip().count("\n") == 0


def test_calibrate_rejudges_with_another_judge(project: Project, server: FakeServer) -> None:
    run_id = start_run(project, cases=15)
    server.set_config(fake_config(rules=[
        {"model": "lenient", "reply": '{"score": 4, "pass": true, "reason": "fine", "failure_mode": "none"}'},
        *fake_config()["rules"],
    ]))
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", "30", "--out", str(tpl))
    labelled = project.root / "l.csv"
    judge = judge_side(project, run_id)
    human_p, _judge_p, _, _ = fill(tpl, labelled, judge, disagree_every=6)
    r, cal = project.cli_json("calibrate", "--labels", str(labelled), "--run", run_id,
                              "--judge", "openai/lenient", "--api-base", project.url)
    assert r.returncode == 0, r.stderr
    assert cal["judge_source"] == "rejudged" and cal["judge_model"] == "openai/lenient"
    lenient_p = [True] * len(human_p)  # this judge passes everything
    assert cal["report"]["percent_agreement"]["estimate"] == pytest.approx(np.mean(np.equal(human_p, lenient_p)))
    assert cal["kappa"] == pytest.approx(cohen_kappa_score(human_p, lenient_p), abs=1e-12)
    assert cal["trusted"] is False
    assert cal["usage"]["calls"] == 30 and sum(1 for q in server.requests() if q.model == "lenient") == 30
    # stored under the judge that was measured, so the run (judged by openai/judge) is still uncalibrated
    rep = ledger_rows(project, "SELECT * FROM report WHERE kind = 'calibration'")
    assert [x["judge_model"] for x in rep] == ["openai/lenient"]
    _r, shown = project.cli_json("runs", "show", run_id)
    assert shown["judge_calibration"] is None
    # a second time everything comes from the cache
    project.cli_json("calibrate", "--labels", str(labelled), "--run", run_id, "--judge", "openai/lenient",
                     "--api-base", project.url)
    assert sum(1 for q in server.requests() if q.model == "lenient") == 30


def test_annotate_flow_driven_by_stdin(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = start_run(project)
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", "3", "--out", str(tpl))
    # item 1: a bad score first (re-asked), then 5, yes, Enter (none), a note
    # item 2: 2, no, failure mode by number (3 = wrong_policy), no note; then q stops before item 3
    monkeypatch.setattr("sys.stdin", io.StringIO("7\n5\nyes\n\nclear\n2\nn\n3\n\nq\n"))
    r = project.cli("labels", "annotate", str(tpl), "--run", run_id, "--annotator", "ada")
    assert r.returncode == 0, r.stderr
    assert "enter a whole number from 1 to 5" in r.stdout and "RESPONSE:" in r.stdout
    assert "labelled 2 item(s)" in r.stdout
    ls = load_labels(tpl, RUBRIC["failure_modes"])
    assert [(lab.human_score, lab.human_pass, lab.failure_mode, lab.annotator, lab.note) for lab in ls.labels] == [
        (5, True, "none", "ada", "clear"), (2, False, "wrong_policy", "ada", None)]
    assert ls.skipped_blank == 1
    # resume: only the third item is asked; a second annotator adds rows instead of overwriting
    monkeypatch.setattr("sys.stdin", io.StringIO("4\ny\n1\n\n"))
    r = project.cli("labels", "annotate", str(tpl), "--run", run_id, "--annotator", "ada")
    assert "1 to go" in r.stdout and "labelled 1 item(s)" in r.stdout
    monkeypatch.setattr("sys.stdin", io.StringIO("3\nn\n2\n\n"))
    r = project.cli("labels", "annotate", str(tpl), "--run", run_id, "--annotator", "bob")
    assert r.returncode == 0 and "labelled 1 item(s)" in r.stdout
    ls = load_labels(tpl, RUBRIC["failure_modes"])
    assert len(ls) == 4 and ls.annotators == ["ada", "bob"]
    r, imp = project.cli_json("labels", "import", str(tpl), "--run", run_id)
    assert r.returncode == 0 and imp["labels"] == 4 and imp["items"] == 3


# ----------------------------------------------------------------------------- position bias

FIRST = '{"winner": "A", "reason": "the first answer is better"}'


def test_position_bias_judge_that_prefers_first_shown(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(rules=[{"model": "judge", "contains": "[Answer A]", "reply": FIRST},
                                         *fake_config()["rules"]]))
    run_id = start_run(project)
    r, info = project.cli_json("bias", "position", "--run", run_id, "--a", "good", "--b", "bad")
    assert r.returncode == 0, r.stderr
    rep = info["report"]
    assert rep["n"] == 6
    assert rep["consistency"]["estimate"] == 0.0
    lo, hi = proportion_confint(0, 6, method="wilson")
    assert (rep["consistency"]["low"], rep["consistency"]["high"]) == pytest.approx((lo, hi), abs=1e-9)
    assert rep["first_position_win_rate"]["estimate"] == 1.0 and rep["decisive_verdicts"] == 12
    assert rep["biased_first"] == 1.0
    assert info["wins_both_orders"] == {"good": 0, "bad": 0, "tie": 6}  # the both-orders rule turns them into ties
    assert info["wins_first_order_only"] == {"good": 6, "bad": 0, "tie": 0}
    pair_requests = [q for q in server.requests() if q.model == "judge" and "[Answer A]" in q.messages[-1]["content"]]
    assert len(pair_requests) == 12  # every pair in both orders
    assert not info["self_preference"] and "self-preference" not in r.stderr
    stored = ledger_rows(project, "SELECT * FROM report WHERE kind = 'bias_position'")
    assert len(stored) == 1 and stored[0]["run_id"] == run_id and stored[0]["subject"] == "good vs bad"


def test_position_bias_fair_judge_and_recorded_verdicts_file(project: Project, server: FakeServer) -> None:
    good_first = {"model": "judge", "regex": r"\[Answer A\]\n<<<ANSWER-[^\n]*\nSorry about that", "reply": FIRST}
    good_second = {"model": "judge", "regex": r"\[Answer B\]\n<<<ANSWER-[^\n]*\nSorry about that",
                   "reply": '{"winner": "B", "reason": "the second answer is better"}'}
    server.set_config(fake_config(rules=[good_first, good_second, *fake_config()["rules"]]))
    # judge and one candidate from the same family: the self-preference warning must appear
    models = [{"model": "openai/qwen-good", "alias": "good", "api_base": project.url},
              {"model": "openai/bad", "alias": "bad", "api_base": project.url}]
    run_id = start_run(project, candidates=models, judge={"model": "openai/qwen-judge", "api_base": project.url})
    saved = project.root / "pairs.csv"
    r, info = project.cli_json("bias", "position", "--run", run_id, "--a", "good", "--b", "bad",
                               "--save-verdicts", str(saved))
    assert r.returncode == 0, r.stderr
    rep = info["report"]
    assert rep["consistency"]["estimate"] == 1.0 and rep["first_position_win_rate"]["estimate"] == 0.5
    assert info["wins_both_orders"] == {"good": 6, "bad": 0, "tie": 0}
    assert len(info["self_preference"]) == 1 and "candidate good" in info["self_preference"][0]
    assert "self-preference risk" in r.stderr

    # a person adds the right answer to the saved verdicts; re-read them from the file
    lines = saved.read_text().splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(body))))
    for i, row in enumerate(rows):
        row["label"] = "A>B" if i < 5 else "B>A"  # one label contradicts the judge
    with saved.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    r, info2 = project.cli_json("bias", "position", "--verdicts", str(saved))
    assert r.returncode == 0, r.stderr
    rep2 = info2["report"]
    assert rep2["labelled"] == 6
    lo, hi = proportion_confint(5, 6, method="wilson")
    assert rep2["accuracy_both_orders"]["estimate"] == pytest.approx(5 / 6)
    assert (rep2["accuracy_first_order"]["low"], rep2["accuracy_first_order"]["high"]) == pytest.approx((lo, hi))
    assert len(ledger_rows(project, "SELECT * FROM report WHERE kind = 'bias_position'")) == 2

    # the second judging of the same pairs is served from the ledger's cache
    n_before = server.stats()["completed"]
    project.cli_json("bias", "position", "--run", run_id, "--a", "good", "--b", "bad")
    assert server.stats()["completed"] == n_before


def test_position_usage_errors(project: Project, tmp_path: Path) -> None:
    run_id = start_run(project)
    r = project.cli("bias", "position", "--run", run_id, "--a", "good", "--b", "nope")
    assert r.returncode == 2 and "has no model 'nope'" in r.stderr
    r = project.cli("bias", "position", "--run", run_id)
    assert r.returncode == 2
    # this fixture's judge answers pairwise prompts with single-answer JSON: no usable verdict, exit 3
    r = project.cli("bias", "position", "--run", run_id, "--a", "good", "--b", "bad")
    assert r.returncode == 3 and "no usable verdict for any pair" in r.stderr and "'winner'" in r.stderr
    bad = tmp_path / "v.jsonl"
    bad.write_text('{"pair_id": "p1", "verdict_ab": "A>B", "verdict_ba_raw": "left"}\n')
    r = project.cli("bias", "position", "--verdicts", str(bad))
    assert r.returncode == 2 and "v.jsonl:line 1 pair p1" in r.stderr and r.stderr.strip().count("\n") == 0


# ----------------------------------------------------------------------------- verbosity bias

J5 = '{"score": 5, "pass": true, "reason": "thorough", "failure_mode": "none"}'
J3 = '{"score": 3, "pass": false, "reason": "ok", "failure_mode": "none"}'


def _verbose_judge(pads_win: bool) -> dict[str, Any]:
    padded = ["To summarise the key points", "You asked:", "This is a good question"]
    rules = [{"model": "judge", "contains": p, "reply": J5 if pads_win else J3} for p in padded]
    return fake_config(rules=[*rules, {"model": "judge", "reply": J3}, {"model": "good", "reply": "Open a ticket. "
                              "Billing refunds double charges within 5-7 business days."},
                              {"model": "bad", "reply": "I have refunded you."}])


@pytest.mark.parametrize("pads_win", [True, False])
def test_verbosity_bias(project: Project, server: FakeServer, pads_win: bool) -> None:
    server.set_config(_verbose_judge(pads_win))
    run_id = start_run(project, cases=12)
    r, info = project.cli_json("bias", "verbosity", "--run", run_id, "--sample", "12")
    assert r.returncode == 0, r.stderr
    rep = info["report"]
    assert rep["n"] == 12
    k = 12 if pads_win else 0
    lo, hi = proportion_confint(k, 12, method="wilson")
    assert rep["padded"]["higher"]["estimate"] == k / 12 and rep["padded"]["lower"]["estimate"] == 0
    assert (rep["padded"]["higher"]["low"], rep["padded"]["higher"]["high"]) == pytest.approx((lo, hi), abs=1e-9)
    # this judge has no noise: the re-judged unpadded answer scores the same as the first judgement
    assert rep["noise_floor"]["equal"]["estimate"] == 1.0
    if pads_win:
        # every item: unpadded 3, 3 and padded 5, 5, 5; of the C(5, 2) = 10 ways to pick the two "unpadded"
        # judgements, 7 make the padded mean higher, so S = 12 has null probability 0.7^12
        assert rep["p_value"] == pytest.approx(0.7**12, rel=1e-9)
    else:
        assert rep["p_value"] == 1.0
    assert info["flagged"] is pads_win and rep["flagged"] is pads_win
    assert set(rep["per_variant"]) == {"restate", "list", "filler"}
    assert rep["repetitive_list_rate"]["estimate"] == k / 12
    assert rep["mean_inflation"] == pytest.approx(2.0 if pads_win else 0.0)
    assert all(it["original_score"] == 3 and it["rejudged_score"] == 3 for it in info["items"])
    # each item: the original (cached from the run), a fresh re-judgement of it and three padded variants
    assert info["usage"]["calls"] == 60 and info["usage"]["cached"] == 12
    stored = ledger_rows(project, "SELECT * FROM report WHERE kind = 'bias_verbosity'")
    assert len(stored) == 1 and json.loads(stored[0]["payload"])["flagged"] is pads_win
    text = project.cli("bias", "verbosity", "--run", run_id, "--sample", "12")
    assert ("FLAGGED" in text.stdout) is pads_win
    assert "noise floor" in text.stdout and "sign test" in text.stdout


def test_verbosity_with_labels_reports_partial_correlation(project: Project) -> None:
    import statsmodels.api as sm

    run_id = start_run(project, cases=12)  # default judge: good answers 5, bad answers 1
    tpl = project.root / "t.csv"
    project.cli("labels", "export", run_id, "--sample", "10", "--out", str(tpl))
    header, rows = read_template(tpl)
    for i, row in enumerate(rows):
        row.update(human_score=str(1 + (i * 3) % 5), human_pass="yes" if i % 2 else "no", annotator="ann")
    labelled = project.root / "l.csv"
    with labelled.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    r, info = project.cli_json("bias", "verbosity", "--run", run_id, "--labels", str(labelled), "--sample", "50")
    assert r.returncode == 0, r.stderr
    items = info["items"]
    assert {it["item_id"] for it in items} == {row["item_id"] for row in rows}  # sampled from the labelled items
    lp = info["report"]["length_partial"]
    assert lp["n"] == 10
    from scipy.stats import rankdata

    # rank-based (Spearman) partial correlation: ranks, then the residual method with statsmodels OLS
    x = rankdata([it["original_words"] for it in items])
    y = rankdata([it["original_score"] for it in items])
    z = sm.add_constant(rankdata([it["human_score"] for it in items]))
    rx, ry = sm.OLS(x, z).fit().resid, sm.OLS(y, z).fit().resid
    assert np.ptp(rx) > 0 and np.ptp(ry) > 0
    assert lp["value"] == pytest.approx(float(np.corrcoef(rx, ry)[0, 1]))
