"""Numbers and words in the forms people read them (issue 14, items 10 and 12, the parts done here)."""

from __future__ import annotations

from typing import Any

from conftest import Project, make_cases


def test_p_values_and_money_differences() -> None:
    from benchrun.report.terminal_compare import _p_is, _signed_money

    assert _p_is(0.0004) == "p < 0.001" and _p_is(0.0312) == "p = 0.031" and _p_is(None) == "p n/a"
    assert _signed_money(-1e-9) == "$0.000000"  # was "$-0.000000"
    assert _signed_money(-0.00012) == "-$0.000120" and _signed_money(0.00012) == "+$0.000120"


def test_wins_are_counts_not_a_dict() -> None:
    from benchrun.report.judge_trust import _counts

    assert _counts({"good": 0, "sloppy": 0, "tie": 12}) == "good 0, sloppy 0, tie 12"


def test_category_list_says_what_it_leaves_out_and_help_texts(project: Project) -> None:
    cases = make_cases(8)
    for i, c in enumerate(cases):
        c["category"] = f"cat{i}"
        c["input"] = c["input"] + " I have refunded"  # the fake "bad" model fails everything anyway
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/bad", "alias": "bad", "api_base": project.url}])
    r = project.cli("run", str(spec))
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("categories:"))
    assert line.count("/1") == 6 and "… and 2 more (--json lists all)" in line
    v = project.cli("validate", str(spec))
    assert "8 cases × 1 candidate × 1 sample;" in v.stdout
    h = project.cli("runs", "show", "--help", env={"COLUMNS": "200"})
    assert "Exit 1 if any case of this severity or worse is not passed" in h.stdout


def test_no_bool_placeholders_in_any_help() -> None:
    """Flags show no `<bool>` type in --help (typer prints one per flag): every command and sub-command."""
    import subprocess
    import sys
    from pathlib import Path

    from benchrun.cli.app import COMMANDS, load_command

    exe = str(Path(sys.executable).parent / "benchrun")
    paths: list[list[str]] = [[]]
    for name in COMMANDS:
        cmd = load_command(name)
        paths.append([name])
        paths += [[name, sub] for sub in getattr(cmd, "commands", {})]
    assert len(paths) > 15
    for p in paths:
        h = subprocess.run([exe, *p, "--help"], capture_output=True, text=True, env={"COLUMNS": "120", "PATH": ""},
                           check=False)
        assert h.returncode == 0 and "--help" in h.stdout, (p, h.stderr)
        assert "<bool>" not in h.stdout, (p, h.stdout)


def test_reproductions_marked_paths_tidy_and_warnings_once(project: Project) -> None:
    import yaml

    spec = project.setup()
    _, s = project.cli_json("run", str(spec))
    run1 = s["conditions"]["run_id"]
    rep = project.cli("reproduce", run1, "--from-cache")
    assert rep.returncode == 0, rep.stderr
    # the spec names ../datasets/mini.yaml: shown as the file's own path, not runs/../datasets
    assert "datasets/mini.yaml: unchanged" in rep.stdout and "/../" not in rep.stdout + rep.stderr
    _, rows = project.cli_json("runs", "list")
    repro = [x for x in rows if x["reproduction_of"]]
    assert len(repro) == 1 and repro[0]["reproduction_of"] == run1 and repro[0]["id"] != run1
    plain = project.cli("runs", "list").stdout
    assert sum("(repro)" in ln and repro[0]["id"] in ln for ln in plain.splitlines() if "│" in ln) == 1
    assert f"{repro[0]['id']} of {run1}" in plain
    # a different rubric: the DIFFERENT SCORING warning once (stderr), not again in the table on stdout
    rub = yaml.safe_load((project.root / "rubrics" / "mini.yaml").read_text())
    rub["version"] = "2"
    project.write_rubric(rub)
    _, s2 = project.cli_json("run", str(spec))
    c = project.cli("compare", f"{s2['conditions']['run_id']}:good", f"{run1}:good")
    assert c.returncode == 0, c.stderr
    assert (c.stdout + c.stderr).count("DIFFERENT SCORING") == 1 and "WARNING: DIFFERENT SCORING" in c.stderr


def test_misspelt_keys_get_the_near_match(project: Project) -> None:
    import yaml

    spec = project.setup()
    base = yaml.safe_load(spec.read_text())

    def validate(mutate: Any) -> str:
        s = yaml.safe_load(yaml.safe_dump(base))
        mutate(s)
        spec.write_text(yaml.safe_dump(s))
        r = project.cli("validate", str(spec))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        return r.stderr

    assert "candidates: required field is missing; the file has 'candidate': did you mean 'candidates'?" in \
        validate(lambda s: s.__setitem__("candidate", s.pop("candidates")))
    assert "sampling.temprature: unknown field; did you mean 'temperature'?" in \
        validate(lambda s: s["sampling"].__setitem__("temprature", 0))
    assert "retires: unknown field; did you mean 'retries'?" in validate(lambda s: s.__setitem__("retires", {}))
    assert "zzz: unknown field; remove it or check its spelling" in validate(lambda s: s.__setitem__("zzz", 1))


def test_refresh_reason_says_the_budget_ran_out_instead_of_sampled_aggressively() -> None:
    import numpy as np

    from benchrun.coverage.refresh import Unit, why

    starved = Unit("c7", [7], "card arrival", 0.031, 0.0, 0, np.arange(3), weight=0.03, allocated=0)
    text = why(starved, 0.005, 12)
    assert "sampled aggressively" not in text
    assert "no eval case yet, but all 12 new cases went to clusters that needed them more" in text and "--n" in text
    fed = Unit("c1", [1], "refund", 0.2, 0.0, 0, np.arange(3), weight=0.2, allocated=5)
    assert why(fed, 0.005, 12) == "20.0% of traffic; no eval case yet, so sampled aggressively -> 5 new"
    covered = Unit("c2", [2], "pin", 0.1, 0.2, 4, np.arange(3), weight=0.0, allocated=0)
    assert "already covered, so sampled lightly -> 0 new" in why(covered, 0.005, 12)


def test_cost_axis_ticks_are_round_numbers() -> None:
    from benchrun.report.html import nice_ticks, quality_cost_svg

    assert nice_ticks(0.0156) == ([0.0, 0.005, 0.01, 0.015, 0.02], 3)
    assert nice_ticks(0.0312) == ([0.0, 0.01, 0.02, 0.03, 0.04], 2)
    assert nice_ticks(12.3) == ([0, 5, 10, 15], 0)
    assert nice_ticks(0.87)[0][-1] == 1.0 and nice_ticks(0.0)[0][0] == 0.0
    svg = str(quality_cost_svg([{"key": "a", "cost_per_1k": 0.0078, "pass_rate": 0.5, "low": 0.3, "high": 0.7},
                                {"key": "b", "cost_per_1k": 0.0156, "pass_rate": 0.8, "low": 0.6, "high": 0.9}]))
    import re

    ticks = re.findall(r'class="tick"[^>]*text-anchor="middle">([^<]+)<', svg)
    assert ticks == ["$0.000", "$0.005", "$0.010", "$0.015", "$0.020"], ticks


def test_verbosity_report_says_what_not_flagged_and_negative_inflation_mean() -> None:
    from scipy.stats import binomtest

    from benchrun.analysis.bias import VerbosityItem, verbosity_report

    # 12 items: padding lowers the score on 10 (by 1 or 2 points), raises it on 2
    items = [VerbosityItem(f"i{k}", 4.0, {"filler": 4.0 - (1 + k % 2) if k < 10 else 5.0}) for k in range(12)]
    rep = verbosity_report(items)
    assert not rep.flagged and rep.inflation is not None and rep.inflation.high < 0
    assert rep.mean_inflation == (-(5 * 1 + 5 * 2) + 2 * 1) / 12
    assert any("padding LOWERS this judge's scores (mean -1.08 points" in n for n in rep.notes), rep.notes
    # 2 of 12 higher: the Wilson upper bound (independent value: scipy's binomtest) is past 10%
    hi = binomtest(2, 12).proportion_ci(0.95, method="wilson").high
    assert abs(rep.padded.higher.high - hi) < 1e-9 and hi > 0.10
    assert any(f"reaches {hi:.0%}" in n and "cannot rule out" in n for n in rep.notes), rep.notes
    # a clearly neutral judge on many items: no such note
    calm = [VerbosityItem(f"j{k}", 4.0, {"filler": 4.0}) for k in range(400)]
    assert not any("cannot rule out" in n for n in verbosity_report(calm).notes)


def _table(n_eval: int, eval_clusters: list[int]) -> dict[str, Any]:
    import numpy as np

    from benchrun.coverage.report import coverage_table

    k = 10
    prod = np.repeat(np.arange(k), 100)  # 10 clusters, equal traffic
    return coverage_table(cluster_ids=list(range(k)), prod_labels=prod, prod_weights=np.ones(len(prod)),
                          eval_labels=np.asarray(eval_clusters[:n_eval]), eval_outside=np.zeros(n_eval, dtype=bool),
                          eval_ids=[f"c{i}" for i in range(n_eval)], eval_added=[None] * n_eval,
                          cluster_labels={i: f"intent {i}" for i in range(k)},
                          representatives={i: [] for i in range(k)})


def test_coverage_headline_says_first_when_the_eval_set_is_too_small_to_tell() -> None:
    from benchrun.coverage.report import headline

    # 12 cases spread like a random draw: the JSD is as large as sampling noise alone makes it
    small = _table(12, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    s = small["score"]
    assert s["within_noise"] and s["jsd"] <= s["floor_p95"]
    small["dataset"] = {"n_cases": 12}
    text = headline(small)
    assert text.startswith("with 12 eval cases the score cannot tell: a random sample of 12 production queries")
    assert f"this set scores {s['jsd']:.3f}" in text
    # 400 cases all in two clusters: clearly unrepresentative, no caveat
    big = _table(400, [0, 1] * 200)
    assert not big["score"]["within_noise"] and big["score"]["band"] == "refresh"
    big["dataset"] = {"n_cases": 400}
    assert headline(big).startswith("coverage JSD")


def test_self_preference_warning_printed_once_per_candidate(project: Project, server: Any) -> None:
    from conftest import fake_config

    first = '{"winner": "A", "reason": "the first answer is better"}'
    server.set_config(fake_config(rules=[
        {"model": "judge", "regex": r"\[Answer A\]\n<<<ANSWER-[^\n]*\nSorry about that", "reply": first},
        {"model": "judge", "regex": r"\[Answer B\]\n<<<ANSWER-[^\n]*\nSorry about that",
         "reply": '{"winner": "B", "reason": "the second answer is better"}'}, *fake_config()["rules"]]))
    project.write_dataset(make_cases(6))
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/qwen-good", "alias": "good", "api_base": project.url},
                                          {"model": "openai/bad", "alias": "bad", "api_base": project.url}],
                              judge={"model": "openai/qwen-judge", "api_base": project.url})
    _, s = project.cli_json("run", str(spec))
    r = project.cli("bias", "position", "--run", s["conditions"]["run_id"], "--a", "good", "--b", "bad")
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    assert both.count("self-preference risk") == 1 and "candidate good (openai/qwen-good)" in both, both


def test_pass_at_k_never_shows_a_point_interval() -> None:
    """12 problems all solved: the bootstrap would say "100.0 to 100.0"; the interval is the conservative
    Wilson bound for a mean in [0, 1] (independent value: scipy's Wilson interval for 12 of 12)."""
    from scipy.stats import binomtest

    from benchrun.analysis.passk import pass_at_k_difference, pass_at_k_summary

    counts = {f"p{i}": (5, 5) for i in range(12)}
    s = pass_at_k_summary(counts, [1, 5])
    ci = binomtest(12, 12).proportion_ci(0.95, method="wilson")
    for k in (1, 5):
        assert s[k].estimate == 1.0 and s[k].high == 1.0 and abs(s[k].low - ci.low) < 1e-9 and s[k].low < 0.8
        assert "Wilson bound" in s[k].method
    d = pass_at_k_difference(counts, counts, 1)
    hi = binomtest(0, 12).proportion_ci(0.95, method="wilson").high
    assert d.difference == 0.0 and abs(d.high - hi) < 1e-9 and abs(d.low + hi) < 1e-9 and "none differs" in d.method
