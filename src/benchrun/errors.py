"""Errors benchrun reports to users.

`BadInput` is for anything the user wrote (dataset, rubric, run spec, labels,
production log): the CLI prints its one-line message and exits with code 2.
`RunAborted` is for a run that could not complete (provider unreachable,
budget exceeded): exit code 3.
"""

from __future__ import annotations

import re
from pathlib import Path


class BenchrunError(Exception):
    """Base class of errors that carry a user-facing one-line message."""

    exit_code = 1


class BadInput(BenchrunError):
    """Malformed user input. Message format: ``FILE:WHERE: what is wrong; how to fix``."""

    exit_code = 2

    def __init__(self, file: str | Path | None, where: str | int | None, what: str) -> None:
        self.file = str(file) if file is not None else None
        self.where = where
        self.what = what
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file)
        if self.where is not None and self.where != "":
            parts.append(f"line {self.where}" if isinstance(self.where, int) else str(self.where))
        prefix = ":".join(parts)
        msg = " ".join(self.what.split())  # one line, always
        return f"{prefix}: {msg}" if prefix else msg


class UsageError(BenchrunError):
    """Bad command-line usage (unknown run id, conflicting options)."""

    exit_code = 2


class RunAborted(BenchrunError):
    """The run could not complete: provider unreachable, budget exceeded, interrupted."""

    exit_code = 3


_PROVIDER_NOISE = re.compile(r"\blitellm\.(?=\w+(?:Error|Exception)\b)|\b\w*Exception - ")
_REPEATED_TYPE = re.compile(r"\b(\w+(?:Error|Exception)): (?:\1: )+")


def tidy_provider_error(text: str) -> str:
    """A provider error without the prefixes litellm stacks on it.

    ``InternalServerError: litellm.InternalServerError: InternalServerError: OpenAIException -
    Connection error.`` becomes ``InternalServerError: Connection error.``: the type once, then what
    happened.
    """
    out = _PROVIDER_NOISE.sub("", text)
    prev = None
    while prev != out:
        prev, out = out, _REPEATED_TYPE.sub(r"\1: ", out)
    return " ".join(out.split())
