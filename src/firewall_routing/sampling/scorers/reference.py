"""Similarity of an answer to a reference answer: the offline scorer for open-ended prompts.

The reference is the dataset's answer (AlpacaEval's GPT-4 answer) or the strong model's
greedy answer (``reference_from: strong-greedy``, for traffic with no answer at all).
Methods:

* ``cosine`` (default): cosine of the shipped MiniLM sentence embeddings (the routers'
  encoder), clipped to [0, 1]. Needs nothing beyond the core install.
* ``bertscore``: BERTScore F1 (the ``bert-score`` package, ``[scorers]`` extra) over the
  shipped MiniLM's token embeddings (layer 6), no baseline rescaling, clipped to [0, 1].
* ``rouge-l``: ROUGE-L F-measure (the ``rouge-score`` package, ``[scorers]`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers.base import ProgressFn, Score, ScoreJob, Scorer, clip01

EXTRA_HINT = "pip install 'firewall-routing[scorers]'"


class ReferenceScorer(Scorer):
    name: ClassVar[str] = "reference"
    summary: ClassVar[str] = "similarity to a reference answer (MiniLM cosine, BERTScore or ROUGE-L); offline"
    calls_model: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = True

    method: Literal["cosine", "bertscore", "rouge-l"] = Field(default="cosine", description="Similarity.")
    encoder: str = Field(
        default="all-MiniLM-L6-v2", description="Sentence/token encoder (cosine, bertscore)."
    )
    batch_size: int = Field(default=16, ge=1, description="Texts per BERTScore batch.")

    def uncached_fields(self) -> set[str]:
        return {"batch_size"}

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        for j in jobs:
            if j.reference is None:
                raise InputError(f"item '{j.item_id}': the reference scorer needs a reference answer")
        refs = [j.reference or "" for j in jobs]
        cands = [j.completion for j in jobs]
        if self.method == "cosine":
            values = self._cosine(cands, refs, progress)
        elif self.method == "rouge-l":
            values = _rouge_l(cands, refs)
            if progress is not None:
                progress(len(jobs))
        else:
            values = self._bertscore(cands, refs, progress)
        # An empty completion has no similarity to anything: quality 0 (a real answer, not missing).
        return [
            Score(q, self.passed(q))
            for q in (0.0 if not c.strip() else clip01(v) for c, v in zip(cands, values, strict=True))
        ]

    def _cosine(self, cands: list[str], refs: list[str], progress: ProgressFn | None) -> list[float]:
        enc = _sentence_encoder(self.encoder)
        out: list[float] = []
        step = 32
        for i in range(0, len(cands), step):
            a = _unit(np.asarray(enc.encode(cands[i : i + step], batch_size=step)))
            b = _unit(np.asarray(enc.encode(refs[i : i + step], batch_size=step)))
            out += [float(x) for x in np.sum(a * b, axis=1)]
            if progress is not None:
                progress(len(a))
        return out

    def _bertscore(self, cands: list[str], refs: list[str], progress: ProgressFn | None) -> list[float]:
        scorer = _bert_scorer(self.encoder)
        out: list[float] = []
        for i in range(0, len(cands), self.batch_size):
            _, _, f1 = scorer.score(cands[i : i + self.batch_size], refs[i : i + self.batch_size])
            out += [float(x) for x in f1.tolist()]
            if progress is not None:
                progress(len(cands[i : i + self.batch_size]))
        return out


def _unit(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(n == 0, 1.0, n))


def _rouge_l(cands: list[str], refs: list[str]) -> list[float]:
    try:
        from rouge_score import rouge_scorer
    except ModuleNotFoundError:
        raise InputError(f"method 'rouge-l' needs the rouge-score package: {EXTRA_HINT}") from None
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [float(sc.score(r, c)["rougeL"].fmeasure) for c, r in zip(cands, refs, strict=True)]


_ENCODERS: dict[str, Any] = {}
_BERT: dict[str, Any] = {}


def _sentence_encoder(encoder: str) -> Any:
    """The sentence-transformers model (the shipped MiniLM by default), one per process."""
    if encoder not in _ENCODERS:
        import torch
        from sentence_transformers import SentenceTransformer

        from firewall_routing.minilm import resolve_model_path

        torch.set_num_threads(1)
        _ENCODERS[encoder] = SentenceTransformer(resolve_model_path(encoder), device="cpu")
    return _ENCODERS[encoder]


def _bert_scorer(encoder: str) -> Any:
    """One BERTScorer per encoder per process (loading the weights is the slow part)."""
    if encoder not in _BERT:
        try:
            import bert_score
        except ModuleNotFoundError:
            raise InputError(f"method 'bertscore' needs the bert-score package: {EXTRA_HINT}") from None
        import torch
        from transformers import AutoConfig

        from firewall_routing.minilm import resolve_model_path

        torch.set_num_threads(1)
        path = resolve_model_path(encoder)
        layers = int(AutoConfig.from_pretrained(path).num_hidden_layers)
        _BERT[encoder] = bert_score.BERTScorer(model_type=path, num_layers=layers, lang="en", device="cpu")
    return _BERT[encoder]
