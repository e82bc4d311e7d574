"""`prompts.render` against Jinja's own `Template.render`: the same text, the same errors, the same lines.

`render` builds the template context itself (one plain dict of the sandbox's globals instead of two copies
of a ChainMap per call); whatever a template does, the result must be what `Template.render` gives.
"""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import TemplateError
from jinja2.sandbox import SecurityError

from benchrun.scoring import prompts

VARS: dict[str, Any] = {"input": "Why was I charged twice?", "case": {"id": "c1", "tags": ["a", "b"]},
                        "items": [1, 2, 3], "flag": False}

SOURCES = [
    "{{ input }}",
    "plain text, no tags\n",
    "{% for i in range(3) %}{{ i }},{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for x in items %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}",
    "{{ dict(a=1, b=2) | dictsort }}",
    "{{ case.id | upper }} {{ case['tags'] | join('+') }} {{ case.tags | length }}",
    "{% if flag %}yes{% else %}no{% endif %}",
    "{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(input) }}{{ m('x') }}",
    "{% block body %}in a block: {{ input }}{% endblock %}",
    "{% set local = input ~ '!' %}{{ local }}",
    "{{ self.body() }}{% block body %}B{% endblock %}",
    "{{ input | replace('twice', 'once') | truncate(12) }}",
    "{{ '%s-%d' | format('a', 3) }}",
    "{% raw %}{{ not rendered }}{% endraw %}",
]

BAD_SOURCES = [
    "line one\n{{ missing }}",  # StrictUndefined
    "{{ case.nope.deeper }}",
    "{{ input.__class__ }}",  # the sandbox
    "{{ items.append(4) }}",  # immutable sandbox: no mutation of the values passed in
    "\n\n{{ 1 / 0 }}",
    "{{ lipsum() }}",  # not a global here
    "{{ range(10**9) | list | length }}",  # the sandbox caps range
]


@pytest.mark.parametrize("source", SOURCES)
def test_render_gives_what_template_render_gives(source: str) -> None:
    expected = prompts.template(source).render(**VARS)
    assert prompts.render(source, **VARS) == expected
    assert prompts.render(source, **VARS) == expected  # twice: nothing is left behind between renders


def test_a_variable_named_like_a_global_shadows_it_as_in_jinja() -> None:
    source = "{{ range }}"
    assert prompts.render(source, range="mine") == prompts.template(source).render(range="mine") == "mine"
    assert "range" in prompts.render("{{ range(2) }}")  # and the global is back for the next render


def _outcome(f: Any) -> tuple[type[BaseException], str, int | None]:
    try:
        f()
    except Exception as e:  # compared, type and all
        return type(e), str(e), prompts._error_line(e) if isinstance(e, TemplateError) else _line_of(e)
    raise AssertionError("expected an error")


def _line_of(e: BaseException) -> int | None:
    tb, line = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_render_fails_as_template_render_fails(source: str) -> None:
    ours = _outcome(lambda: prompts.render(source, **VARS))
    jinja = _outcome(lambda: prompts.template(source).render(**VARS))
    assert ours == jinja


def test_unsafe_access_is_a_security_error_with_its_template_line() -> None:
    with pytest.raises(SecurityError) as e:
        prompts.render("ok\n{{ input.__class__.__mro__ }}", **VARS)
    assert prompts._error_line(e.value) == 2
