"""Session-level units for multi-turn and agent traffic.

With ``sessions=True`` the unit of coverage is a session (rows sharing a
session id, ordered by turn index, else by timestamp, else by file order)
instead of a single query. Each session is described by

- its text: the mean of the unit embeddings of its user turns (renormalised);
- five behaviour features: ``turns`` (log1p), ``tool_calls`` (log1p of the total),
  ``tool_turn_share`` (share of turns with at least one tool call),
  ``context_chars`` (log1p of the total characters) and ``success`` (1 success,
  0 abandonment/failure; unknown values imputed with the production mean).

Features are standardised with production's mean and standard deviation,
scaled by ``weight / sqrt(5)`` (so at ``weight = 1`` the feature block has
about the norm of the text block) and concatenated with the text vector; the
result is normalised to unit length and clustered like query embeddings.
An eval case becomes one session: its user messages are the turns, its ``tool``
messages the tool calls, all message characters the context, and
``metadata.outcome`` (if any) the outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchrun.coverage.production import FAILURE_WORDS, SUCCESS_WORDS, ProductionSample

FEATURES = ("turns", "tool_calls", "tool_turn_share", "context_chars", "success")


@dataclass
class Session:
    id: str
    turns: list[str]
    features: np.ndarray  # raw values in FEATURES order; success may be NaN
    weight: float = 1.0

    @property
    def text(self) -> str:
        return "\n".join(self.turns)


def _raw_features(turns: list[str], tool_counts: list[float], outcome: float | None, extra_chars: int = 0) -> np.ndarray:
    n = len(turns)
    tools = float(sum(tool_counts))
    tool_turns = sum(1 for t in tool_counts if t > 0)
    chars = sum(len(t) for t in turns) + extra_chars
    return np.array(
        [
            math.log1p(n),
            math.log1p(tools),
            tool_turns / n if n else 0.0,
            math.log1p(chars),
            float("nan") if outcome is None else outcome,
        ],
        dtype=float,
    )


def group_sessions(sample: ProductionSample) -> list[Session]:
    """Group production rows by session id (rows without one are one-turn sessions)."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(sample.rows):
        groups.setdefault(r.session if r.session is not None else f"row-{i}", []).append(i)
    out: list[Session] = []
    for sid, idx in groups.items():
        rows = [sample.rows[i] for i in idx]

        def order(j: int, rows: list = rows) -> tuple[float, float, int]:  # type: ignore[type-arg]
            r = rows[j]
            return (
                r.turn if r.turn is not None else math.inf,
                r.timestamp.timestamp() if r.timestamp is not None else math.inf,
                j,
            )

        ordered = [rows[j] for j in sorted(range(len(rows)), key=order)]
        outcome = next((r.outcome for r in reversed(ordered) if r.outcome is not None), None)
        feats = _raw_features([r.text for r in ordered], [r.tool_calls or 0.0 for r in ordered], outcome)
        w = float(np.mean(sample.weights[idx]))
        out.append(Session(sid, [r.text for r in ordered], feats, w))
    return out


def case_session(case_id: str, messages: list[tuple[str, str]], outcome: object = None) -> Session:
    """An eval case as a session: ``messages`` are (role, content) pairs."""
    user = [c for r, c in messages if r == "user"] or [messages[-1][1]]
    tool_counts: list[float] = []
    for r, _ in messages:
        if r == "user":
            tool_counts.append(0.0)
        elif r == "tool" and tool_counts:
            tool_counts[-1] += 1.0
    other_chars = sum(len(c) for r, c in messages if r != "user")
    oc: float | None = None
    if isinstance(outcome, bool):
        oc = 1.0 if outcome else 0.0
    elif outcome is not None:
        s = str(outcome).strip().lower()
        oc = 1.0 if s in SUCCESS_WORDS else 0.0 if s in FAILURE_WORDS else None
    return Session(case_id, user, _raw_features(user, tool_counts or [0.0], oc, other_chars))


def mean_turn_vectors(turn_vecs: np.ndarray, sessions: list[Session]) -> np.ndarray:
    """Per session, the renormalised mean of its turns' rows in ``turn_vecs`` (turns laid out in order)."""
    out = np.zeros((len(sessions), turn_vecs.shape[1]), dtype=np.float32)
    pos = 0
    for i, s in enumerate(sessions):
        v = turn_vecs[pos : pos + len(s.turns)].mean(axis=0)
        out[i] = v / (np.linalg.norm(v) or 1.0)
        pos += len(s.turns)
    return out


def combine(
    text_vecs: np.ndarray, feats: np.ndarray, mean: np.ndarray, std: np.ndarray, weight: float
) -> np.ndarray:
    """``unit([text, weight/sqrt(F) * (feats - mean)/std])`` with NaN features set to the mean."""
    z = (feats - mean) / np.where(std > 0, std, 1.0)
    z = np.nan_to_num(z, nan=0.0)
    block = z * (weight / math.sqrt(feats.shape[1]))
    x = np.hstack([text_vecs.astype(float), block])
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation ignoring NaN (0 and 1 for all-NaN columns)."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(feats, axis=0)
            std = np.nanstd(feats, axis=0)
    return np.nan_to_num(mean, nan=0.0), np.nan_to_num(std, nan=1.0)
