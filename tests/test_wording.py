"""Numbers and words in the forms people read them (issue 14, items 10 and 12, the parts done here)."""

from __future__ import annotations

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
