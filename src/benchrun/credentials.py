"""Which credentials a run reads and where it sends them, and the check before a stored snapshot is called.

A run's spec snapshot lives in the ledger, and a ledger is written by many people: anyone who can
write a row can edit ``candidates[0].api_key_env`` and ``api_base`` (``spec_hash`` is a hash, not a
signature). ``benchrun reproduce`` and ``run --resume`` call what the snapshot says, so before they
do, `assess` lists every *route* (the environment variable read, the host it goes to) and `require`
refuses, unless the user confirmed (``--yes``), when the snapshot has a route the spec file on disk
does not have, or when that file is absent or unreadable (nothing then vouches for the snapshot).
A snapshot with fewer routes than the file (a model dropped) needs no confirmation.

Separately, `check_key_env_name` limits which variables ``api_key_env`` may name at all, for every
run (see its docstring); `BENCHRUN_ALLOW_KEY_ENV` lifts the limit for names the user lists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchrun.errors import BadInput, UsageError

if TYPE_CHECKING:
    from benchrun.ledger.tables import Run
    from benchrun.spec import ModelRef, RunSpec

ALLOW_ENV = "BENCHRUN_ALLOW_KEY_ENV"
# A model key's variable ends in _API_KEY, _KEY or _TOKEN (OPENAI_API_KEY, ANTHROPIC_API_KEY, HF_TOKEN, ...).
_KEY_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*_(API_KEY|KEY|TOKEN)", re.IGNORECASE)
# Key-like names that are surely not a model provider's key: CI, source hosting, cloud and package-registry
# credentials, which a spec has no business sending anywhere (GitHub Models users allow GITHUB_TOKEN explicitly).
_NOT_MODEL_KEYS = re.compile(
    r"(GITHUB|GH|GITLAB|CI|ACTIONS|RUNNER|BUILDKITE|CIRCLE|TRAVIS|AWS|NPM|NODE_AUTH|PYPI|TWINE|DOCKER|SLACK|VAULT"
    r"|STRIPE|CODECOV|SENTRY|HEROKU|CLOUDFLARE|DIGITALOCEAN|SSH|GPG|AZURE_DEVOPS|GOOGLE_APPLICATION)(_.*)?"
    r"|.*SECRET.*|.*PASSWORD.*",
    re.IGNORECASE,
)


def _allowed() -> set[str]:
    return {n.strip() for n in os.environ.get(ALLOW_ENV, "").split(",") if n.strip()}


def key_env_problem(name: str) -> str | None:
    """Why ``api_key_env: NAME`` is refused, or None when it is accepted.

    Accepted: names ending in ``_API_KEY``, ``_KEY`` or ``_TOKEN`` that are not a well-known credential
    of something other than a model provider (``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``NPM_TOKEN``,
    any name containing SECRET or PASSWORD, ...), and any name listed in ``BENCHRUN_ALLOW_KEY_ENV``
    (comma-separated). The rule keeps a spec or an edited ledger row from reading ``HOME``,
    ``DATABASE_URL`` or a CI token and sending it as a bearer key.
    """
    if name in _allowed():
        return None
    if _NOT_MODEL_KEYS.fullmatch(name):
        return (f"api_key_env {name} names a credential that is not a model provider's key; if you mean it, "
                f"allow it with {ALLOW_ENV}={name}")
    if not _KEY_LIKE.fullmatch(name):
        return (f"api_key_env {name} does not look like an API key variable (its name must end in _API_KEY, _KEY "
                f"or _TOKEN); rename the variable, or allow it with {ALLOW_ENV}={name}")
    return None


def check_key_env_name(ref: ModelRef, where: str | Path | None, label: str) -> None:
    """Raise `BadInput` (exit 2) when ``ref.api_key_env`` is refused by `key_env_problem`."""
    if ref.api_key_env:
        why = key_env_problem(ref.api_key_env)
        if why:
            raise BadInput(where, f"model {label}", why)


@dataclass(frozen=True)
class Route:
    """One model's credential: the variable read (None: no key is sent) and the host the call goes to."""

    model: str  # the candidate's key, or "judge"
    env: str | None
    host: str

    @property
    def pair(self) -> tuple[str | None, str]:
        return (self.env, self.host)

    def describe(self) -> str:
        what = f"${self.env}" if self.env else "no key"
        return f"{what} -> {self.host} ({self.model})"


def _host(ref: ModelRef) -> tuple[str | None, str]:
    from urllib.parse import urlsplit

    if ref.model.startswith("local/") and ref.api_base is None:  # providers.is_local (not imported: providers imports us)
        return None, "the embedded local model (127.0.0.1)"
    if ref.api_base:
        try:
            parts = urlsplit(ref.api_base.strip())
            host = f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.netloc else ref.api_base
        except ValueError:
            host = ref.api_base
        return ref.api_key_env, host
    provider = ref.model.split("/", 1)[0] if "/" in ref.model else "the model's provider"
    env = ref.api_key_env or f"{provider} provider variables (read by litellm)"
    return env, f"{provider}'s default endpoint"


def routes(spec: RunSpec) -> list[Route]:
    """Every model of a spec with the variable it reads and the host it calls."""
    out = []
    for ref, label in [*((c, c.key) for c in spec.candidates), *([(spec.judge, "judge")] if spec.judge else [])]:
        env, host = _host(ref)
        out.append(Route(label, env, host))
    return out


@dataclass(frozen=True)
class Assessment:
    """What a stored snapshot will read and call, compared with the spec file on disk."""

    run_id: str
    routes: list[Route]
    spec_path: str | None
    reason: str | None  # why confirmation is needed; None when the file on disk vouches for every route
    new_routes: list[Route]

    @property
    def needs_confirmation(self) -> bool:
        return self.reason is not None

    def lines(self, from_cache: bool = False) -> list[str]:
        """What to show before calling anything (one line per model, then the verdict); ``from_cache``: a replay,
        which calls these only for what the response cache cannot serve."""
        head = ("would call, only where the cache has no answer" if from_cache else "will call")
        out = [f"run {self.run_id} {head}, from its stored snapshot:"]
        out += [f"  {r.describe()}" for r in self.routes]
        if self.reason is None:
            out.append(f"  (every variable and host as in the spec file {self.spec_path})")
        else:
            out.append(f"  needs --yes: {', '.join(r.describe() for r in self.new_routes)}: {self.reason}")
        return out


def assess(run: Run, spec: RunSpec) -> Assessment:
    """Compare the snapshot's routes with those of the spec file on disk (see the module docstring).

    Raises `BadInput` when the snapshot names a refused ``api_key_env`` (see `key_env_problem`).
    """
    from benchrun.errors import BenchrunError
    from benchrun.io import load_yaml
    from benchrun.spec import RunSpec

    where = f"run {run.id} (stored snapshot)"
    for ref, label in [*((c, c.key) for c in spec.candidates), *([(spec.judge, "judge")] if spec.judge else [])]:
        check_key_env_name(ref, where, label)
    snap = routes(spec)
    path = run.spec_path
    reason: str | None = None
    new: list[Route] = []
    if not path or not Path(path).is_file():
        reason = (f"the spec file {path or '(none recorded)'} is absent, so nothing on disk vouches for these "
                  "variables and hosts")
        new = snap
    else:
        try:
            data, _ = load_yaml(Path(path))
            disk = {r.pair for r in routes(RunSpec.model_validate(data))}
        except (BenchrunError, ValueError) as e:  # pydantic's ValidationError is a ValueError
            reason = f"the spec file {path} cannot be read ({type(e).__name__}), so nothing vouches for the snapshot"
            new = snap
        else:
            new = [r for r in snap if r.pair not in disk]
            if new:
                reason = f"the spec file {path} on disk does not"
    return Assessment(run.id, snap, path, reason, new)


def require(a: Assessment, confirmed: bool, command: str) -> None:
    """Refuse (`UsageError`, exit 2, one line) a snapshot that needs confirmation and did not get it."""
    if a.needs_confirmation and not confirmed:
        sends = ", ".join(r.describe() for r in a.new_routes)
        raise UsageError(f"run {a.run_id}: its stored snapshot would send {sends}; {a.reason}; nothing was "
                         f"called. Check the run (benchrun runs show {a.run_id}); if you trust it, repeat with: "
                         f"{command} --yes")
