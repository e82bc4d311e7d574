"""Templates cannot take the machine's memory: every bomb is refused before it builds its value.

Each bomb runs in a child process whose address space is capped (RLIMIT_AS, 3 GiB), so a guard that
regresses shows up as a MemoryError in that child (a failed test), not as the kernel killing the test run.
Without the guards, the first of these took 24 GB here before the kernel killed the process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import Project, make_cases
from reliability.relsupport import one_line_exit_2, runs_in

CAP = 3 * 1024**3

BOMBS = [
    "{{ range(10**9) | list | length }}",
    "{{ 'x' * 10**10 }}",
    "{{ [1] * 10**10 }}",
    "{% set s = input %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
    "{% set s = input %}" + "{% set s = s + s %}" * 40 + "{{ s | length }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "{{ 7 ** (10**9) }}",
    "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s }}{% endmacro %}{{ f(input, 60) | length }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ big }}{% endfor %}{% endfor %}",
    "{% set x %}{% for i in range(100000) %}{{ big }}{% endfor %}{% endset %}{{ x | length }}",
    "{% macro m() %}{% for i in range(100000) %}{{ big }}{% endfor %}{% endmacro %}{{ m() | length }}",
    "{{ input | center(10**10) }}",
    "{{ input | indent(10**10) }}",
    "{{ (big * 16000) | wordwrap(1, wrapstring=big) }}",
    "{{ (big * 16000) | replace('', big) }}",
    "{{ ([big] * 100000) | join }}",
    "{{ ([big] * 16000) | join(big) }}",
    "{{ [1, 2] | slice(10**10) | list }}",
    "{{ '%010000000000d' | format(1) }}",
    "{{ input.center(10**10) }}",
    "{{ input.ljust(10**10) }}",
    "{{ input.zfill(10**10) }}",
    "{{ ('\\t' * 1000).expandtabs(10**8) }}",
    "{{ (big * 16000).replace('', big) }}",
    "{{ big.join(range(100000) | map('string')) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ '%(a)1000000000s' % {'a': 1} }}",
    "{{ '{:>10000000000}'.format(1) }}",
    "{{ '{:.999999999f}'.format(1.0) }}",
    "{{ '{0:{1}}'.format(1, 10**9) }}",
    "{{ '{x:>1000000000}'.format_map({'x': 1}) }}",
]

CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    from jinja2.sandbox import SecurityError
    from benchrun.scoring import prompts
    out = []
    for src in json.loads(sys.stdin.read()):
        try:
            prompts.render(src, input="hello", items=[1, 2, 3], big="y" * 1000)
            out.append([src, "rendered", ""])
        except SecurityError as e:
            out.append([src, "refused", str(e)])
        except MemoryError:
            out.append([src, "MemoryError", ""])
    print(json.dumps(out))
""")


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def test_every_bomb_is_refused_before_it_takes_the_memory() -> None:
    r = subprocess.run([sys.executable, "-c", CHILD.format(cap=CAP)], input=json.dumps(BOMBS), capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout)
    assert len(results) == len(BOMBS)
    not_refused = [(src, how) for src, how, _ in results if how != "refused"]
    assert not_refused == []
    for src, _, why in results:
        assert "over the limit of" in why, (src, why)  # says what was refused, and the limit


def test_templates_under_the_limits_still_render() -> None:
    from benchrun.scoring import prompts

    big = "y" * 1000
    assert len(prompts.render("{{ big * 16000 }}", big=big)) == 16_000_000  # just under the limit
    assert prompts.render("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"
    assert prompts.render("{{ '-' * 20 }}") == "-" * 20
    assert prompts.render("{{ 2 ** 100 }}") == str(2**100)
    assert prompts.render("{{ '{:>6}|{:.2f}'.format('ab', 3.14159) }}") == "    ab|3.14"
    assert prompts.render("{{ '%5s|%03d' % ('ab', 7) }}") == "   ab|007"
    assert prompts.render("{{ items | join(', ') }}", items=[1, 2, 3]) == "1, 2, 3"
    assert prompts.render("{{ ', '.join(items | map('string')) }}", items=[1, 2, 3]) == "1, 2, 3"
    assert prompts.render("{{ 'a\\nb' | indent(2, first=True) }}") == "  a\n  b"
    ns = "{% set ns = namespace(s='') %}{% for i in range(5) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}"
    assert prompts.render(ns) == "01234"


def test_a_run_whose_template_is_a_bomb_is_bad_input_and_records_nothing(project: Project) -> None:
    project.write_dataset(make_cases(2))
    project.write_rubric()
    spec = project.write_spec(prompt={"version": "1", "template": "{{ input }}{{ range(10**9) | list | length }}"})
    exe = Path(sys.executable).parent / "benchrun"
    r = subprocess.run([str(exe), "run", str(spec)], cwd=project.root, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "BENCHRUN_LEDGER": str(project.ledger)}, preexec_fn=_capped, check=False)
    msg = one_line_exit_2(r)
    assert "mini.yaml" in msg and "case case-000" in msg, msg
    assert "range of 1,000,000,000 items, over the limit of 100,000" in msg, msg
    assert not project.ledger.exists() or runs_in(project.ledger) == 0


@pytest.mark.parametrize("src", ["{{ 'x' * 10**10 }}", "{{ input | center(10**10) }}"])
def test_the_refusal_names_the_limit(src: str) -> None:
    from jinja2.sandbox import SecurityError

    from benchrun.scoring import prompts

    with pytest.raises(SecurityError, match="over the limit of 16,777,216"):
        prompts.render(src, input="x")
