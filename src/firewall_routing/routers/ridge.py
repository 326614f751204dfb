"""``ridge``: ridge regression on frozen MiniLM embeddings plus cheap difficulty features.

Why ridge and not the MLP head: on the 15 RouterDC pairs a closed-form ridge on the same
cached embeddings beats ``embedding-head`` (whose best epoch is picked on 100 noisy
validation rows), and it has no epochs or seeds that could move the result
(``benchmarks/bench_router_search.py``, docs/routers.md "Router search").

The regression inputs, each standardized on the training prompts:

* the prompt's sentence embedding (the same cached encoder as ``embedding-head``);
* :func:`prompt_features`: counts a reader would use to guess how hard a word problem is
  (words, numbers, sentences, percentages, fractions, money, time units, ...);
* a **solution prior** (``prior="gsm8k"``): what a reference solution of this question would
  look like (calculator steps, operations, length, magnitude of intermediate results),
  predicted from the question's words by a ridge regression on GSM8K's training questions
  and their reference solutions (``data/gsm8k/train.jsonl``). Questions that are also
  router-training prompts are left out of the prior's data, so the prior is out-of-sample
  for every prompt the router learns from; GSM8K *test* questions are never in that file.

The ridge penalty is chosen by exact leave-one-out error on the training rows (closed form
via one SVD), never by the validation rows. Predictions are mapped into [0, 1] by
:func:`squash`, which is the identity on [0.01, 0.99] and strictly increasing outside, so
the routing order (all that APGR reads) is exactly the regression's order.

``fit_models`` (``predicts_models``) regresses every model's success on the same inputs,
one column per model with its own leave-one-out penalty, each on the rows where that model
has an outcome (:func:`ridge_columns`); ``predict_models`` squashes each column into [0, 1].
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from firewall_routing.embeddings import DEFAULT_ENCODER, ENCODER_HELP
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import (
    FitReport,
    ModelValidation,
    Router,
    RouterMetadata,
    RouterOptions,
    Validation,
    check_labels,
    check_success,
    pair_scores_from,
)

WEIGHTS_FILE = "ridge.npz"
MODELS_FILE = "ridge-models.npz"
PRIOR_FILE = "prior.json"
ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 3.5, 19))
"""Ridge penalties searched by leave-one-out error (0.1 … ~3162, log-spaced)."""

# --------------------------------------------------------------------------- prompt features

_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")

FEATURE_NAMES: tuple[str, ...] = (
    "log_words",
    "log_numbers",
    "log_distinct_numbers",
    "log_sentences",
    "percent",
    "fraction",
    "money",
    "time_unit",
    "log_each_per_every",
    "log_comparatives",
    "decimal",
    "log_max_number",
)


def prompt_features(prompt: str) -> list[float]:
    """Cheap difficulty cues of a prompt, in :data:`FEATURE_NAMES` order (log1p of counts)."""
    nums = _NUM.findall(prompt)
    low = prompt.lower()
    return [
        math.log1p(len(prompt.split())),
        math.log1p(len(nums)),
        math.log1p(len(set(nums))),
        math.log1p(len(re.findall(r"[.!?](?:\s|$)", prompt))),
        float("%" in prompt or "percent" in low),
        float(bool(re.search(r"\d+\s*/\s*\d+", prompt) or re.search(r"\b(half|third|quarter|fifth)", low))),
        float("$" in prompt or "dollar" in low or "cent" in low),
        float(bool(re.search(r"\b(hour|minute|second|day|week|month|year)s?\b", low))),
        math.log1p(len(re.findall(r"\b(each|per|every)\b", low))),
        math.log1p(len(re.findall(r"\b(times|twice|double|triple|more|less|fewer)\b", low))),
        float(bool(re.search(r"\d\.\d", prompt))),
        math.log1p(max((float(n.replace(",", "")) for n in nums), default=0.0)),
    ]


def feature_matrix(prompts: Sequence[str]) -> FloatArray:
    return np.array([prompt_features(p) for p in prompts], dtype=np.float64).reshape(len(prompts), -1)


# --------------------------------------------------------------------------- solution prior

SOLUTION_TARGETS: tuple[str, ...] = (
    "log_steps",
    "log1p_additions",
    "log1p_subtractions",
    "log1p_multiplications",
    "log1p_divisions",
    "log1p_solution_chars",
    "log1p_abs_answer",
    "log1p_max_intermediate",
    "decimal_intermediate",
    "log1p_numbers_in_solution",
)


def solution_targets(answer: str) -> list[float]:
    """What a GSM8K reference solution looks like, in :data:`SOLUTION_TARGETS` order.

    Steps are the ``<<expr=value>>`` calculator annotations (at least the non-empty lines
    before ``####``, at least 1); operations are counted inside the annotations.
    """
    body, _, final = answer.partition("####")
    calls = re.findall(r"<<([^>]*)>>", body)
    exprs = [c.split("=")[0] for c in calls]
    lines = len([ln for ln in body.splitlines() if ln.strip()])
    try:
        answer_value = abs(float(final.strip().replace(",", "")))
    except ValueError:
        answer_value = 0.0
    inter = []
    for c in calls:
        try:
            inter.append(abs(float(c.split("=")[-1])))
        except ValueError:
            continue
    return [
        math.log(max(len(calls), lines, 1)),
        math.log1p(sum(e.count("+") for e in exprs)),
        math.log1p(sum(e.count("-") for e in exprs)),
        math.log1p(sum(e.count("*") for e in exprs)),
        math.log1p(sum(e.count("/") for e in exprs)),
        math.log1p(len(body)),
        math.log1p(answer_value),
        math.log1p(max(inter, default=0.0)),
        float(any("." in c.split("=")[-1] for c in calls)),
        math.log1p(len(re.findall(r"\d+", body))),
    ]


_TOKEN = re.compile(r"[a-z]+|\d+|[$%/]")


def ngrams(text: str) -> list[str]:
    """Lower-cased word/number/symbol unigrams and bigrams (the prior's vocabulary units)."""
    toks = _TOKEN.findall(text.lower())
    return toks + [f"{a} {b}" for a, b in itertools.pairwise(toks)]


def normalize_text(s: str) -> str:
    return " ".join(s.split())


@dataclass
class SolutionPrior:
    """Sublinear-tf·idf n-grams → ridge → predicted :data:`SOLUTION_TARGETS`.

    Scoring is plain Python/numpy (a dict lookup per n-gram); scikit-learn only fits it.
    """

    vocab: dict[str, int]
    idf: FloatArray
    coef: FloatArray  # (len(vocab) + len(FEATURE_NAMES), len(SOLUTION_TARGETS))
    intercept: FloatArray
    feat_mean: FloatArray
    feat_std: FloatArray
    n_questions: int

    def tfidf_rows(self, text: str) -> tuple[np.ndarray[Any, np.dtype[np.int64]], FloatArray]:
        """Vocabulary indices and l2-normalized sublinear tf·idf values of one text's n-grams
        (the same numbers scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` gives)."""
        counts: dict[int, int] = {}
        for g in ngrams(text):
            j = self.vocab.get(g)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
        val = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[
            idx
        ]
        norm = float(np.linalg.norm(val))
        return idx, val / norm if norm > 0 else val

    def predict(self, texts: Sequence[str], feats: FloatArray | None = None) -> FloatArray:
        """Predicted solution targets, one row per text (no dense n-gram matrix is built);
        ``feats`` is ``feature_matrix(texts)`` when the caller already has it."""
        raw = feature_matrix(texts) if feats is None else feats
        f = (raw - self.feat_mean) / self.feat_std
        out: FloatArray = f @ self.coef[len(self.vocab) :] + self.intercept
        for i, t in enumerate(texts):
            idx, val = self.tfidf_rows(t)
            out[i] += val @ self.coef[idx]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "vocab": self.vocab,
            "idf": self.idf.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "feat_mean": self.feat_mean.tolist(),
            "feat_std": self.feat_std.tolist(),
            "n_questions": self.n_questions,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SolutionPrior:
        return cls(
            vocab={str(k): int(v) for k, v in d["vocab"].items()},
            idf=np.asarray(d["idf"], dtype=np.float64),
            coef=np.asarray(d["coef"], dtype=np.float64),
            intercept=np.asarray(d["intercept"], dtype=np.float64),
            feat_mean=np.asarray(d["feat_mean"], dtype=np.float64),
            feat_std=np.asarray(d["feat_std"], dtype=np.float64),
            n_questions=int(d["n_questions"]),
        )


def fit_solution_prior(
    questions: Sequence[str], answers: Sequence[str], alpha: float = 3.0, min_df: int = 3
) -> SolutionPrior:
    """Fit the prior (alpha = 3 chosen on held-out GSM8K train questions, see the bench)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    vec = TfidfVectorizer(analyzer=ngrams, min_df=min_df, sublinear_tf=True)
    vec.fit(list(questions))
    vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    f = feature_matrix(questions)
    prior = SolutionPrior(
        vocab=vocab,
        idf=np.asarray(vec.idf_, dtype=np.float64),
        coef=np.zeros((0, 0)),
        intercept=np.zeros(0),
        feat_mean=f.mean(0),
        feat_std=f.std(0) + 1e-9,
        n_questions=len(questions),
    )
    from scipy.sparse import csr_matrix, hstack

    y = np.array([solution_targets(a) for a in answers])
    x = hstack([vec.transform(list(questions)), csr_matrix((f - prior.feat_mean) / prior.feat_std)]).tocsr()
    model = Ridge(alpha=alpha).fit(x, y)
    prior.coef = np.asarray(model.coef_, dtype=np.float64).T
    prior.intercept = np.asarray(model.intercept_, dtype=np.float64)
    return prior


def gsm8k_prior_file() -> Path:
    from firewall_routing.sampling.datasets import default_data_dir

    return default_data_dir() / "gsm8k" / "train.jsonl"


_PRIOR_CACHE: dict[tuple[str, str], SolutionPrior] = {}


def gsm8k_prior(exclude: Sequence[str], path: Path | None = None) -> SolutionPrior:
    """The prior fitted on GSM8K train questions minus ``exclude`` (cached per process:
    ``reproduce`` trains one router per design and seed on the same prompts)."""
    from firewall_routing.files import iter_jsonl

    p = path or gsm8k_prior_file()
    if not p.exists():
        raise InputError("the gsm8k solution prior needs GSM8K's train.jsonl; pass prior='none'", path=p)
    import hashlib

    drop = {normalize_text(t) for t in exclude}
    key = (str(p.resolve()), hashlib.sha256("\0".join(sorted(drop)).encode()).hexdigest())
    if key not in _PRIOR_CACHE:
        rows = [r for _, r in iter_jsonl(p) if normalize_text(str(r.get("question", ""))) not in drop]
        if not rows:
            raise InputError("no questions left for the solution prior", path=p)
        _PRIOR_CACHE[key] = fit_solution_prior([r["question"] for r in rows], [r["answer"] for r in rows])
    return _PRIOR_CACHE[key]


# --------------------------------------------------------------------------- ridge


def loo_alpha(x: FloatArray, y: FloatArray, alphas: Sequence[float] = ALPHAS) -> float:
    """The penalty with the smallest exact leave-one-out squared error (ties: the first).

    With centred X = U S Vᵀ, the hat matrix is U diag(s²/(s²+α)) Uᵀ plus the intercept's
    1/n, and the LOO residual of row i is r_i / (1 − h_ii).
    """
    xc, yc = x - x.mean(0), y - y.mean()
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best, best_a = math.inf, float(alphas[0])
    for a in alphas:
        f = s**2 / (s**2 + a)
        h = (u**2) @ f + 1.0 / len(y)
        loo = float(np.mean(((yc - u @ (f * uty)) / (1.0 - h)) ** 2))
        if loo < best - 1e-15:
            best, best_a = loo, float(a)
    return best_a


def ridge_solve(x: FloatArray, y: FloatArray, alpha: float) -> tuple[FloatArray, float]:
    """Coefficients and intercept of ridge regression (the intercept is not penalized)."""
    xm, ym = x.mean(0), float(y.mean())
    xc = x - xm
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return coef, ym - float(xm @ coef)


def ridge_columns(
    x: FloatArray, success: FloatArray, alphas: Sequence[float] = ALPHAS
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per column of ``success`` (rows × models, NaN = missing): ridge coefficients,
    intercept and leave-one-out penalty, fitted on the rows where the column is observed.

    Columns observed on the same rows share one SVD (a complete table needs one); each
    column's penalty is :func:`loo_alpha`'s and its fit :func:`ridge_solve`'s, computed
    from that SVD: coef = V diag(s/(s²+α)) Uᵀ (y − ȳ) on the centred rows.
    """
    known = ~np.isnan(success)
    m = success.shape[1]
    coef, intercept, chosen = np.zeros((x.shape[1], m)), np.zeros(m), np.zeros(m)
    groups: dict[bytes, list[int]] = {}
    for j in range(m):
        groups.setdefault(known[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        rows = known[:, cols[0]]
        xr = x[rows]
        xm = xr.mean(0)
        u, s, vt = np.linalg.svd(xr - xm, full_matrices=False)
        for j in cols:
            y = success[rows, j]
            ym = float(y.mean())
            uty = u.T @ (y - ym)
            best, best_a = math.inf, float(alphas[0])
            for a in alphas:
                f = s**2 / (s**2 + a)
                h = (u**2) @ f + 1.0 / len(y)
                loo = float(np.mean(((y - ym - u @ (f * uty)) / (1.0 - h)) ** 2))
                if loo < best - 1e-15:
                    best, best_a = loo, float(a)
            coef[:, j] = vt.T @ (s / (s**2 + best_a) * uty)
            intercept[j] = ym - float(xm @ coef[:, j])
            chosen[j] = best_a
    return coef, intercept, chosen


LO, HI = 0.01, 0.99


def squash(z: FloatArray) -> FloatArray:
    """Identity on [LO, HI]; outside, hyperbolic tails LO/(1 + LO − z) and
    1 − (1 − HI)/(1 + z − HI) that approach 0 and 1 slowly (no float saturation into ties for
    any realistic prediction), so the map is continuous, strictly increasing, into (0, 1)."""
    z = np.asarray(z, dtype=np.float64)
    below = LO / (1.0 + np.maximum(LO - z, 0.0))
    above = 1.0 - (1.0 - HI) / (1.0 + np.maximum(z - HI, 0.0))
    out: FloatArray = np.where(z < LO, below, np.where(z > HI, above, z))
    return out


class RidgeOptions(RouterOptions):
    encoder: str = Field(default=DEFAULT_ENCODER, description=ENCODER_HELP)
    features: bool = Field(default=True, description="add the hand-made prompt features")
    prior: Literal["gsm8k", "none"] = Field(
        default="gsm8k", description="add the GSM8K solution prior (needs data/gsm8k/train.jsonl to train)"
    )


class RidgeRouter(Router):
    """Deterministic (no ``seed`` option: ``reproduce`` trains it once per design).

    Declares ``scores_embeddings``: ``score_embeddings(emb, texts)`` takes the prompts'
    vectors from the caller (``reproduce``'s up-front embedding, the server's ONNX encoder)
    and the prompts' text for the features and the prior."""

    name = "ridge"
    Options = RidgeOptions
    options: RidgeOptions
    trains = True
    scores_embeddings = True
    predicts_models = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._coef_m: FloatArray | None = None  # inputs × models (fit_models)
        self._intercept_m = np.zeros(0)
        self.alphas_m = np.zeros(0)
        self._prior: SolutionPrior | None = None
        self._coef: FloatArray | None = None
        self._intercept = 0.0
        self._mean = np.zeros(0)
        self._std = np.zeros(0)
        self.alpha: float | None = None

    @property
    def encoder(self) -> str:
        return self.options.encoder

    def _extra(self, prompts: Sequence[str]) -> FloatArray:
        """Hand features and prior predictions (unstandardized), one row per prompt."""
        parts = [np.zeros((len(prompts), 0))]
        use_feats = self.options.features or self._prior is not None
        feats = feature_matrix(prompts) if use_feats else None
        if feats is not None and self.options.features:
            parts.append(feats)
        if self._prior is not None:
            parts.append(self._prior.predict(prompts, feats))
        return np.hstack(parts)

    def _inputs(self, emb: FloatArray, extra: FloatArray) -> FloatArray:
        """Embedding beside the extra columns, standardized with the training rows' moments."""
        return np.hstack([emb, (extra - self._mean) / self._std])

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Closed-form fit; ``val`` is unused (the penalty comes from leave-one-out error)."""
        start = time.perf_counter()
        y = check_labels(prompts, labels)
        self._prior = gsm8k_prior(prompts) if self.options.prior == "gsm8k" else None
        extra = self._extra(prompts)
        self._mean, self._std = extra.mean(0), extra.std(0) + 1e-9
        x = self._inputs(self.embed(prompts), extra)
        self.alpha = loo_alpha(x, y)
        self._coef, self._intercept = ridge_solve(x, y, self.alpha)
        return FitReport(seconds=time.perf_counter() - start)

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        """One ridge column per model on the same inputs as ``fit`` (``val`` is unused)."""
        start = time.perf_counter()
        y = check_success(prompts, success, models)
        self._prior = gsm8k_prior(prompts) if self.options.prior == "gsm8k" else None
        extra = self._extra(prompts)
        self._mean, self._std = extra.mean(0), extra.std(0) + 1e-9
        x = self._inputs(self.embed(prompts), extra)
        self._coef_m, self._intercept_m, self.alphas_m = ridge_columns(x, y)
        self.model_names = tuple(models)
        self.metadata = RouterMetadata.for_training(prompts, y, label_design=None, weak=None, strong=None)
        return FitReport(seconds=time.perf_counter() - start)

    def predict_embeddings(self, emb: FloatArray, texts: Sequence[str]) -> FloatArray:
        """P(success) per model (rows × ``model_names``) from the prompts' vectors and text."""
        if self._coef_m is None:
            raise InputError("router is not trained on every model: call fit_models() or load one")
        if len(texts) != len(emb):
            raise ValueError(f"{len(emb)} embeddings but {len(texts)} texts")
        return squash(self._inputs(emb, self._extra(texts)) @ self._coef_m + self._intercept_m)

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        return self.predict_embeddings(self.embed(prompts), prompts)

    def score_embeddings(self, emb: FloatArray, texts: Sequence[str] | None = None) -> FloatArray:
        """Scores from precomputed embeddings ``emb`` of the prompts ``texts`` (the text
        feeds the features and the prior, so it is required); a router trained on every
        model scores its pair (``use_pair``)."""
        if texts is None:
            raise InputError("router 'ridge' scores embeddings together with their prompts' texts")
        if self._coef_m is not None:
            return pair_scores_from(self.predict_embeddings(emb, texts), self.model_names, self.metadata)
        if self._coef is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        if len(texts) != len(emb):
            raise ValueError(f"{len(emb)} embeddings but {len(texts)} texts")
        return squash(self._inputs(emb, self._extra(texts)) @ self._coef + self._intercept)

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.score_embeddings(self.embed(prompts), prompts)

    def _save_weights(self, path: Path) -> None:
        if self._coef_m is not None:
            np.savez(
                path / MODELS_FILE,
                coef=self._coef_m,
                intercept=self._intercept_m,
                mean=self._mean,
                std=self._std,
                alphas=self.alphas_m,
            )
            self._save_prior(path)
            return
        if self._coef is None:
            raise InputError("cannot save an untrained router")
        np.savez(
            path / WEIGHTS_FILE,
            coef=self._coef,
            intercept=np.array([self._intercept]),
            mean=self._mean,
            std=self._std,
            alpha=np.array([self.alpha]),
        )
        self._save_prior(path)

    def _save_prior(self, path: Path) -> None:
        if self._prior is not None:
            (path / PRIOR_FILE).write_text(json.dumps(self._prior.to_json()))

    def _load_weights(self, path: Path) -> None:
        if (path / MODELS_FILE).exists():
            with np.load(path / MODELS_FILE) as d:
                self._coef_m = d["coef"].astype(np.float64)
                self._intercept_m = d["intercept"].astype(np.float64)
                self._mean, self._std = d["mean"].astype(np.float64), d["std"].astype(np.float64)
                self.alphas_m = d["alphas"].astype(np.float64)
        elif (path / WEIGHTS_FILE).exists():
            with np.load(path / WEIGHTS_FILE) as d:
                self._coef = d["coef"].astype(np.float64)
                self._intercept = float(d["intercept"][0])
                self._mean, self._std = d["mean"].astype(np.float64), d["std"].astype(np.float64)
                self.alpha = float(d["alpha"][0])
        else:
            return
        if self.options.prior == "gsm8k":
            if not (path / PRIOR_FILE).exists():
                raise InputError(f"saved ridge router has prior='gsm8k' but no {PRIOR_FILE}", path=path)
            self._prior = SolutionPrior.from_json(json.loads((path / PRIOR_FILE).read_text()))
