"""A reward model: transformers sequence classification from a local path (or cached name).

How users bring Skywork-Reward or an OpenAssistant reward model. The (prompt, answer) pair is
given as a chat (the tokenizer's chat template) when the tokenizer has one, else as a text
pair. One logit (a reward) is mapped to [0, 1] by ``sigmoid((r − center) / scale)``; two or
more logits give the softmax probability of the last label ("good"). transformers and torch
are imported on first use; one thread, CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr

from firewall_routing.sampling.scorers.base import ProgressFn, Score, ScoreJob, Scorer, load_transformers


class RewardScorer(Scorer):
    name: ClassVar[str] = "reward"
    summary: ClassVar[str] = "a reward model (transformers sequence classification, local path); no reference"
    calls_model: ClassVar[bool] = True

    model: str = Field(min_length=1, description="Local directory (or cached name) of the reward model.")
    center: float = Field(default=0.0, description="Reward mapped to quality 0.5.")
    scale: float = Field(default=1.0, gt=0, description="Reward units per logistic unit.")
    max_length: int = Field(default=512, ge=8, description="Tokens per (prompt, answer) input.")
    batch_size: int = Field(default=8, ge=1, description="Inputs per forward pass.")

    _loaded: Any = PrivateAttr(default=None)

    def uncached_fields(self) -> set[str]:
        return {"batch_size", "reference_from"}

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_transformers(self.model, "AutoModelForSequenceClassification", "reward model")
        return self._loaded  # type: ignore[no-any-return]

    def rewards(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[list[float]]:
        """The raw logits per job (for calibration of center/scale)."""
        import torch

        tok, mdl = self._load()
        out: list[list[float]] = []
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            if getattr(tok, "chat_template", None):
                texts = [
                    tok.apply_chat_template(
                        [
                            {"role": "user", "content": j.prompt},
                            {"role": "assistant", "content": j.completion},
                        ],
                        tokenize=False,
                    )
                    for j in batch
                ]
                enc = tok(
                    texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
                )
            else:
                enc = tok(
                    [j.prompt for j in batch],
                    [j.completion for j in batch],
                    truncation="longest_first",
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
            with torch.no_grad():
                logits = mdl(**enc).logits.float()
            out += [[float(x) for x in row] for row in logits.tolist()]
            if progress is not None:
                progress(len(batch))
        return out

    def quality(self, logits: Sequence[float]) -> float:
        if len(logits) == 1:
            z = (logits[0] - self.center) / self.scale
            return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        m = max(logits)
        e = [math.exp(x - m) for x in logits]
        return e[-1] / sum(e)

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        out = []
        for row in self.rewards(jobs, progress):
            q = self.quality(row) if all(math.isfinite(x) for x in row) else None
            out.append(Score(q, self.passed(q)))
        return out
