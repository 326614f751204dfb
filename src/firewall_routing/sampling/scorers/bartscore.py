"""BARTScore (Yuan et al. 2021), Hybrid LLM's quality metric, from a seq2seq checkpoint.

BARTScore is the mean log-likelihood of the target tokens given the source under a seq2seq
model. Hybrid LLM scores the answer given the query (``direction: prompt-answer``, needs no
reference); ``reference-answer`` scores it given a reference answer. No BART weights ship on
PyPI, so the user brings the checkpoint (``model``: a local path, e.g. a converted
facebook/bart-large-cnn). Quality = exp(BARTScore), the geometric-mean token probability,
in (0, 1] and monotone in BARTScore, so t* and every ranking are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers.base import ProgressFn, Score, ScoreJob, Scorer, load_transformers


class BartScorer(Scorer):
    name: ClassVar[str] = "bartscore"
    summary: ClassVar[str] = "BARTScore from a user seq2seq checkpoint (quality = exp(mean token log-prob))"
    calls_model: ClassVar[bool] = True

    model: str = Field(min_length=1, description="Local directory of a seq2seq (BART-like) checkpoint.")
    direction: Literal["prompt-answer", "reference-answer"] = Field(
        default="prompt-answer",
        description="Source → target: query → answer (Hybrid LLM) or reference → answer.",
    )
    max_length: int = Field(default=512, ge=8, description="Tokens of source and of target.")
    batch_size: int = Field(default=4, ge=1, description="Pairs per forward pass.")
    threshold: float = Field(
        default=0.03, ge=0.0, le=1.0, description="quality ≥ threshold passes (exp(−3.5) ≈ 0.03)."
    )

    _loaded: Any = PrivateAttr(default=None)

    def wants_reference(self) -> bool:
        return self.direction == "reference-answer"

    def uncached_fields(self) -> set[str]:
        return {"batch_size"} | ({"reference_from"} if self.direction == "prompt-answer" else set())

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_transformers(self.model, "AutoModelForSeq2SeqLM", "seq2seq model")
        return self._loaded  # type: ignore[no-any-return]

    def bartscores(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[float]:
        """Mean target-token log-likelihood per job (the published BARTScore)."""
        import torch

        tok, mdl = self._load()
        out: list[float] = []
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            for j in batch:
                if self.direction == "reference-answer" and j.reference is None:
                    raise InputError(f"item '{j.item_id}': bartscore reference-answer needs a reference")
            src = [j.prompt if self.direction == "prompt-answer" else (j.reference or "") for j in batch]
            tgt = [j.completion or " " for j in batch]
            s = tok(src, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
            t = tok(
                text_target=tgt,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            labels = t["input_ids"]
            mask = t["attention_mask"]
            with torch.no_grad():
                logits = mdl(
                    input_ids=s["input_ids"], attention_mask=s["attention_mask"], labels=labels
                ).logits
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            mean = (logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)
            out += [float(x) for x in mean.tolist()]
            if progress is not None:
                progress(len(batch))
        return out

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        out = []
        for b in self.bartscores(jobs, progress):
            q = math.exp(b) if math.isfinite(b) else None
            out.append(Score(q, self.passed(q)))
        return out
