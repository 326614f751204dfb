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

from firewall_routing.embeddings import DEFAULT_ENCODER, ENCODER_HELP, cache_dir
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

WEIGHTS_FILE = "ridge.npz"
MODELS_FILE = "ridge-models.npz"
PRIOR_FILE = "prior.json"
ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 3.5, 19))
"""Ridge penalties searched by leave-one-out error (0.1 … ~3162, log-spaced)."""

# --------------------------------------------------------------------------- prompt features

_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")

PREFIX_CHARS = 4096
"""Prompt features and the prior read at most this many leading characters: the cues are in
a question's first paragraph, the sentence encoder reads only its first 256 tokens anyway,
and a 1 MB prompt must cost a server no more than a short one (issue 24)."""

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
    """Cheap difficulty cues of a prompt's first :data:`PREFIX_CHARS` characters, in
    :data:`FEATURE_NAMES` order (log1p of counts)."""
    prompt = prompt[:PREFIX_CHARS]
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
    """Lower-cased word/number/symbol unigrams and bigrams of the first
    :data:`PREFIX_CHARS` characters (the prior's vocabulary units)."""
    toks = _TOKEN.findall(text[:PREFIX_CHARS].lower())
    return toks + [f"{a} {b}" for a, b in itertools.pairwise(toks)]


def normalize_text(s: str) -> str:
    return " ".join(s.split())


@dataclass
class SolutionPrior:
    """Sublinear-tf·idf n-grams → ridge → predicted :data:`SOLUTION_TARGETS`.

    Fitting and scoring are plain Python/numpy (a dict lookup per n-gram).
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
        return self.tfidf_of(ngrams(text))

    def tfidf_of(self, grams: Sequence[str]) -> tuple[np.ndarray[Any, np.dtype[np.int64]], FloatArray]:
        """:meth:`tfidf_rows` of a text's already computed :func:`ngrams`."""
        counts: dict[int, int] = {}
        for g in grams:
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


def tfidf_fit(grams: Sequence[Sequence[str]], min_df: int) -> tuple[dict[str, int], FloatArray]:
    """Vocabulary (n-grams in ≥ ``min_df`` texts, indexed in sorted order) and smooth idf
    ln((1 + n)/(1 + df)) + 1: scikit-learn's ``TfidfVectorizer`` conventions, without
    importing scikit-learn (its import alone took ~4 s of a 10 s ``train`` under load)."""
    df: dict[str, int] = {}
    for doc in grams:
        for g in set(doc):
            df[g] = df.get(g, 0) + 1
    terms = sorted(g for g, c in df.items() if c >= min_df)
    counts = np.array([df[g] for g in terms], dtype=np.float64)
    idf: FloatArray = np.log((1.0 + len(grams)) / (1.0 + counts)) + 1.0
    return {g: i for i, g in enumerate(terms)}, idf


def ridge_cg(
    rows: np.ndarray[Any, np.dtype[np.int64]],
    cols: np.ndarray[Any, np.dtype[np.int64]],
    vals: FloatArray,
    shape: tuple[int, int],
    y: FloatArray,
    alpha: float,
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> tuple[FloatArray, FloatArray]:
    """Ridge with an unpenalized intercept on a sparse (COO) matrix X, every target column of
    ``y`` at once: conjugate gradients on (XcᵀXc + αI) w = Xcᵀ yc, with Xc = X − 1 x̄ᵀ applied
    implicitly (X stays sparse, scipy.sparse products)."""
    from scipy.sparse import csr_matrix

    x = csr_matrix((vals, (rows, cols)), shape=shape)
    xt = x.T.tocsr()
    xm = np.asarray(x.mean(axis=0)).ravel()
    ym = y.mean(0)
    yc = y - ym

    def xv(w: FloatArray) -> FloatArray:  # Xc w, w: p × t
        res: FloatArray = np.asarray(x @ w) - (xm @ w)[None, :]
        return res

    def xtu(u: FloatArray) -> FloatArray:  # Xcᵀ u, u: n × t
        res: FloatArray = np.asarray(xt @ u) - np.outer(xm, u.sum(0))
        return res

    b = xtu(yc)
    w = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr_old = (r * r).sum(0)
    stop = (tol**2) * np.maximum((b * b).sum(0), 1e-300)
    for _ in range(max_iter):
        if np.all(rr_old <= stop):
            break
        q = xtu(xv(d)) + alpha * d
        step = rr_old / np.maximum((d * q).sum(0), 1e-300)
        w += step * d
        r -= step * q
        rr_new = (r * r).sum(0)
        d = r + (rr_new / np.maximum(rr_old, 1e-300)) * d
        rr_old = rr_new
    intercept: FloatArray = ym - xm @ w
    return w, intercept


def fit_solution_prior(
    questions: Sequence[str], answers: Sequence[str], alpha: float = 3.0, min_df: int = 3
) -> SolutionPrior:
    """Fit the prior (alpha = 3 chosen on held-out GSM8K train questions, see the bench):
    tf·idf n-grams beside the standardized prompt features → ridge, all in numpy."""
    grams = [ngrams(q) for q in questions]
    vocab, idf = tfidf_fit(grams, min_df)
    f = feature_matrix(questions)
    prior = SolutionPrior(
        vocab=vocab,
        idf=idf,
        coef=np.zeros((0, 0)),
        intercept=np.zeros(0),
        feat_mean=f.mean(0),
        feat_std=f.std(0) + 1e-9,
        n_questions=len(questions),
    )
    rows_l, cols_l, vals_l = [], [], []
    for i, g in enumerate(grams):
        idx, val = prior.tfidf_of(g)
        rows_l.append(np.full(len(idx), i, dtype=np.int64))
        cols_l.append(idx)
        vals_l.append(val)
    fz = (f - prior.feat_mean) / prior.feat_std
    n_feat = fz.shape[1]
    rows_l.append(np.repeat(np.arange(len(questions), dtype=np.int64), n_feat))
    cols_l.append(np.tile(np.arange(len(vocab), len(vocab) + n_feat, dtype=np.int64), len(questions)))
    vals_l.append(fz.ravel())
    y = np.array([solution_targets(a) for a in answers], dtype=np.float64)
    prior.coef, prior.intercept = ridge_cg(
        np.concatenate(rows_l),
        np.concatenate(cols_l),
        np.concatenate(vals_l),
        (len(questions), len(vocab) + n_feat),
        y,
        alpha,
    )
    return prior


def gsm8k_prior_file() -> Path:
    from firewall_routing.sampling.datasets import default_data_dir

    return default_data_dir() / "gsm8k" / "train.jsonl"


_PRIOR_CACHE: dict[tuple[str, str], SolutionPrior] = {}

SHIPPED_PRIOR = "solution-prior.npz"
"""Beside ``train.jsonl``: the prior fitted on *all* of it (float32 coefficients), with the
sha256 of the file it came from. A table none of whose prompts is a GSM8K train question
(every non-GSM8K table) needs exactly that prior, so ``train`` reads it in milliseconds
instead of fitting for seconds; regenerate with :func:`write_shipped_prior`."""


def file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_shipped_prior(path: Path | None = None) -> Path:
    """Fit the prior on every question of ``train.jsonl`` and write :data:`SHIPPED_PRIOR`."""
    from firewall_routing.files import iter_jsonl

    p = path or gsm8k_prior_file()
    rows = [r for _, r in iter_jsonl(p)]
    prior = fit_solution_prior([r["question"] for r in rows], [r["answer"] for r in rows])
    dest = p.parent / SHIPPED_PRIOR
    terms = sorted(prior.vocab, key=prior.vocab.__getitem__)
    np.savez_compressed(
        dest,
        vocab=np.array("\n".join(terms)),
        idf=prior.idf,
        coef=prior.coef.astype(np.float32),
        intercept=prior.intercept,
        feat_mean=prior.feat_mean,
        feat_std=prior.feat_std,
        n_questions=np.array([prior.n_questions]),
        train_sha256=np.array(file_sha256(p)),
    )
    return dest


def shipped_prior(train_file: Path) -> SolutionPrior | None:
    """The shipped all-questions prior if it was fitted on exactly ``train_file``, else None."""
    f = train_file.parent / SHIPPED_PRIOR
    if not f.exists():
        return None
    with np.load(f) as d:
        if str(d["train_sha256"]) != file_sha256(train_file):
            return None
        terms = str(d["vocab"]).split("\n")
        return SolutionPrior(
            vocab={t: i for i, t in enumerate(terms)},
            idf=d["idf"].astype(np.float64),
            coef=d["coef"].astype(np.float64),
            intercept=d["intercept"].astype(np.float64),
            feat_mean=d["feat_mean"].astype(np.float64),
            feat_std=d["feat_std"].astype(np.float64),
            n_questions=int(d["n_questions"][0]),
        )


def gsm8k_prior(exclude: Sequence[str], path: Path | None = None) -> SolutionPrior:
    """The prior fitted on GSM8K train questions minus ``exclude``: the shipped fit
    (:data:`SHIPPED_PRIOR`) when ``exclude`` holds no GSM8K train question, else fitted and
    cached per process (``reproduce`` trains one router per design and seed on the same
    prompts) and on disk under the cache directory, keyed by the sha256 of the questions and answers it is fitted
    on (a second ``train`` on the same kind of table reads it instead of refitting)."""
    from firewall_routing.files import iter_jsonl

    p = path or gsm8k_prior_file()
    if not p.exists():
        raise InputError("the gsm8k solution prior needs GSM8K's train.jsonl; pass prior='none'", path=p)
    import hashlib

    drop = {normalize_text(t) for t in exclude}
    key = (str(p.resolve()), hashlib.sha256("\0".join(sorted(drop)).encode()).hexdigest())
    if key not in _PRIOR_CACHE:
        everything = [r for _, r in iter_jsonl(p)]
        rows = [r for r in everything if normalize_text(str(r.get("question", ""))) not in drop]
        if not rows:
            raise InputError("no questions left for the solution prior", path=p)
        shipped = shipped_prior(p) if len(rows) == len(everything) else None
        if shipped is not None:
            _PRIOR_CACHE[key] = shipped
            return shipped
        data = "\0".join(str(r["question"]) + "\0" + str(r["answer"]) for r in rows)
        disk = cache_dir() / "solution-prior" / f"{hashlib.sha256(data.encode()).hexdigest()[:32]}.json"
        if disk.exists():
            _PRIOR_CACHE[key] = SolutionPrior.from_json(json.loads(disk.read_text()))
        else:
            prior = fit_solution_prior([r["question"] for r in rows], [r["answer"] for r in rows])
            disk.parent.mkdir(parents=True, exist_ok=True)
            tmp = disk.with_suffix(".tmp")
            tmp.write_text(json.dumps(prior.to_json()))
            tmp.replace(disk)
            _PRIOR_CACHE[key] = prior
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


# --------------------------------------------------------------------------- feature groups

FeatureGroup = Literal["words", "gsm8k-prior"]
WORDS: FeatureGroup = "words"
GSM8K_PRIOR: FeatureGroup = "gsm8k-prior"
FEATURE_GROUPS: tuple[FeatureGroup, ...] = (WORDS, GSM8K_PRIOR)
"""Input groups beside the embedding: the hand prompt features (:data:`FEATURE_NAMES`) and
the GSM8K solution prior (:data:`SOLUTION_TARGETS`). Both were designed for math word
problems; which of them a table's router uses is chosen on its own training rows."""


def offered_groups(features: bool, prior: str) -> tuple[FeatureGroup, ...]:
    """The groups a router's options switch on (the candidates of ``select: "cv"``)."""
    on = {WORDS: features, GSM8K_PRIOR: prior == "gsm8k"}
    return tuple(g for g in FEATURE_GROUPS if on[g])


def group_columns(prompts: Sequence[str], groups: Sequence[str], prior: SolutionPrior | None) -> FloatArray:
    """The unstandardized columns of ``groups`` for ``prompts`` (in :data:`FEATURE_GROUPS`
    order); the prior's are its predictions from the prompt text and features."""
    parts = [np.zeros((len(prompts), 0))]
    feats = feature_matrix(prompts) if groups else None
    if WORDS in groups and feats is not None:
        parts.append(feats)
    if GSM8K_PRIOR in groups:
        if prior is None:
            raise ValueError("the gsm8k-prior group needs a fitted prior")
        parts.append(prior.predict(prompts, feats))
    return np.hstack(parts)


def loo_error(x: FloatArray, y: FloatArray, alphas: Sequence[float] = ALPHAS) -> float:
    """Exact leave-one-out squared error of ridge from ``x`` to ``y`` (one column or several,
    each scaled to unit variance so every target counts alike) at each column's best penalty."""
    y2 = y.reshape(len(y), -1)
    y2 = y2 / (y2.std(0) + 1e-12)
    xc, yc = x - x.mean(0), y2 - y2.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best = np.full(y2.shape[1], np.inf)
    for a in alphas:
        f = s**2 / (s**2 + a)
        h = (u**2) @ f + 1.0 / len(y2)
        loo = np.mean(((yc - u @ (f[:, None] * uty)) / (1.0 - h)[:, None]) ** 2, axis=0)
        best = np.minimum(best, loo)
    return float(best.sum())


def standardized(extra: FloatArray) -> tuple[FloatArray, FloatArray]:
    return extra.mean(0), extra.std(0) + 1e-9


def choose_groups(
    emb: FloatArray,
    prompts: Sequence[str],
    y: FloatArray,
    offered: Sequence[FeatureGroup],
    prior: SolutionPrior | None,
) -> tuple[tuple[FeatureGroup, ...], dict[str, float]]:
    """The subset of ``offered`` groups whose ridge (embedding + standardized group columns →
    ``y``) has the smallest exact leave-one-out error on these training rows; ties go to fewer
    groups. Returns the groups and every subset's error ("+"-joined names, "embedding" alone),
    so what was tried is visible in ``router.json``."""
    subsets = [
        tuple(g for g in FEATURE_GROUPS if g in combo)
        for k in range(len(offered) + 1)
        for combo in itertools.combinations(offered, k)
    ]
    cols = group_columns(prompts, offered, prior)
    widths = {WORDS: len(FEATURE_NAMES), GSM8K_PRIOR: len(SOLUTION_TARGETS)}
    starts, at = {}, 0
    for g in FEATURE_GROUPS:
        if g in offered:
            starts[g], at = at, at + widths[g]
    errors: dict[str, float] = {}
    best: tuple[FeatureGroup, ...] = ()
    for sub in subsets:
        idx = [j for g in sub for j in range(starts[g], starts[g] + widths[g])]
        extra = cols[:, idx]
        mean, std = standardized(extra)
        err = loo_error(np.hstack([emb, (extra - mean) / std]), y)
        errors["+".join(sub) or "embedding"] = round(err, 6)
        if err < errors["+".join(best) or "embedding"] - 1e-12:
            best = sub
    return best, errors


class RidgeOptions(RouterOptions):
    encoder: str = Field(default=DEFAULT_ENCODER, description=ENCODER_HELP)
    features: bool = Field(default=True, description="offer the hand-made prompt features (group 'words')")
    prior: Literal["gsm8k", "none"] = Field(
        default="gsm8k",
        description="offer the GSM8K solution prior (group 'gsm8k-prior'; needs data/gsm8k/train.jsonl to train)",
    )
    select: Literal["cv", "all"] = Field(
        default="all",
        description="'cv': keep the offered groups with the lowest leave-one-out error on the training rows; "
        "'all': use every offered group (default: 'cv' lost on the sweep and on MMLU-Pro, docs/routers.md)",
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
        self.groups: tuple[FeatureGroup, ...] = self.offered_groups()
        self.group_errors: dict[str, float] = {}

    @property
    def encoder(self) -> str:
        return self.options.encoder

    def offered_groups(self) -> tuple[FeatureGroup, ...]:
        return offered_groups(self.options.features, self.options.prior)

    def trained_info(self) -> dict[str, Any]:
        return {"feature_groups": list(self.groups), "feature_group_loo_errors": self.group_errors}

    def _extra(self, prompts: Sequence[str]) -> FloatArray:
        """The chosen groups' columns (unstandardized), one row per prompt."""
        return group_columns(prompts, self.groups, self._prior)

    def _inputs(self, emb: FloatArray, extra: FloatArray) -> FloatArray:
        """Embedding beside the extra columns, standardized with the training rows' moments."""
        return np.hstack([emb, (extra - self._mean) / self._std])

    def _training_inputs(self, prompts: Sequence[str], y: FloatArray) -> FloatArray:
        """Choose the feature groups for target(s) ``y`` (``select``), fit their moments and
        return the training inputs."""
        offered = self.offered_groups()
        prior = gsm8k_prior(prompts) if GSM8K_PRIOR in offered else None
        emb = self.embed(prompts)
        if self.options.select == "cv" and offered:
            self.groups, self.group_errors = choose_groups(emb, prompts, y, offered, prior)
        else:
            self.groups, self.group_errors = offered, {}
        self._prior = prior if GSM8K_PRIOR in self.groups else None
        extra = self._extra(prompts)
        self._mean, self._std = standardized(extra)
        return self._inputs(emb, extra)

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Closed-form fit; ``val`` is unused (the penalty comes from leave-one-out error)."""
        start = time.perf_counter()
        y = check_labels(prompts, labels)
        x = self._training_inputs(prompts, y)
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
        x = self._training_inputs(prompts, np.where(np.isnan(y), np.nanmean(y, axis=0), y))
        self._coef_m, self._intercept_m, self.alphas_m = ridge_columns(x, y)
        self._fitted_models(prompts, y, models)
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
                groups=np.array(self.groups, dtype=str),
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
            groups=np.array(self.groups, dtype=str),
        )
        self._save_prior(path)

    def _save_prior(self, path: Path) -> None:
        if self._prior is not None:
            (path / PRIOR_FILE).write_text(json.dumps(self._prior.to_json()))

    def _load_weights(self, path: Path) -> None:
        # routers saved before groups were chosen used every offered group
        saved: list[str] = list(self.offered_groups())
        if (path / MODELS_FILE).exists():
            with np.load(path / MODELS_FILE) as d:
                self._coef_m = d["coef"].astype(np.float64)
                self._intercept_m = d["intercept"].astype(np.float64)
                self._mean, self._std = d["mean"].astype(np.float64), d["std"].astype(np.float64)
                self.alphas_m = d["alphas"].astype(np.float64)
                saved = [str(g) for g in d["groups"].tolist()] if "groups" in d else saved
        elif (path / WEIGHTS_FILE).exists():
            with np.load(path / WEIGHTS_FILE) as d:
                self._coef = d["coef"].astype(np.float64)
                self._intercept = float(d["intercept"][0])
                self._mean, self._std = d["mean"].astype(np.float64), d["std"].astype(np.float64)
                self.alpha = float(d["alpha"][0])
                saved = [str(g) for g in d["groups"].tolist()] if "groups" in d else saved
        else:
            return
        self.groups = tuple(g for g in FEATURE_GROUPS if g in saved)
        if GSM8K_PRIOR in self.groups:
            if not (path / PRIOR_FILE).exists():
                raise InputError(f"saved ridge router has prior='gsm8k' but no {PRIOR_FILE}", path=path)
            self._prior = SolutionPrior.from_json(json.loads((path / PRIOR_FILE).read_text()))
