"""The exact graders as a scorer: each item's own grader (GSM8K, TriviaQA, HumanEval, MBPP).

``passed`` is the grader's verdict; ``quality`` is the grader's real-valued quality where it
has one (token F1 for TriviaQA, :data:`~firewall_routing.sampling.graders.QUALITIES`), else
the verdict as 0/1. Cheap and deterministic, so never cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from firewall_routing.sampling.scorers.base import ProgressFn, Score, ScoreJob, Scorer


class ExactScorer(Scorer):
    name: ClassVar[str] = "exact"
    summary: ClassVar[str] = "each item's answer-key grader (gsm8k, triviaqa-*, humaneval, mbpp); the default"
    needs_reference: ClassVar[bool] = True

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        from firewall_routing.sampling.graders import QUALITIES, grade_many

        verdicts = grade_many((j.grader, j.completion, j.reference or "") for j in jobs)
        out = []
        for j, ok in zip(jobs, verdicts, strict=True):
            q = QUALITIES.get(j.grader)
            out.append(Score(q(j.completion, j.reference or "") if q else float(ok), ok))
        if progress is not None:
            progress(len(jobs))
        return out

    def cache_key(self) -> str:
        return "exact"
