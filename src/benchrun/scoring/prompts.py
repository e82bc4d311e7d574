"""Every template benchrun renders goes through here: sandboxed, strict, checked before a run.

Templates come from files people share (a spec's ``prompt.template``, a rubric's ``judge_prompt``
and ``pairwise_prompt``) and from ledger rows (a run's stored snapshot), so they are untrusted code.
They render in Jinja2's `ImmutableSandboxedEnvironment`: no attribute starting with ``_``
(``__class__``, ``__mro__``, ``__subclasses__``, ``__globals__``, ``__init__``), no calls to
unsafe methods, no mutation of the values passed in. The environment has no globals besides
``range``, ``dict`` and ``namespace``: ``lipsum``, ``cycler`` and ``joiner`` (whose functions lead
to module globals) are not defined, nor is ``config`` or any other name a template does not receive.
`StrictUndefined` makes any other name an error instead of an empty string.

`check` validates a template offline (syntax, then every variable it reads against the variables
it receives), so a misspelt ``{{ respons }}`` fails ``validate`` with its template line instead of
crashing a run. Values are rendered once: a case input such as ``{{ 7*7 }}`` is text, never a template.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

# The variables each kind of template receives (see scoring/judge.py, scoring/pairwise.py, runner.py).
PROMPT_VARIABLES = frozenset({"input", "case", "choices", "choices_block"})  # choices: multiple-choice cases
JUDGE_VARIABLES = frozenset({"input", "ideal", "response", "criteria", "criteria_text", "scale", "scale_text",
                             "failure_modes", "failure_modes_text", "schema", "pass_rule"})
PAIRWISE_VARIABLES = frozenset({"input", "ideal", "response_a", "response_b", "criteria_text", "scale_text",
                                "failure_modes_text"})
_GLOBALS = {"range": range, "dict": dict}


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    namespace = env.globals.get("namespace")
    env.globals.clear()
    env.globals.update(_GLOBALS)
    if namespace is not None:
        env.globals["namespace"] = namespace
    return env


_ENV = _environment()
ALLOWED_GLOBALS = frozenset(_ENV.globals)


class TemplateCheckError(ValueError):
    """A template that cannot be rendered as written; the message says where and what to fix."""


@lru_cache(maxsize=64)
def template(source: str) -> Template:
    """The compiled, sandboxed template (compiling costs ~2 ms; a run renders the same few thousands of times)."""
    return _ENV.from_string(source)


def render(source: str, **variables: Any) -> str:
    """Render ``source`` in the sandbox. Raises `jinja2.TemplateError` (`SecurityError` for an unsafe access,
    `UndefinedError` for an unknown name)."""
    return template(source).render(**variables)


def _first_line(ast: nodes.Template, name: str) -> int | None:
    for node in ast.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return int(node.lineno)
    return None


def check(source: str, variables: Iterable[str], what: str) -> None:
    """Raise `TemplateCheckError` when ``source`` is not valid Jinja or reads a variable it does not receive.

    ``what`` names the template in the message (``judge_prompt``, ``template`` ...).
    """
    allowed = set(variables) | ALLOWED_GLOBALS
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as e:
        raise TemplateCheckError(f"{what} is not a valid template (template line {e.lineno}): {e.message}") from None
    used = meta.find_undeclared_variables(ast)
    if any(n.name == "self" for n in ast.find_all(nodes.Name)):  # Jinja's reference to the template itself
        used = used | {"self"}
    unknown = sorted(used - allowed,
                     key=lambda n: (_first_line(ast, n) or 0, n))
    if unknown:
        name = unknown[0]
        line = _first_line(ast, name)
        near = difflib.get_close_matches(name, sorted(variables), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise TemplateCheckError(
            f"{what} uses undefined variable '{name}'" + (f" (template line {line})" if line else "")
            + f"; {hint}it can use: {', '.join(sorted(variables))}")


def trial_render(source: str, variables: dict[str, Any], what: str) -> None:
    """Render ``source`` once with sample ``variables`` of the real types: raise `TemplateCheckError` when it tries
    an unsafe operation or reads a missing attribute (``{{ criteria[0].nam }}``), so validation catches it."""
    try:
        render(source, **variables)
    except TemplateError as e:
        line = _error_line(e)
        raise TemplateCheckError(f"{what} cannot be rendered" + (f" (template line {line})" if line else "")
                                 + f": {describe_error(e)}") from None


def _error_line(e: TemplateError) -> int | None:
    tb = e.__traceback__
    line = None
    while tb is not None:  # Jinja maps template frames to their template line ("<template>")
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe_error(e: TemplateError) -> str:
    """One line for a template that failed while rendering."""
    if isinstance(e, SecurityError):
        return f"the template tried an unsafe operation, refused by the sandbox ({e})"
    return f"{type(e).__name__}: {e}"
