"""``knn``: k nearest training prompts by cosine similarity of frozen sentence embeddings.

The non-parametric baseline of RouterBench-style studies (kNN, k = 100, cosine): a prompt's
score is the mean training label of its ``k`` most similar training prompts. Nothing is
learned, so it shows how much of a router's skill is "similar questions behave alike" —
and, unlike a trained head, it has no epochs or seeds that could move the result.

* Similarity is the cosine of the cached embeddings (the same encoder machinery as
  ``embedding-head``: :func:`firewall_routing.embeddings.get_encoder`).
* Ties in similarity are broken by training order (a stable sort), so scores never depend
  on numpy's partition algorithm.
* ``weighted=True`` weights each neighbour by its cosine similarity clipped at 0 (neighbours
  pointing away carry no weight); if all k weights are 0 the plain mean is used.
* ``k`` larger than the training set means "all training prompts".

A saved router holds its training embeddings (unit-normalised) and labels in
``knn.npz``, so a loaded router scores without the training prompts.

``fit_models`` (``predicts_models``) stores a rows × models success matrix instead of one
label: a model's predicted success is the mean of its observed success over the k
neighbours (NaN entries are skipped, never read as failures; a model none of the k
neighbours observed gets its mean over all training rows).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from firewall_routing.embeddings import DEFAULT_ENCODER, ENCODER_HELP
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import (
    FitReport,
    ModelValidation,
    Router,
    RouterOptions,
    Validation,
    check_labels,
    check_success,
    pair_scores_from,
)

DATA_FILE = "knn.npz"
CHUNK = 1024
"""Query rows per similarity block: bounds memory at CHUNK × n_train floats."""


def unit_rows(x: FloatArray) -> FloatArray:
    """Rows scaled to length 1; an all-zero row stays zero (cosine 0 to everything).

    float64 throughout: with float32 the matrix product's blocking changed similarities in
    the 8th digit depending on how many prompts were scored together.
    """
    x64 = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x64, axis=1, keepdims=True)
    out: FloatArray = x64 / np.where(norm > 0, norm, 1.0)
    return out


def knn_scores(
    query: FloatArray, train: FloatArray, labels: FloatArray, k: int, weighted: bool
) -> FloatArray:
    """Mean (or similarity-weighted mean) label of each query row's k most similar train rows.

    ``query`` and ``train`` are unit rows (see :func:`unit_rows`), so their dot product is
    the cosine similarity.
    """
    k = min(k, len(train))
    out = np.empty(len(query))
    for start in range(0, len(query), CHUNK):
        sim = query[start : start + CHUNK] @ train.T
        idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        y = labels[idx]
        if weighted:
            w = np.clip(np.take_along_axis(sim, idx, axis=1), 0.0, None)
            mass = w.sum(axis=1)
            plain = y.mean(axis=1)
            wsum = (w * y).sum(axis=1)
            out[start : start + len(sim)] = np.divide(wsum, mass, out=plain, where=mass > 0)
        else:
            out[start : start + len(sim)] = y.mean(axis=1)
    return np.clip(out, 0.0, 1.0)


def knn_matrix(
    query: FloatArray, train: FloatArray, success: FloatArray, k: int, weighted: bool
) -> FloatArray:
    """Per model, the mean (or similarity-weighted mean) observed success of each query row's
    k most similar train rows; ``success`` is train rows × models with NaN = missing.

    A model with no observed (or no positively weighted) neighbour falls back to its mean
    over all training rows, so a prediction always exists and never treats NaN as 0.
    """
    k = min(k, len(train))
    known = ~np.isnan(success)
    filled = np.where(known, success, 0.0)
    prior = filled.sum(0) / np.maximum(known.sum(0), 1)
    out = np.empty((len(query), success.shape[1]))
    for start in range(0, len(query), CHUNK):
        sim = query[start : start + CHUNK] @ train.T
        idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        w = np.clip(np.take_along_axis(sim, idx, axis=1), 0.0, None) if weighted else np.ones(idx.shape)
        wk = w[:, :, None] * known[idx]  # (rows, k, models): weight of each observed neighbour
        mass = wk.sum(axis=1)
        if weighted:  # all-zero weights: the plain mean of the observed neighbours, as knn_scores
            plain = known[idx].astype(np.float64)
            wk = np.where((mass > 0)[:, None, :], wk, plain)
            mass = wk.sum(axis=1)
        total = (wk * filled[idx]).sum(axis=1)
        out[start : start + len(sim)] = np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), prior)
    return np.clip(out, 0.0, 1.0)


class KNNOptions(RouterOptions):
    k: int = Field(default=100, ge=1, description="neighbours averaged (more than the training set = all)")
    encoder: str = Field(default=DEFAULT_ENCODER, description=ENCODER_HELP)
    weighted: bool = Field(default=False, description="weight neighbours by cosine similarity (clipped at 0)")


class KNNRouter(Router):
    name = "knn"
    Options = KNNOptions
    options: KNNOptions
    trains = True
    scores_embeddings = True
    predicts_models = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._train_emb: FloatArray | None = None
        self._labels: FloatArray | None = None

    @property
    def encoder(self) -> str:
        return self.options.encoder

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Store the training embeddings and labels (``val`` is unused: there is nothing to tune)."""
        start = time.perf_counter()
        y = check_labels(prompts, labels)
        self._train_emb = unit_rows(self.embed(prompts))
        self._labels = y
        return FitReport(seconds=time.perf_counter() - start)

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        """Store the training embeddings and the success matrix (``val`` is unused)."""
        start = time.perf_counter()
        y = check_success(prompts, success, models)
        self._train_emb = unit_rows(self.embed(prompts))
        self._labels = y
        self._fitted_models(prompts, y, models)
        return FitReport(seconds=time.perf_counter() - start)

    def predict_embeddings(self, emb: FloatArray) -> FloatArray:
        """P(success) per model (rows × ``model_names``) from the prompts' vectors."""
        if self._train_emb is None or self._labels is None or self._labels.ndim != 2:
            raise InputError("router is not trained on every model: call fit_models() or load one")
        o = self.options
        return knn_matrix(unit_rows(emb), self._train_emb, self._labels, o.k, o.weighted)

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        return self.predict_embeddings(self.embed(prompts))

    def score_embeddings(self, emb: FloatArray, texts: Sequence[str] | None = None) -> FloatArray:
        """Scores from the vectors alone (``texts`` is not needed); a router trained on every
        model scores its pair (``use_pair``)."""
        if self._train_emb is None or self._labels is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        if self._labels.ndim == 2:
            return pair_scores_from(self.predict_embeddings(emb), self.model_names, self.metadata)
        o = self.options
        return knn_scores(unit_rows(emb), self._train_emb, self._labels, o.k, o.weighted)

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.score_embeddings(self.embed(prompts))

    def _save_weights(self, path: Path) -> None:
        if self._train_emb is None or self._labels is None:
            raise InputError("cannot save an untrained router")
        np.savez(path / DATA_FILE, embeddings=self._train_emb, labels=self._labels)

    def _load_weights(self, path: Path) -> None:
        if (path / DATA_FILE).exists():
            with np.load(path / DATA_FILE) as data:
                self._train_emb = data["embeddings"].astype(np.float64)
                self._labels = data["labels"].astype(np.float64)
