"""A degenerate judge is detected and said everywhere (issue 14, item 1).

Unit tests on `benchrun.analysis.judge_health` with hand-made verdicts, then the real CLI against
the fake server with a judge that copies its prompt's example JSON: run summary, `runs show`,
`--json`, the HTML report and `--require-calibrated`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from benchrun.analysis.judge_health import judge_health
from conftest import RUBRIC, Project, fake_config
from fakeserver import FakeServer

EXAMPLE = '{"score": 4, "pass": true, "reason": "Correct policy and a clear next step.", "failure_mode": "none"}'
PROMPT = ("Grade the answer.\nAnswer: {{ response }}\nReply with ONLY a JSON object.\nExample:\n" + EXAMPLE)


def _v(score: int, ok: bool, reason: str, mode: str = "none") -> dict[str, Any]:
    return {"judge_score": score, "judge_pass": ok, "judge_reason": reason, "judge_failure_mode": mode}


def test_quickstart_judge_copying_the_example_is_degenerate() -> None:
    vs = [_v(4, True, "Correct policy and a clear next step.") for _ in range(44)]
    h = judge_health(vs, [PROMPT], min_score=4)
    assert h["degenerate"] is True
    kinds = {s["kind"] for s in h["signals"]}
    assert kinds == {"constant_score", "copied_prompt"}
    assert h["copied_from_prompt"] == 44 and h["score_sd"] == 0 and h["modal_share"] == 1
    assert "carry no information" in h["message"] and "all 44 verdicts gave score 4" in h["message"]


def test_self_contradicting_judge_is_degenerate() -> None:
    # the new user's eval: score 1 with pass: true on all 24 answers
    vs = [_v(1, True, f"answer {i} is fine") for i in range(24)]
    h = judge_health(vs, [PROMPT], min_score=4)
    assert h["contradictions"] == 24
    assert {"constant_score", "contradicts_pass_rule"} <= {s["kind"] for s in h["signals"]}
    # pass: false on a passing score with no failure mode contradicts the rule too, forbidden modes count
    vs2 = [_v(5, False, f"r{i}") for i in range(3)] + [_v(5, True, f"r{i}", "leak") for i in range(3)]
    h2 = judge_health(vs2, [PROMPT], min_score=4, forbidden_failure_modes=["leak"])
    assert h2["contradictions"] == 6


def test_single_failure_mode_for_everything() -> None:
    rng = random.Random(3)
    vs = [_v(s, s >= 4, f"reason {i}", "wrong_policy") for i, s in enumerate(rng.choice([1, 2, 3]) for _ in range(20))]
    h = judge_health(vs, [PROMPT], min_score=4)
    assert [s["kind"] for s in h["signals"]] == ["single_failure_mode"]
    # "none" on failed answers is a single mode for everything as well
    vs = [_v(s, s >= 4, f"reason {i}") for i, s in enumerate([1, 5, 2, 4, 3] * 4)]
    assert [s["kind"] for s in judge_health(vs, [PROMPT], min_score=4)["signals"]] == ["single_failure_mode"]


def test_healthy_judge_is_not_flagged() -> None:
    rng = random.Random(7)
    vs = []
    for i in range(60):
        s = rng.choice([1, 2, 3, 4, 5])
        mode = "none" if s >= 4 else rng.choice(["wrong_policy", "no_next_step"])
        vs.append(_v(s, s >= 4, f"answer {i}: {'ok' if s >= 4 else 'misses the policy'}", mode))
    h = judge_health(vs, [PROMPT], min_score=4)
    assert h["degenerate"] is False and h["signals"] == [] and h["message"] is None
    # an all-pass set of good answers with varied scores and reasons is not degenerate either
    vs = [_v(4 + i % 2, True, f"clear answer {i}") for i in range(30)]
    assert judge_health(vs, [PROMPT], min_score=4)["degenerate"] is False


def test_few_verdicts_do_not_trigger_distribution_signals() -> None:
    vs = [_v(5, True, f"fine {i}") for i in range(6)]
    assert judge_health(vs, [PROMPT], min_score=4)["degenerate"] is False
    # 9 verdicts: a constant score is not yet evidence, a copied reason on every one already is
    vs = [_v(4, True, "Correct policy and a clear next step.") for _ in range(9)]
    assert [s["kind"] for s in judge_health(vs, [PROMPT], min_score=4)["signals"]] == ["copied_prompt"]


def test_repeated_reason_and_unscored_rows() -> None:
    vs = [_v(3 + i % 3, i % 3 > 0, "looks fine to me", "none" if i % 3 else "wrong_policy") for i in range(30)]
    vs += [{"judge_score": None, "judge_pass": None, "judge_reason": None, "judge_failure_mode": None}] * 5
    h = judge_health(vs, [PROMPT], min_score=4)
    assert h["verdicts"] == 30 and [s["kind"] for s in h["signals"]] == ["repeated_reason"]


def _copying_project(tmp_path: Path, srv: FakeServer) -> tuple[Project, Path]:
    p = Project(tmp_path, srv.url)
    p.write_dataset()
    p.write_rubric({**RUBRIC, "judge_prompt": PROMPT})
    return p, p.write_spec()


def test_degenerate_judge_is_said_in_every_view(tmp_path: Path) -> None:
    cfg = fake_config()
    cfg["rules"] = [{"model": "judge", "reply": EXAMPLE}] + [r for r in cfg["rules"] if r["model"] != "judge"]
    with FakeServer(cfg) as srv:
        project, spec = _copying_project(tmp_path, srv)
        r = project.cli("run", str(spec))
        assert r.returncode == 0, r.stderr
        assert "DEGENERATE JUDGE" in r.stdout and "carry no information" in r.stdout
        assert "12 of 12 reasons copy the judge prompt" in r.stdout
        assert "(degenerate)" in r.stdout  # the mean judge column says it, not "(uncal.)"
        run_id = r.stdout.split()[1]
        _, summary = project.cli_json("runs", "show", run_id)
        h = summary["judge_health"]
        assert h["degenerate"] is True and {s["kind"] for s in h["signals"]} == {"constant_score", "copied_prompt"}
        shown = project.cli("runs", "show", run_id)
        assert "DEGENERATE JUDGE" in shown.stdout
        out = tmp_path / "r.html"
        rep = project.cli("report", run_id, "--html", str(out))
        assert rep.returncode == 0, rep.stderr
        html = out.read_text()
        assert 'id="judge-health"' in html and "DEGENERATE JUDGE" in html and "(degenerate)" in html

        # --require-calibrated: a trusted calibration does not save a judge that is degenerate in this run
        from benchrun.ledger import Ledger
        from benchrun.spec import load_rubric

        rb = load_rubric(project.root / "rubrics" / "mini.yaml")
        led = Ledger(str(project.ledger))
        led.add_report("calibration", {"trusted": True, "kappa": 0.82, "n": 150}, summary="kappa 0.82 (n=150)",
                       judge_model="openai/judge", judge_prompt_hash=rb.judge_prompt_hash, rubric_hash=rb.hash)
        led.close()
        r = project.cli("run", str(spec), "--require-calibrated")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "gate failed: --require-calibrated: the judge is untrusted" in r.stderr


def test_healthy_fake_judge_is_not_flagged(project: Project) -> None:
    spec = project.setup()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0
    assert summary["judge_health"]["degenerate"] is False, summary["judge_health"]
    assert summary["judge_health"]["verdicts"] == 12 and summary["judge_health"]["contradictions"] == 0


def test_untrusted_calibration_is_marked_like_uncalibrated(project: Project, tmp_path: Path) -> None:
    """Issue 14, item 6: "NOT trusted — kappa 0.82 (0.59 to 1.00)" used to leave a bare 4.92 in the table."""
    from benchrun.ledger import Ledger
    from benchrun.spec import load_rubric

    spec = project.setup()
    _, summary = project.cli_json("run", str(spec))
    run_id = summary["conditions"]["run_id"]
    text = project.cli("runs", "show", run_id).stdout
    assert text.count("(uncal.)") == 2  # both models' mean judge score
    rb = load_rubric(project.root / "rubrics" / "mini.yaml")
    led = Ledger(str(project.ledger))
    led.add_report("calibration", {"trusted": False, "kappa": 0.82, "n": 30},
                   summary="kappa 0.82 (95% CI 0.59 to 1.00)", judge_model="openai/judge",
                   judge_prompt_hash=rb.judge_prompt_hash, rubric_hash=rb.hash)
    led.close()
    text = project.cli("runs", "show", run_id).stdout
    assert text.count("(untrusted)") == 2 and "(uncal.)" not in text
    assert "NOT trusted (judge scores are unverified)" in text
    out = tmp_path / "u.html"
    assert project.cli("report", run_id, "--html", str(out)).returncode == 0
    html = out.read_text()
    assert html.count('<span class="warn">(untrusted)</span>') == 2 and '<span class="warn">NOT trusted</span>' in html
