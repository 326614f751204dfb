"""Scorers: completions → quality in [0, 1] (or missing) and pass/fail (the grading stage).

One contract (:class:`~firewall_routing.sampling.scorers.base.Scorer`) for the exact graders
and the scorers for traffic without an answer key; registered by name, options as pydantic
fields, ``calls_model`` saying whether scoring runs a model (then verdicts are cached in the
sample store, :mod:`firewall_routing.sampling.scorers.cache`). Heavy imports stay inside each
scorer's methods, so listing them is instant.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.sampling.scorers.bartscore import BartScorer
from firewall_routing.sampling.scorers.base import Score, ScoreJob, Scorer
from firewall_routing.sampling.scorers.exact import ExactScorer
from firewall_routing.sampling.scorers.judge import JudgeScorer
from firewall_routing.sampling.scorers.reference import ReferenceScorer
from firewall_routing.sampling.scorers.reward import RewardScorer

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls for cls in (ExactScorer, ReferenceScorer, JudgeScorer, RewardScorer, BartScorer)
}
DEFAULT_SCORER = "exact"


def scorer_class(name: str) -> type[Scorer]:
    try:
        return SCORERS[name]
    except KeyError:
        raise InputError(
            f"unknown scorer '{name}'; known scorers: {', '.join(SCORERS)}", field="scorer"
        ) from None


def make_scorer(name: str, options: dict[str, Any] | None = None) -> Scorer:
    """The scorer called ``name`` with ``options``; a bad name or option is one InputError."""
    cls = scorer_class(name)
    try:
        return cls.model_validate(options or {})
    except ValidationError as e:
        err = input_error_from(e, missing="required option is missing")
        raise InputError(
            f"scorer '{name}': {err.message}",
            field=f"scorer_options.{err.field}" if err.field else "scorer_options",
        ) from None


def scorer_help(name: str | None = None) -> str:
    """What ``firewall-routing scorers`` prints: each scorer, its flags and options."""
    lines = []
    for cls in SCORERS.values() if name is None else [scorer_class(name)]:
        flags = [
            f for f, on in (("calls_model", cls.calls_model), ("needs_reference", cls.needs_reference)) if on
        ]
        lines.append(f"{cls.name} ({', '.join(flags) or 'cheap'}): {cls.summary}")
        lines += [f"    {line}" for line in cls.describe()]
    return "\n".join(lines)


__all__ = [
    "DEFAULT_SCORER",
    "SCORERS",
    "BartScorer",
    "ExactScorer",
    "JudgeScorer",
    "ReferenceScorer",
    "RewardScorer",
    "Score",
    "ScoreJob",
    "Scorer",
    "make_scorer",
    "scorer_class",
    "scorer_help",
]
