"""``irt``: item response theory over every model's outcomes, item parameters from the text.

Why: a pair's router trained on the pair's labels throws away what the other models' answers
say about each question. A question that 6 of 7 models solve is easy; one that only the
strongest solves is contested; one no model solves should be blocked. Item response theory
turns those answers into a few numbers per question (difficulty, discrimination) and one
ability per model, and any pair's label then follows from the two models' success
probabilities (``labels.PAIR_FORMS``: soft-block's 1 − (1 − p_w)·p_s and the others).

Two stages, both closed-form or convex:

1. **Fit the item-response model** on the training rows (all models of the table): a
   multidimensional 2PL in slope-intercept form,

       logit P(model m solves item i) = a_i · θ_m + d_i     (a_i, θ_m ∈ R^dims, d_i ∈ R),

   maximising the binomial likelihood of k_mi successes in n_mi samples (pass rate × n; a
   missing outcome has n = 0 and contributes nothing) under Gaussian priors a, d ~ N(0,
   ``item_prior``²), θ ~ N(0, 1) (:func:`neg_log_posterior`, L-BFGS with the analytic
   gradient). With dims = 1 this is the 2PL a_i(θ_m − b_i), b_i = −d_i / a_i.
2. **Learn prompt → item parameters**: ridge regression from the prompt's sentence embedding
   (+ the feature groups of :mod:`ridge` that leave-one-out error on the training rows
   chooses: hand prompt features, GSM8K solution prior) to (a_i, d_i), the penalty of each column by
   exact leave-one-out error. A new prompt's logit for model m is â·θ_m + d̂; the regression's
   leave-one-out residual variance v of that logit is integrated out with the probit
   approximation E σ(z) ≈ σ(μ / √(1 + π v / 8)), so a prompt whose parameters the text
   barely predicts gets a probability pulled toward ½ rather than a confident guess.

A model the table did not hold is placed with a few labelled questions (:meth:`add_model`):
its ability is the MAP θ under the same prior, with the questions' item parameters held
fixed (fitted ones for training questions, predicted ones otherwise).

Pure numpy + scipy (L-BFGS); deterministic (no seed).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from firewall_routing.designs import DesignName
from firewall_routing.embeddings import DEFAULT_ENCODER, ENCODER_HELP
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable
from firewall_routing.routers.base import (
    FitReport,
    ModelValidation,
    Router,
    RouterOptions,
    Validation,
    check_success,
    pair_scores_from,
    training_hash,
)
from firewall_routing.routers.knn import unit_rows
from firewall_routing.routers.ridge import (
    ALPHAS,
    FEATURE_GROUPS,
    GSM8K_PRIOR,
    PRIOR_FILE,
    FeatureGroup,
    SolutionPrior,
    choose_groups,
    group_columns,
    gsm8k_prior,
    offered_groups,
    standardized,
)

WEIGHTS_FILE = "irt.npz"


# --------------------------------------------------------------------------- the IRT model


def sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return out


def log_sigmoid(z: FloatArray) -> FloatArray:
    """log σ(z) without overflow: −log(1 + e^−z)."""
    out: FloatArray = -np.logaddexp(0.0, -np.asarray(z, dtype=np.float64))
    return out


def neg_log_posterior(
    a: FloatArray,
    d: FloatArray,
    theta: FloatArray,
    k: FloatArray,
    n: FloatArray,
    item_prior: float,
) -> tuple[float, FloatArray, FloatArray, FloatArray]:
    """−log posterior of the multidimensional 2PL and its gradient in (a, d, θ).

    ``a`` items × dims, ``d`` items, ``theta`` models × dims; ``k`` and ``n`` items × models
    successes and trials (n = 0: no outcome). The likelihood term of item i, model m is
    −[k log σ(z) + (n − k) log σ(−z)] with z = a_i·θ_m + d_i, whose derivative in z is
    n σ(z) − k; priors add |a|²/(2s²) + d²/(2s²) (s = ``item_prior``) and |θ|²/2.
    """
    z = a @ theta.T + d[:, None]
    nll = -float(np.sum(k * log_sigmoid(z) + (n - k) * log_sigmoid(-z)))
    r = n * sigmoid(z) - k  # ∂nll/∂z
    inv = 1.0 / item_prior**2
    value = nll + 0.5 * inv * (float(np.sum(a**2)) + float(np.sum(d**2))) + 0.5 * float(np.sum(theta**2))
    ga: FloatArray = r @ theta + inv * a
    gd: FloatArray = r.sum(axis=1) + inv * d
    gt: FloatArray = r.T @ a + theta
    return value, ga, gd, gt


def fit_irt(
    k: FloatArray, n: FloatArray, dims: int = 1, item_prior: float = 2.0, max_iter: int = 500
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MAP item parameters (a, d) and abilities θ for successes ``k`` of ``n`` trials
    (items × models). Deterministic start: θ from the models' centred logit pass rates
    (first dimension) and a small fixed pattern (others), a = 1, d = the item's logit rate.

    With dims = 1 the sign is fixed so that the mean discrimination is positive (θ higher =
    abler); with more dimensions the rotation is arbitrary, which no prediction depends on.
    """
    from scipy.optimize import minimize

    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    n_items, n_models = k.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        model_rate = (k.sum(0) + 0.5) / (n.sum(0) + 1.0)
        item_rate = (k.sum(1) + 0.5) / (n.sum(1) + 1.0)
    t0 = np.zeros((n_models, dims))
    lm = np.log(model_rate / (1 - model_rate))
    t0[:, 0] = (lm - lm.mean()) / (lm.std() + 1e-9)
    if dims > 1:
        t0[:, 1:] = 0.1 * np.cos(np.outer(np.arange(n_models), np.arange(1, dims)))
    a0 = np.full((n_items, dims), 1.0 / math.sqrt(dims))
    d0 = np.log(item_rate / (1 - item_rate))
    sizes = (n_items * dims, n_items, n_models * dims)

    def unpack(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        a = x[: sizes[0]].reshape(n_items, dims)
        d = x[sizes[0] : sizes[0] + sizes[1]]
        t = x[sizes[0] + sizes[1] :].reshape(n_models, dims)
        return a, d, t

    def objective(x: FloatArray) -> tuple[float, FloatArray]:
        v, ga, gd, gt = neg_log_posterior(*unpack(x), k, n, item_prior)
        return v, np.concatenate([ga.ravel(), gd, gt.ravel()])

    x0 = np.concatenate([a0.ravel(), d0, t0.ravel()])
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    a, d, t = (v.copy() for v in unpack(np.asarray(res.x, dtype=np.float64)))
    if dims == 1 and a.mean() < 0:
        a, t = -a, -t
    return a, d, t


def fit_ability(
    a: FloatArray, d: FloatArray, k: FloatArray, n: FloatArray, var: FloatArray | None = None, steps: int = 50
) -> FloatArray:
    """MAP ability θ (dims) of one model from its successes ``k`` of ``n`` on items with
    fixed parameters (a items × dims, d items), prior θ ~ N(0, I); Newton's method (the
    objective is convex). ``var`` (items) inflates each item's logit by its uncertainty
    (probit approximation), as scoring does."""
    dims = a.shape[1]
    scale = np.ones(len(d)) if var is None else 1.0 / np.sqrt(1.0 + math.pi * var / 8.0)
    aa, dd = a * scale[:, None], d * scale
    theta = np.zeros(dims)
    for _ in range(steps):
        p = sigmoid(aa @ theta + dd)
        grad = aa.T @ (n * p - k) + theta
        hess = (aa * (n * p * (1 - p))[:, None]).T @ aa + np.eye(dims)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return theta


# --------------------------------------------------------------------------- text → items


def multi_loo_ridge(
    x: FloatArray, y: FloatArray, alphas: Sequence[float] = ALPHAS
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Ridge from ``x`` to each column of ``y`` with its own penalty chosen by exact
    leave-one-out error (one SVD for all columns). Returns coef (features × columns),
    intercepts, the chosen alphas, each column's leave-one-out mean squared error and the
    leave-one-out predictions of every row at those alphas."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best = np.full(y.shape[1], np.inf)
    best_a = np.full(y.shape[1], float(alphas[0]))
    loo_pred = np.zeros_like(y)
    for a in alphas:
        f = s**2 / (s**2 + a)
        h = (u**2) @ f + 1.0 / len(y)
        resid = (yc - u @ (f[:, None] * uty)) / (1.0 - h)[:, None]
        loo = np.mean(resid**2, axis=0)
        better = loo < best - 1e-15
        best = np.where(better, loo, best)
        best_a = np.where(better, a, best_a)
        loo_pred[:, better] = (y - resid)[:, better]
    coef = np.empty((x.shape[1], y.shape[1]))
    for j, a in enumerate(best_a):
        coef[:, j] = vt.T @ ((s / (s**2 + a)) * uty[:, j])
    intercept: FloatArray = ym - xm @ coef
    return coef, intercept, best_a, best, loo_pred


KNN_KS: tuple[int, ...] = (25, 50, 100)
"""Neighbour counts the ``knn`` item head is tried with (``head: auto`` / ``knn``)."""


def knn_items(
    query: FloatArray, train: FloatArray, items: FloatArray, k: int, loo: bool = False, chunk: int = 1024
) -> FloatArray:
    """Mean item parameters of each query row's ``k`` most cosine-similar training rows
    (unit rows; ties by training order). ``loo``: the query rows *are* the training rows and
    each leaves itself out, so heads can be compared on held-out predictions."""
    k = min(k, len(train) - (1 if loo else 0))
    out = np.empty((len(query), items.shape[1]))
    for start in range(0, len(query), chunk):
        sim = query[start : start + chunk] @ train.T
        if loo:
            rows = np.arange(len(sim))
            sim[rows, start + rows] = -np.inf
        idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        out[start : start + len(sim)] = items[idx].mean(axis=1)
    return out


def binomial_loglik(p: FloatArray, k: FloatArray, n: FloatArray) -> float:
    """Σ k log p + (n − k) log(1 − p) over the observed entries (n > 0)."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return float(np.sum(k * np.log(q) + (n - k) * np.log1p(-q)))


def prompt_key(text: str) -> str:
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=8).hexdigest()


# --------------------------------------------------------------------------- the router


class IRTOptions(RouterOptions):
    encoder: str = Field(default=DEFAULT_ENCODER, description=ENCODER_HELP)
    dims: int = Field(
        default=3,
        ge=1,
        le=8,
        description="ability/discrimination dimensions (1 = 2PL; 3 by 5-fold CV on GSM8K train)",
    )
    item_prior: float = Field(
        default=2.0, gt=0, description="prior std of item discriminations and intercepts (logit units)"
    )
    design: DesignName = Field(
        default="soft-block", description="pair label composed from the two models' predicted success"
    )
    features: bool = Field(default=True, description="offer the hand-made prompt features (group 'words')")
    prior: Literal["gsm8k", "none"] = Field(
        default="gsm8k",
        description="offer the GSM8K solution prior (group 'gsm8k-prior'; needs data/gsm8k/train.jsonl to train)",
    )
    select: Literal["cv", "all"] = Field(
        default="cv",
        description="'cv': keep the offered groups with the lowest leave-one-out error of the item parameters "
        "on the training rows; 'all': every offered group",
    )
    uncertainty: bool = Field(
        default=True, description="integrate the regression's residual variance out of each logit (probit)"
    )
    head: Literal["auto", "ridge", "knn"] = Field(
        default="ridge",
        description="prompt → item parameters: ridge, the mean of the nearest training prompts' (knn, "
        "k in 25/50/100), or 'auto': whichever routes the training rows best held out (leave-one-out "
        "APGR of the pair; without a pair, log-likelihood of every model's outcomes)",
    )


class IRTRouter(Router):
    """Fits on an outcome table (``fit_table``: every model in it) or a success matrix
    (``fit_models``); scores a pair by its ``design`` of the predicted success."""

    name = "irt"
    Options = IRTOptions
    options: IRTOptions
    trains = True
    fits_table = True
    predicts_models = True
    scores_embeddings = True
    table_only = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.theta = np.zeros((0, self.options.dims))
        self._coef: FloatArray | None = None
        self._intercept = np.zeros(0)
        self._resid_var = np.zeros(0)
        self._mean = np.zeros(0)
        self._std = np.zeros(0)
        self._items = np.zeros((0, self.options.dims + 1))  # fitted (a, d) of training prompts
        self._keys: dict[str, int] = {}
        self.alphas = np.zeros(0)
        self._prior: SolutionPrior | None = None
        self.groups: tuple[FeatureGroup, ...] = self.offered_groups()
        self.group_errors: dict[str, float] = {}
        self.head = "ridge"
        self.head_loglik: dict[str, float] = {}
        self._train_emb: FloatArray | None = None

    @property
    def encoder(self) -> str:
        return self.options.encoder

    # ------------------------------------------------------------------ inputs

    def offered_groups(self) -> tuple[FeatureGroup, ...]:
        return offered_groups(self.options.features, self.options.prior)

    def trained_info(self) -> dict[str, Any]:
        return {
            "feature_groups": list(self.groups),
            "feature_group_loo_errors": self.group_errors,
            "item_head": self.head,
            "item_head_loo_scores": self.head_loglik,
        }

    def _inputs(self, emb: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Embedding beside the chosen groups' columns, standardized with the training moments."""
        extra = group_columns(texts, self.groups, self._prior)
        return np.hstack([np.asarray(emb, dtype=np.float64), (extra - self._mean) / self._std])

    # ------------------------------------------------------------------ training

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        raise InputError(
            "router 'irt' learns from every model's outcomes, not from one pair's labels: "
            "train it on an outcome table (fit_table / fit_models)"
        )

    def fit_table(self, table: OutcomeTable, *, val: Validation | None = None) -> FitReport:
        """Every model of ``table`` (pass rates × samples as binomial counts); the pair view's
        weak/strong (if any) become the pair ``score`` routes."""
        rates = table.pass_rate_matrix()
        n = table.n_matrix().astype(np.float64)
        names = table.model_names
        pair = (
            (names.index(table.pair_names[0]), names.index(table.pair_names[1])) if table.has_pair else None
        )
        rep = self._fit(table.prompts, rates, n, names, pair)
        if table.has_pair:
            w, s = table.pair_names
            self.use_pair(w, s, self.options.design)
        self.metadata = self.metadata.model_copy(
            update={"train_rows": len(table), "train_sha256": training_hash(table.prompts, rates)}
        )
        return rep

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        """A success matrix in [0, 1] (NaN missing), each entry one Bernoulli trial's worth."""
        y = check_success(prompts, success, models)
        return self._fit(prompts, y, np.where(np.isnan(y), 0.0, 1.0), tuple(models))

    def _fit(
        self,
        prompts: Sequence[str],
        rates: FloatArray,
        n: FloatArray,
        models: Sequence[str],
        pair: tuple[int, int] | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        if len(prompts) < 3:
            raise InputError(f"router 'irt' needs at least 3 training rows, got {len(prompts)}")
        if len(models) < 2:
            raise InputError("router 'irt' needs outcomes of at least two models")
        missing = np.isnan(rates)
        n = np.where(missing, 0.0, n)
        k = np.where(missing, 0.0, rates) * n
        a, d, theta = fit_irt(k, n, self.options.dims, self.options.item_prior)
        self.theta = theta
        self.model_names = tuple(models)
        items = np.hstack([a, d[:, None]])
        emb = self.embed(prompts)
        offered = self.offered_groups()
        prior = gsm8k_prior(prompts) if GSM8K_PRIOR in offered else None
        if self.options.select == "cv" and offered:
            self.groups, self.group_errors = choose_groups(emb, prompts, items, offered, prior)
        else:
            self.groups, self.group_errors = offered, {}
        self._prior = prior if GSM8K_PRIOR in self.groups else None
        self._mean, self._std = standardized(group_columns(prompts, self.groups, self._prior))
        x = self._inputs(emb, prompts)
        self._coef, self._intercept, self.alphas, self._resid_var, ridge_loo = multi_loo_ridge(x, items)
        self._items = items
        self._keys = {prompt_key(p): i for i, p in enumerate(prompts)}
        self._choose_head(emb, items, ridge_loo, k, n, pair, rates)
        return FitReport(seconds=time.perf_counter() - start)

    def _choose_head(
        self,
        emb: FloatArray,
        items: FloatArray,
        ridge_loo: FloatArray,
        k: FloatArray,
        n: FloatArray,
        pair: tuple[int, int] | None,
        rates: FloatArray,
    ) -> None:
        """Pick the item head on leave-one-out predictions of the training rows: with a pair
        to route, the APGR of its ``design`` label of the held-out predicted success (what the
        router is for; the log-likelihood of all models' outcomes picked heads that route
        worse on MMLU-Pro's training split); without one, the binomial log-likelihood of every
        model's outcomes. Each head's logit variance is its own leave-one-out residual variance."""
        from firewall_routing.labels import pair_label
        from firewall_routing.metrics import mean_apgr

        gap = pair is not None and np.nanmean(rates[:, pair[1]]) - np.nanmean(rates[:, pair[0]]) > 1e-9
        candidates: dict[str, tuple[FloatArray, FloatArray]] = {}
        if self.options.head in ("auto", "ridge"):
            candidates["ridge"] = (ridge_loo, self._resid_var)
        unit = unit_rows(emb)
        if self.options.head in ("auto", "knn") and len(items) > 1:
            for kk in KNN_KS:
                loo = knn_items(unit, unit, items, kk, loo=True)
                candidates[f"knn{kk}"] = (loo, np.mean((loo - items) ** 2, axis=0))
        scores = {}
        for name, (pred, var) in candidates.items():
            self._resid_var = var
            p = self._probabilities(pred, self.theta)
            if gap and pair is not None and not np.isnan(rates[:, list(pair)]).any():
                w, st = pair
                label = pair_label(self.options.design, p[:, w], p[:, st])
                scores[name] = mean_apgr(label, rates[:, w], rates[:, st])
            else:
                scores[name] = binomial_loglik(p, k, n)
        self.head_loglik = {h: round(v, 3) for h, v in scores.items()}
        self.head = max(scores, key=lambda h: scores[h])
        self._resid_var = candidates[self.head][1]
        self._train_emb = None if self.head == "ridge" else unit

    # ------------------------------------------------------------------ prediction

    def predict_items(self, emb: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Predicted (a_1..a_dims, d) per prompt."""
        if self._coef is None:
            raise InputError("router is not trained: call fit_table() or load a saved router")
        if self.head != "ridge":
            if self._train_emb is None:
                raise InputError("router is not trained: call fit_table() or load a saved router")
            return knn_items(unit_rows(emb), self._train_emb, self._items, int(self.head.removeprefix("knn")))
        out: FloatArray = self._inputs(emb, texts) @ self._coef + self._intercept
        return out

    def _logit_var(self, theta: FloatArray) -> FloatArray:
        """Variance of the predicted logit a·θ + d for each model row of ``theta`` (columns'
        leave-one-out errors, treated as independent)."""
        dims = self.options.dims
        out: FloatArray = (theta**2) @ self._resid_var[:dims] + self._resid_var[dims]
        return out

    def _probabilities(self, items: FloatArray, theta: FloatArray) -> FloatArray:
        dims = self.options.dims
        z = items[:, :dims] @ theta.T + items[:, dims][:, None]
        if self.options.uncertainty:
            z = z / np.sqrt(1.0 + math.pi * self._logit_var(theta) / 8.0)[None, :]
        return sigmoid(z)

    def predict_models_embeddings(self, emb: FloatArray, texts: Sequence[str]) -> FloatArray:
        return self._probabilities(self.predict_items(emb, texts), self.theta)

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        return self.predict_models_embeddings(self.embed(prompts), prompts)

    def score_embeddings(self, emb: FloatArray, texts: Sequence[str] | None = None) -> FloatArray:
        if texts is None:
            raise InputError("router 'irt' scores embeddings together with their prompts' texts")
        if len(texts) != len(emb):
            raise ValueError(f"{len(emb)} embeddings but {len(texts)} texts")
        return pair_scores_from(self.predict_models_embeddings(emb, texts), self.model_names, self.metadata)

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.score_embeddings(self.embed(prompts), prompts)

    # ------------------------------------------------------------------ new models

    def add_model(
        self, name: str, prompts: Sequence[str], success: FloatArray, n: FloatArray | None = None
    ) -> FloatArray:
        """Place a model the table did not hold from a few labelled questions: MAP ability
        with the questions' item parameters fixed (fitted for training prompts, predicted
        from the text otherwise). Returns its θ; the model joins ``model_names``."""
        if self._coef is None:
            raise InputError("router is not trained: call fit_table() before add_model()")
        if name in self.model_names:
            raise InputError(f"model '{name}' is already known to the router", field="model")
        y = np.asarray(success, dtype=np.float64)
        if y.shape != (len(prompts),):
            raise ValueError(f"{len(prompts)} prompts but success has shape {y.shape}")
        trials = np.ones(len(y)) if n is None else np.asarray(n, dtype=np.float64)
        keep = ~np.isnan(y)
        if not keep.any():
            raise InputError(f"model '{name}' has no labelled question", field="model")
        if ((y[keep] < 0) | (y[keep] > 1)).any():
            raise InputError("success values must lie in [0, 1] (NaN = missing)")
        texts = [p for p, ok in zip(prompts, keep, strict=True) if ok]
        pred = self.predict_items(self.embed(texts), texts)
        dims = self.options.dims
        var = np.full(len(texts), 0.0)
        unknown_var = self._logit_var(np.zeros((1, dims)))[0] if self.options.uncertainty else 0.0
        for j, t in enumerate(texts):
            i = self._keys.get(prompt_key(t))
            if i is None:
                var[j] = unknown_var
            else:
                pred[j] = self._items[i]
        t_new = fit_ability(pred[:, :dims], pred[:, dims], y[keep] * trials[keep], trials[keep], var)
        self.theta = np.vstack([self.theta, t_new[None, :]])
        self.model_names = (*self.model_names, name)
        return t_new

    # ------------------------------------------------------------------ persistence

    def _save_weights(self, path: Path) -> None:
        if self._coef is None:
            raise InputError("cannot save an untrained router")
        np.savez(
            path / WEIGHTS_FILE,
            theta=self.theta,
            coef=self._coef,
            intercept=self._intercept,
            resid_var=self._resid_var,
            mean=self._mean,
            std=self._std,
            alphas=self.alphas,
            items=self._items,
            keys=np.array(sorted(self._keys, key=self._keys.__getitem__)),
            groups=np.array(self.groups, dtype=str),
            head=np.array(self.head),
            train_emb=self._train_emb if self._train_emb is not None else np.zeros((0, 0)),
        )
        if self._prior is not None:
            (path / PRIOR_FILE).write_text(json.dumps(self._prior.to_json()))

    def _load_weights(self, path: Path) -> None:
        if not (path / WEIGHTS_FILE).exists():
            return
        with np.load(path / WEIGHTS_FILE) as w:
            self.theta = w["theta"].astype(np.float64)
            self._coef = w["coef"].astype(np.float64)
            self._intercept = w["intercept"].astype(np.float64)
            self._resid_var = w["resid_var"].astype(np.float64)
            self._mean, self._std = w["mean"].astype(np.float64), w["std"].astype(np.float64)
            self.alphas = w["alphas"].astype(np.float64)
            self._items = w["items"].astype(np.float64)
            self._keys = {str(k): i for i, k in enumerate(w["keys"].tolist())}
            saved = [str(g) for g in w["groups"].tolist()]
            self.head = str(w["head"])
            self._train_emb = None if self.head == "ridge" else w["train_emb"].astype(np.float64)
        self.groups = tuple(g for g in FEATURE_GROUPS if g in saved)
        if GSM8K_PRIOR in self.groups:
            if not (path / PRIOR_FILE).exists():
                raise InputError(f"saved irt router uses the gsm8k prior but has no {PRIOR_FILE}", path=path)
            self._prior = SolutionPrior.from_json(json.loads((path / PRIOR_FILE).read_text()))
        if len(self.model_names) != len(self.theta):
            raise InputError(
                f"saved irt router has {len(self.theta)} abilities but {len(self.model_names)} model names",
                path=path,
            )
