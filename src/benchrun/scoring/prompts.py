"""Every template benchrun renders goes through here: sandboxed, strict, checked before a run.

Templates come from files people share (a spec's ``prompt.template``, a rubric's ``judge_prompt``
and ``pairwise_prompt``) and from ledger rows (a run's stored snapshot), so they are untrusted code.
They render in Jinja2's `ImmutableSandboxedEnvironment`: no attribute starting with ``_``
(``__class__``, ``__mro__``, ``__subclasses__``, ``__globals__``, ``__init__``), no calls to
unsafe methods, no mutation of the values passed in. The environment has no globals besides
``range``, ``dict`` and ``namespace``: ``lipsum``, ``cycler`` and ``joiner`` (whose functions lead
to module globals) are not defined, nor is ``config`` or any other name a template does not receive.
`StrictUndefined` makes any other name an error instead of an empty string.

Jinja's sandbox guards attribute access, not size: ``{{ range(10**9) | list }}`` (with Python's own
``range``), ``{{ 'x' * 10**10 }}`` or forty lines of ``{% set s = s ~ s %}`` would take all the memory of
the machine (the first was seen here: 24 GB, then the kernel killed the process). So every value a
template builds is bounded, before it is built where the size is known in advance: ``range`` is bounded as
Jinja's ``safe_range`` (at most 100,000 items); ``+``, ``*``, ``%`` and ``**``, the ``~`` join, macro and block
output, ``namespace`` attributes, the string methods and filters that take a width or a count, and the
rendered text itself are refused past `MAX_CHARS` characters (or items; integers past `MAX_INT_BITS`
bits) with a `SecurityError` naming the limit, which `benchrun validate` and the pre-run template check
report as bad input, not a crash.

`check` validates a template offline (syntax, then every variable it reads against the variables
it receives), so a misspelt ``{{ respons }}`` fails ``validate`` with its template line instead of
crashing a run. Values are rendered once: a case input such as ``{{ 7*7 }}`` is text, never a template.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

# The variables each kind of template receives (see scoring/judge.py, scoring/pairwise.py, runner.py).
PROMPT_VARIABLES = frozenset({"input", "case", "choices", "choices_block"})  # choices: multiple-choice cases
JUDGE_VARIABLES = frozenset({"input", "ideal", "response", "criteria", "criteria_text", "scale", "scale_text",
                             "failure_modes", "failure_modes_text", "schema", "pass_rule"})
PAIRWISE_VARIABLES = frozenset({"input", "ideal", "response_a", "response_b", "criteria_text", "scale_text",
                                "failure_modes_text"})
MAX_CHARS = 16 * 1024 * 1024  # characters of any string a template builds, or items of a list (and of its output)
MAX_INT_BITS = 65_536  # an integer of 19,729 decimal digits


def _too_big(n: int, what: str = "a value") -> SecurityError:
    return SecurityError(f"the template would build {what} of {n:,} characters or items, over the limit of "
                         f"{MAX_CHARS:,}; templates are bounded (see benchrun.scoring.prompts)")


def _too_many_bits(n: int) -> SecurityError:
    return SecurityError(f"the template would build an integer of about {n:,} bits, over the limit of "
                         f"{MAX_INT_BITS:,} bits")


def _size(v: Any) -> int:
    return len(v) if isinstance(v, (str, bytes, list, tuple)) else 0


def _check_size(v: Any, what: str = "a value") -> Any:
    if _size(v) > MAX_CHARS:
        raise _too_big(_size(v), what)
    if isinstance(v, int) and v.bit_length() > MAX_INT_BITS:
        raise _too_many_bits(v.bit_length())
    return v


def _count(v: Any) -> int:
    return v if isinstance(v, int) else 0


_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


def _printf_budget(fmt: str) -> None:
    """Refuse a ``%`` format whose widths would build more than `MAX_CHARS` (a ``*`` width takes its size from
    the arguments: refused too, as no prompt needs it)."""
    for m in _PRINTF_WIDTH.finditer(fmt):
        for g in m.groups():
            if g == "*":
                raise SecurityError("the template uses a '*' width in a % format, over the limit of what a template may "
                                "ask for (a width from the arguments); give the width as a number")
            if g is not None and (len(g) > 9 or int(g) > MAX_CHARS):
                raise _too_big(int(g[:12]), "a formatted field")


def _format_budget(fmt: str) -> None:
    """The same for ``str.format`` / ``format_map`` fields (``{:>1000000000}``, ``{:.999999999f}``); a nested
    field (``{:{w}}``) is refused, as its width comes from the arguments."""
    plain = fmt.replace("{{", "").replace("}}", "")
    if re.search(r"\{[^{}]*\{", plain):
        raise SecurityError("the template uses a nested field in a format string, over the limit of what a "
                            "template may ask for (a width from the arguments); give the width as a number")
    for m in _FORMAT_FIELD.finditer(plain):
        spec = m.group(1).partition(":")[2]
        for d in _DIGITS.findall(spec):
            if len(d) > 9 or int(d) > MAX_CHARS:
                raise _too_big(int(d[:12]), "a formatted field")


def _binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``left op right`` when its result would be over the limits, before it is computed."""
    if op == "+" and _size(left) and _size(right):
        if _size(left) + _size(right) > MAX_CHARS:
            raise _too_big(_size(left) + _size(right))
    elif op == "*":
        for seq, n in ((left, right), (right, left)):
            if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > MAX_CHARS:
                raise _too_big(_size(seq) * n)
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _too_many_bits(left.bit_length() + right.bit_length())
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise _too_many_bits(right * (abs(left).bit_length() - 1))
    elif op == "%" and isinstance(left, str):
        _printf_budget(left)


def _join_size(seq: list[Any] | tuple[Any, ...], sep: str = "") -> int:
    """Characters of ``sep.join(map(str, seq))``, counted up to just past `MAX_CHARS` (then the count stops)."""
    n = max(len(seq) - 1, 0) * len(sep)
    for x in seq:
        if n > MAX_CHARS:
            break
        n += len(x) if isinstance(x, str) else len(str(x))
    return n


def _replace_size(text: str, old: str, new: str) -> int:
    """An upper bound on the characters of ``text.replace(old, new)`` (an empty ``old`` matches between
    every two characters)."""
    hits = len(text) + 1 if old == "" else text.count(old)
    return len(text) + hits * len(new)


def _str_method_budget(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a string method call whose result would be over `MAX_CHARS`, before it runs; the arguments to call
    it with (an iterable given to ``join`` is read once, into a list, to be counted)."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name == "join" and len(args) == 1 and not kwargs and not isinstance(args[0], (str, list, tuple)):
        args = (list(args[0]),)
    a = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill") and a and _count(a[0]) > MAX_CHARS:
        raise _too_big(_count(a[0]))
    if name == "expandtabs" and a and owner.count("\t") * _count(a[0]) > MAX_CHARS:
        raise _too_big(owner.count("\t") * _count(a[0]))
    if name == "replace" and len(a) >= 2 and isinstance(a[0], str) and isinstance(a[1], str):
        if (n := _replace_size(owner, a[0], a[1])) > MAX_CHARS:
            raise _too_big(n)
    if name == "join" and a and isinstance(a[0], (list, tuple)) and _join_size(a[0], owner) > MAX_CHARS:
        raise _too_big(_join_size(a[0], owner))
    return args


def _guarded_filter(name: str, f: Any) -> Any:
    """``f``, refusing first the calls whose result would be over `MAX_CHARS` (the filters that take a width or
    a count, or repeat one string between others); every other filter's result is proportional to its input."""

    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # Jinja passes a context / environment first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        vals = list(args[skip:])
        value, rest = (vals[0], vals[1:]) if vals else (None, [])
        opt = [*rest, *kwargs.values()]
        text = value if isinstance(value, str) else ""
        if name == "center" and opt and _count(opt[0]) > MAX_CHARS:
            raise _too_big(_count(opt[0]))
        if name == "indent" and opt:
            width = opt[0] if isinstance(opt[0], str) else " " * min(_count(opt[0]), MAX_CHARS + 1)
            if len(text) + (text.count("\n") + 1) * len(width) > MAX_CHARS:
                raise _too_big(len(text) + (text.count("\n") + 1) * len(width))
        if name == "wordwrap":
            wrap = next((o for o in opt if isinstance(o, str)), "\n")
            if len(text) * (1 + len(wrap)) > MAX_CHARS:
                raise _too_big(len(text) * (1 + len(wrap)))
        if name == "replace" and len(opt) >= 2 and isinstance(opt[0], str) and isinstance(opt[1], str):
            if (n := _replace_size(text, opt[0], opt[1])) > MAX_CHARS:
                raise _too_big(n)
        if name == "join" and value is not None and not isinstance(value, str):
            sep = opt[0] if opt and isinstance(opt[0], str) else ""
            value = list(value)  # once: an iterator would be spent by the count
            args = (*args[:skip], value, *args[skip + 1:])
            if _join_size(value, sep) > MAX_CHARS:
                raise _too_big(_join_size(value, sep))
        if name in ("slice", "batch") and opt and _count(opt[0]) > MAX_CHARS:
            raise _too_big(_count(opt[0]))
        if name == "format" and isinstance(value, str):
            _printf_budget(value)
        return _check_size(f(*args, **kwargs))

    for attr in ("jinja_pass_arg", "__name__", "__doc__"):  # Jinja reads jinja_pass_arg to pass the context
        if hasattr(f, attr):
            setattr(guarded, attr, getattr(f, attr))
    return guarded


def _bounded_concat(parts: Iterable[Any]) -> str:
    """`Environment.concat` (macro, block and ``{% set %}...{% endset %}`` output): refused past `MAX_CHARS`."""
    seq = parts if isinstance(parts, list) else list(parts)
    n = sum(len(x) if isinstance(x, str) else 0 for x in seq)
    if n > MAX_CHARS:
        raise _too_big(n, "a text")
    return "".join(seq)


def _bounded_str_join(seq: Iterable[Any]) -> str:
    """Jinja's ``str_join`` (the ``~`` operator), refused past `MAX_CHARS`."""
    return _bounded_concat([str(x) for x in seq])


def _range(*args: int) -> range:
    """``range``, at most Jinja's ``MAX_RANGE`` (100,000) items, as its ``safe_range``; refused with a
    `SecurityError` (a template error, so reported as bad input) where ``safe_range`` raises OverflowError."""
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"the template asks for a range of {len(rng):,} items, over the limit of {MAX_RANGE:,}")
    return rng


class _BoundedNamespace(Namespace):
    """``namespace()``, whose attributes cannot hold a value over the limits (a loop could double one)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _check_size(value))


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    concat = staticmethod(_bounded_concat)  # type: ignore[assignment]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # (names as Jinja's own)
        args = _str_method_budget(__obj, args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        """Jinja's sandboxed ``str.format`` / ``format_map`` (made when the template reads the attribute), after
        the format string's widths are checked."""
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _format_budget(owner)
        return super().wrap_str_format(value)


_GLOBALS = {"range": _range, "dict": dict, "namespace": _BoundedNamespace}


def _environment() -> ImmutableSandboxedEnvironment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    env.globals.update(_GLOBALS)
    env.filters = {name: _guarded_filter(name, f) for name, f in env.filters.items()}
    return env


_ENV = _environment()
ALLOWED_GLOBALS = frozenset(_ENV.globals)
# What each template's globals hold: templates come from `template` only, with no globals of their own, so every
# one of them sees exactly the environment's (`Template.globals` is a ChainMap over them, slow to copy per render)
_FLAT_GLOBALS = dict(_ENV.globals)


class TemplateCheckError(ValueError):
    """A template that cannot be rendered as written; the message says where and what to fix."""


@lru_cache(maxsize=64)
def template(source: str) -> Template:
    """The compiled, sandboxed template (compiling costs ~2 ms; a run renders the same few thousands of times)."""
    t = _ENV.from_string(source)
    # the ``~`` operator compiles to a call of ``str_join``, looked up in this template's own module namespace
    # (made for it by from_string): bounded there, for this template only
    t.root_render_func.__globals__["str_join"] = _bounded_str_join  # type: ignore[attr-defined]
    return t


def render(source: str, **variables: Any) -> str:
    """Render ``source`` in the sandbox. Raises `jinja2.TemplateError` (`SecurityError` for an unsafe access,
    `UndefinedError` for an unknown name).

    What `Template.render` does (`jinja2.environment.Template.render`, Jinja 3.1), less its two copies of
    the globals' ChainMap per call: the context is made from one plain dict of them (about 6 µs a render
    instead of 15, for a short prompt on a 2-core Xeon VM, size bounds included; a replay of 2,000 cases
    x 2 models renders 12,000 times). The sandbox is the template's compiled code calling the
    environment's checked attribute access and calls, so it is unchanged;
    `tests/test_prompts_render.py` checks output and errors against `Template.render`.
    """
    t = template(source)
    ctx = _ENV.context_class(_ENV, {**_FLAT_GLOBALS, **variables}, t.name, t.blocks, globals=_FLAT_GLOBALS)
    try:
        out: list[str] = []
        n = 0
        for part in t.root_render_func(ctx):  # type: ignore[attr-defined]
            n += len(part)
            if n > MAX_CHARS:  # a loop printing a large input 100,000 times: stopped as it streams
                raise _too_big(n, "a text")
            out.append(part)
        return "".join(out)
    except Exception:
        _ENV.handle_exception()  # as Template.render: the traceback then shows template lines ("<template>")


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
