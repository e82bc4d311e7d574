"""The ``python_tests`` check: run the answer's code against the case's tests in the sandbox.

A case carries ``{type: python_tests, tests, entry_point, prompt_prefix, setup, timeout_s}``. The
program that runs is, in this order (each part on its own lines, the answer joined to the prompt
exactly as HumanEval does, so that both a completion of the prompt's function and a whole
function work)::

    <setup>                       (optional: imports or fixtures the tests need)
    <case input><answer's code>   (the input only with prompt_prefix: true)
    <tests>
    check(<entry_point>)          (only when the tests define check(), HumanEval's convention)

The answer's code is the first fenced block (any language tag; an unterminated fence runs to the
end, as when max_tokens cut the answer) or else the whole answer. The outcome record keeps the
exact program, where each part starts, how the code was extracted and everything
:class:`benchrun.scoring.sandbox.Execution` says (outcome, failing line and test, output tails,
wall and CPU time, isolation).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchrun.scoring.sandbox import ISOLATION_BWRAP, Execution, Sandbox
from benchrun.spec import Case, Check

DEFAULT_TIMEOUT_S = 10.0
MAX_PROGRAM_CHARS = 1_000_000
_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)

_default_sandbox: Sandbox | None = None


def default_sandbox() -> Sandbox:
    """The sandbox used when none is given: bwrap, refusing to run without it."""
    global _default_sandbox
    if _default_sandbox is None:
        _default_sandbox = Sandbox()
    return _default_sandbox


def sandbox_for_run(cases: Iterable[Case], *, unsafe: bool = False) -> tuple[Sandbox | None, str | None]:
    """The sandbox a run's code checks use and the isolation it gives, before any model is called.

    ``(None, None)`` when no case runs code. Raises :class:`SandboxUnavailable` when some case does
    and nothing may run it (no working bubblewrap and ``unsafe`` not given): such a run would pay for
    every answer and then record every code case as an error, so it is refused up front.
    """
    if not any(c.type == "python_tests" for case in cases for c in case.checks):
        return None, None
    box = Sandbox(unsafe=unsafe)
    iso = box.require()
    if iso == ISOLATION_BWRAP:
        version = box.probe().version
        return box, f"bwrap (Python {version} inside)" if version else iso
    return box, f"{iso} (--unsafe-exec: no isolation, rlimits only)"


def extract_code(answer: str) -> tuple[str, str]:
    """The code in an answer and how it was found: ``fenced block``, ``unterminated fenced block`` or ``whole answer``."""
    m = _FENCE.search(answer)
    if m is None:
        return answer, "whole answer"
    closed = answer.find("```", m.start(1)) != -1
    return m.group(1), "fenced block" if closed else "unterminated fenced block"


def _defines(code: str, name: str) -> bool:
    """Whether ``code`` parses and defines function ``name`` at its top level."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in tree.body)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def join_prompt(prompt: str, code: str, entry_point: str | None) -> tuple[str, str]:
    """The prompt and the answer as one piece of code, and how they were joined.

    A completion is appended to the prompt as it is (HumanEval). An answer that defines the entry
    point itself (a whole function) follows the prompt, which stays for its imports and helpers; a
    prompt that ends in a bare ``def`` line gets a ``pass`` body so that it still parses.
    """
    if entry_point and _defines(code, entry_point):
        for stub, how in ((prompt, "whole function after the prompt"),
                          (prompt.rstrip("\n") + "\n    pass\n", "whole function after the prompt (stub body added)")):
            if _parses(stub):
                return stub.rstrip("\n") + "\n\n" + code, how
        return code, "whole function (the prompt does not parse without its body; dropped)"
    return prompt + code, "completion appended to the prompt"


@dataclass(frozen=True)
class Program:
    source: str
    parts: list[tuple[str, int, int]]  # (name, first line, last line), 1-based, in program order
    extraction: str

    def part_at(self, line: int | None) -> tuple[str, int] | None:
        """Which part a program line belongs to, and the line number within that part."""
        if line is None:
            return None
        for name, first, last in self.parts:
            if first <= line <= last:
                return name, line - first + 1
        return None


def build_program(check: Check, case: Case, answer: str) -> Program:
    """The exact program a ``python_tests`` check runs for this answer."""
    code, how = extract_code(answer)
    chunks: list[tuple[str, str]] = []
    if check.setup:
        chunks.append(("setup", check.setup.rstrip("\n") + "\n"))
    if check.prompt_prefix:
        solution, joined = join_prompt(case.input_text(), code, check.entry_point)
        how = f"{how}; {joined}"
    else:
        solution = code
    chunks.append(("answer", solution.rstrip("\n") + "\n"))
    chunks.append(("tests", (check.tests or "").rstrip("\n") + "\n"))
    if check.entry_point and _defines(check.tests or "", "check"):
        chunks.append(("check", f"check({check.entry_point})\n"))
    parts: list[tuple[str, int, int]] = []
    line = 1
    src = []
    for name, text in chunks:
        n = text.count("\n")
        parts.append((name, line, line + n - 1))
        line += n
        src.append(text)
    # what runs is UTF-8: code points that cannot be encoded (lone surrogates from JSON escapes) become "?",
    # here, so that the recorded program is the one that ran
    source = "".join(src).encode("utf-8", "replace").decode("utf-8")
    return Program(source, parts, how)


def _detail(ex: Execution, prog: Program) -> str:
    where = prog.part_at(ex.line)
    loc = ""
    if where is not None:
        name, n = where
        loc = {"tests": f" at test line {n}", "answer": f" in the answer (line {n})", "setup": f" in setup line {n}",
               "check": " calling check()"}.get(name, "")
    src = f": {ex.source_line}" if ex.source_line else ""
    msg = f" ({ex.message[:200]})" if ex.message else ""
    o = ex.outcome
    if o == "passed":
        return f"all tests passed ({ex.wall_s * 1000:.0f} ms)"
    if o == "failed_assertion":
        return f"failed assertion{loc}{src}{msg}"
    if o == "exception":
        return f"{ex.exception}{loc}{src}{msg}"
    if o == "syntax_error":
        return f"{ex.exception}{loc}{msg}"
    if o == "memory_limit":
        return f"memory limit{loc}: {ex.detail}"
    if o == "exited":
        return f"exited before the tests finished{loc} (exit code {ex.exit_code})"
    return ex.detail  # timeout, killed, error


def run_python_tests(check: Check, case: Case, answer: str, sandbox: Sandbox | None = None) -> dict[str, Any]:
    """Run one ``python_tests`` check; returns ``{"passed", "detail", "error", "execution"}`` (plain data).

    ``error`` is set when the program could not be run at all (no sandbox, a fault of ours): such a
    result is an error, never a pass or a fail.
    """
    prog = build_program(check, case, answer)
    box = sandbox or default_sandbox()
    timeout = check.timeout_s if check.timeout_s is not None else DEFAULT_TIMEOUT_S
    limits = dataclasses.replace(box.limits, timeout_s=timeout, cpu_s=None)
    if len(prog.source) > MAX_PROGRAM_CHARS:
        return {"passed": False, "detail": f"program longer than {MAX_PROGRAM_CHARS} characters; not run",
                "error": None, "execution": {"outcome": "not_run", "program": prog.source[:2000]}}
    ex = box.run(prog.source, limits)
    where = prog.part_at(ex.line)
    record = {**ex.to_dict(), "program": prog.source, "parts": [list(p) for p in prog.parts],
              "extraction": prog.extraction,
              "failed_part": where[0] if where else None, "failed_part_line": where[1] if where else None}
    return {"passed": ex.passed, "detail": _detail(ex, prog), "error": ex.detail if ex.outcome == "error" else None,
            "execution": record}
