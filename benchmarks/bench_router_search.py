"""Router search: candidate scorers over frozen MiniLM embeddings, judged on every RouterDC pair.

Why this exists: the default ``embedding-head`` (an MLP picked by best epoch on 100 validation
rows) loses to a plain ridge regression on the same embeddings, and single-pair comparisons
at ~54 APGR are within noise of each other. So every candidate here is trained and scored on
**all** ordered RouterDC pairs whose GSM8K-train strong-minus-weak pass rate is >= 0.10
(15 pairs), with the same fixed 900/100 split ``reproduce`` uses (only the 900 training rows
are used for fitting; hyperparameters are chosen by cross-validation on them, never on test).

Reported per candidate and label design (soft-block primarily, weak-pass-rate too):
mean GSM8K-test APGR over the pairs, main-pair APGR (zephyr-7b-beta -> dolphin-2.9-llama3-8b)
with a 95 % bootstrap CI over test queries, wins against the ridge baseline (pairs where the
candidate's APGR is higher), mean training seconds per fit, and the p50 per-prompt scoring
time of the head given the prompt's embedding (the MiniLM forward pass, the same for every
candidate, is timed once and printed separately). HumanEval and MBPP (out of distribution)
are scored for the main pair and the generalization pair (Mistral-7B-v0.1 -> dolphin).

Auxiliary data, all leakage-checked at load time:
* ``data/gsm8k/train.jsonl`` (7,473 GSM8K train questions with reference solutions): the
  number of ``<<...>>`` calculator steps is a difficulty proxy. The step regressor trains on
  the GSM8K train questions that are *not* RouterDC's 1,000 training questions, so its
  predictions are out-of-sample for router training rows and test rows alike; the script
  asserts that none of those questions is a GSM8K/RouterDC test question.
* RouterDC's 7 models' pass rates on the *training* questions (mean over models = a less
  noisy difficulty signal than one model's 10 samples).

Usage (embedding cache warm after the first run):
``PYTHONPATH=src nice -n 10 python benchmarks/bench_router_search.py [--only a,b] [--n-boot 1000]``
Writes ``benchmarks/results/router_search.json``.
"""

from __future__ import annotations

# ruff: noqa: E402  (BLAS thread counts must be set before numpy is imported)
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # 2 shared cores: multi-threaded BLAS only thrashes

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "router_search.json"
MAIN = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")
GEN = ("mistralai/Mistral-7B-v0.1", "cognitivecomputations/dolphin-2.9-llama3-8b")
MIN_GAP = 0.10
EVAL_FILES = {
    "gsm8k": ("gsm8k-test.json",),
    "humaneval": ("humaneval_train.json", "humaneval_test.json"),
    "mbpp": ("mbpp.json",),
}
Arr = np.ndarray[Any, np.dtype[np.float64]]


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    """Prompts, embeddings, per-model pass rates (n x models) and hand-made features."""

    prompts: list[str]
    emb: Arr
    pr: Arr
    feats: Arr = field(default_factory=lambda: np.zeros((0, 0)))
    prior: Arr = field(default_factory=lambda: np.zeros((0, 0)))  # predicted solution targets

    @property
    def steps(self) -> Arr:
        """Predicted log reasoning steps (the prior's first target)."""
        return self.prior[:, 0]


@dataclass
class Data:
    models: list[str]
    train: Split  # the 900 training rows of reproduce's split
    val: Split  # its 100 validation rows
    evals: dict[str, Split]
    pairs: list[tuple[str, str]]
    prior: Any  # the fitted SolutionPrior


def read_routerdc(paths: list[Path], models: list[str] | None = None) -> tuple[list[str], list[str], Arr]:
    rows = [r for p in paths for r in json.loads(p.read_text())]
    names = models or sorted(rows[0]["scores"])
    pr = np.array([[float(r["scores"][m]) for m in names] for r in rows])
    return [r["question"] for r in rows], names, pr


def norm(s: str) -> str:
    return " ".join(s.split())


def feats(prompts: list[str]) -> Arr:
    from firewall_routing.routers.ridge import feature_matrix

    return feature_matrix(prompts)


def step_count(answer: str) -> float:
    """Reasoning steps of a GSM8K reference solution: calculator annotations, else lines."""
    calls = answer.count("<<")
    lines = len([ln for ln in answer.split("####")[0].splitlines() if ln.strip()])
    return float(max(calls, lines, 1))


def load(data_dir: Path, encode: Callable[[list[str]], Arr]) -> tuple[Data, dict[str, Any]]:
    from firewall_routing.outcomes import load_routerdc, split_train_val
    from firewall_routing.routers.ridge import fit_solution_prior

    rd = data_dir / "routerdc"
    tr_prompts, models, tr_pr = read_routerdc([rd / "gsm8k-train.json"])
    # reproduce's split: the permutation depends only on the row count and the seed
    full = load_routerdc(rd / "gsm8k-train.json", MAIN[0], MAIN[1], "gsm8k-train")
    train_t, val_t = split_train_val(full, 0.1, 0)
    idx = [tr_prompts.index(p) for p in train_t.prompts]
    vidx = [tr_prompts.index(p) for p in val_t.prompts]
    assert np.allclose(tr_pr[idx, models.index(MAIN[0])], train_t.weak.pass_rate)
    train = Split([tr_prompts[i] for i in idx], np.zeros(0), tr_pr[idx])
    val = Split([tr_prompts[i] for i in vidx], np.zeros(0), tr_pr[vidx])
    evals: dict[str, Split] = {}
    for ds, files in EVAL_FILES.items():
        ps, _, pr = read_routerdc([rd / f for f in files], models)
        evals[ds] = Split(ps, np.zeros(0), pr)

    # auxiliary GSM8K train questions: never a test question, never a RouterDC training row
    gsm = [json.loads(line) for line in (data_dir / "gsm8k" / "train.jsonl").read_text().splitlines() if line]
    test_q = {norm(p) for p in evals["gsm8k"].prompts}
    test_q |= {
        norm(json.loads(line)["question"])
        for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()
        if line
    }
    rd_train = {norm(p) for p in tr_prompts}
    aux = [r for r in gsm if norm(r["question"]) not in rd_train]
    leaks = sum(norm(r["question"]) in test_q for r in aux)
    assert leaks == 0, f"{leaks} auxiliary questions are test questions"
    aux_prompts = [r["question"] for r in aux]

    all_prompts = list(
        dict.fromkeys(train.prompts + val.prompts + [p for s in evals.values() for p in s.prompts])
    )
    t = time.perf_counter()
    table = dict(zip(all_prompts, encode(all_prompts), strict=True))
    embed_s = time.perf_counter() - t
    t = time.perf_counter()
    prior = fit_solution_prior(aux_prompts, [r["answer"] for r in aux])
    prior_s = time.perf_counter() - t
    for s in [train, val, *evals.values()]:
        s.emb = np.stack([table[p] for p in s.prompts])
        s.feats = feats(s.prompts)
        s.prior = prior.predict(s.prompts)
    true_steps = np.log(
        [
            step_count(json.loads(line)["answer"])
            for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()
            if line
        ]
    )
    rho = float(
        np.corrcoef(np.argsort(np.argsort(true_steps)), np.argsort(np.argsort(evals["gsm8k"].steps)))[0, 1]
    )

    pairs = []
    means = tr_pr.mean(0)  # gap on the whole 1,000-row GSM8K train file, as the sweep defines it
    for i, weak in enumerate(models):
        for j, strong in enumerate(models):
            if i != j and means[j] - means[i] >= MIN_GAP:
                pairs.append((weak, strong))
    info = {
        "aux_questions": len(aux),
        "aux_test_overlap": leaks,
        "prior_fit_seconds": round(prior_s, 1),
        "prior_vocab": len(prior.vocab),
        "test_spearman_pred_vs_true_steps": round(rho, 3),
        "embed_seconds": round(embed_s, 1),
    }
    return Data(models, train, val, evals, pairs, prior), info


# --------------------------------------------------------------------------- ridge (numpy)

ALPHAS = np.logspace(-1, 3.5, 19)


@dataclass
class Ridge:
    coef: Arr
    intercept: float
    x_mean: Arr


def ridge_fit(x: Arr, y: Arr, alpha: float, w: Arr | None = None) -> Ridge:
    xm = x.mean(0)
    ym = float(y.mean())
    xc = x - xm
    a = xc.T @ xc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(a, xc.T @ (y - ym))
    return Ridge(coef, ym, xm)


def ridge_predict(m: Ridge, x: Arr) -> Arr:
    return (x - m.x_mean) @ m.coef + m.intercept


def ridge_path(xtr: Arr, ytr: Arr, xte: Arr, alphas: Arr) -> Arr:
    """Test predictions for every alpha at once (one SVD): shape (len(alphas), n_test)."""
    xm, ym = xtr.mean(0), ytr.mean()
    u, s, vt = np.linalg.svd(xtr - xm, full_matrices=False)
    uty = u.T @ (ytr - ym)
    proj = (xte - xm) @ vt.T
    d = s[None, :] / (s[None, :] ** 2 + alphas[:, None])
    out: Arr = ym + (d * uty[None, :]) @ proj.T
    return out


def ridge_loo_alpha(x: Arr, y: Arr, alphas: Arr = ALPHAS) -> float:
    """Leave-one-out (exact, closed form) MSE for each alpha; the smallest wins."""
    xm, ym = x.mean(0), y.mean()
    u, s, _ = np.linalg.svd(x - xm, full_matrices=False)
    uty = u.T @ (y - ym)
    best, best_a = np.inf, float(alphas[0])
    for a in alphas:
        f = s**2 / (s**2 + a)
        fit = u @ (f * uty)
        h = (u**2) @ f + 1.0 / len(y)
        loo = np.mean(((y - ym - fit) / (1 - h)) ** 2)
        if loo < best:
            best, best_a = loo, float(a)
    return best_a


def apgr(score: Arr, pw: Arr, ps: Arr) -> float:
    from firewall_routing import metrics

    return metrics.apgr(metrics.deferral_curve(score, pw, ps))


def kfold(n: int, k: int, seed: int) -> list[Arr]:
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(perm[i::k]) for i in range(k)]


def cv_apgr_ridge(x: Arr, y: Arr, pw: Arr, ps: Arr, alphas: Arr = ALPHAS, k: int = 5, reps: int = 2) -> Arr:
    """Mean fold APGR per alpha (k-fold, ``reps`` repeats) on the training rows only."""
    out = np.zeros(len(alphas))
    for r in range(reps):
        for fold in kfold(len(y), k, 100 + r):
            tr = np.setdiff1d(np.arange(len(y)), fold)
            preds = ridge_path(x[tr], y[tr], x[fold], alphas)
            out += [apgr(p, pw[fold], ps[fold]) for p in preds]
    return out / (k * reps)


# --------------------------------------------------------------------------- candidates


@dataclass
class Task:
    """One fit: the training rows of one pair and label design, and where to score."""

    x: Arr  # training embeddings
    y: Arr  # labels
    pw: Arr
    ps: Arr
    pr_all: Arr  # all models' pass rates on training rows
    train: Split
    val: Split  # the 100 validation rows (only the shipped embedding-head uses them)
    val_pw: Arr
    val_ps: Arr


Scorer = Callable[[Arr, Split], Arr]
"""(embeddings, split) -> scores; what a fitted candidate is."""
Candidate = Callable[[Task], Scorer]


def std_feats(train: Split) -> Callable[[Split], Arr]:
    mu, sd = train.feats.mean(0), train.feats.std(0) + 1e-9
    return lambda s: (s.feats - mu) / sd


def c_ridge_fixed(alpha: float) -> Candidate:
    def fit(t: Task) -> Scorer:
        m = ridge_fit(t.x, t.y, alpha)
        return lambda x, s: ridge_predict(m, x)

    return fit


def c_ridge_loo(t: Task) -> Scorer:
    m = ridge_fit(t.x, t.y, ridge_loo_alpha(t.x, t.y))
    return lambda x, s: ridge_predict(m, x)


def c_ridge_cvapgr(t: Task) -> Scorer:
    a = float(ALPHAS[int(np.argmax(cv_apgr_ridge(t.x, t.y, t.pw, t.ps)))])
    m = ridge_fit(t.x, t.y, a)
    return lambda x, s: ridge_predict(m, x)


def c_ridge_feats(t: Task) -> Scorer:
    f = std_feats(t.train)
    xt = np.hstack([t.x, f(t.train)])
    m = ridge_fit(xt, t.y, ridge_loo_alpha(xt, t.y))
    return lambda x, s: ridge_predict(m, np.hstack([x, f(s)]))


def c_ridge_prior(t: Task) -> Scorer:
    """Embedding + hand features + the GSM8K solution prior (the shipped ``ridge`` inputs)."""
    f = std_feats(t.train)
    mu, sd = t.train.prior.mean(0), t.train.prior.std(0) + 1e-9

    def z(x: Arr, s: Split) -> Arr:
        return np.hstack([x, f(s), (s.prior - mu) / sd])

    xt = z(t.x, t.train)
    m = ridge_fit(xt, t.y, ridge_loo_alpha(xt, t.y))
    return lambda x, s: ridge_predict(m, z(x, s))


def c_ridge_prior_sq(t: Task) -> Scorer:
    """``ridge+feats+prior`` plus the squared prior outputs (a hump in predicted difficulty)."""
    f = std_feats(t.train)
    mu, sd = t.train.prior.mean(0), t.train.prior.std(0) + 1e-9

    def z(x: Arr, s: Split) -> Arr:
        p = (s.prior - mu) / sd
        return np.hstack([x, f(s), p, p**2 / 3])

    xt = z(t.x, t.train)
    m = ridge_fit(xt, t.y, ridge_loo_alpha(xt, t.y))
    return lambda x, s: ridge_predict(m, z(x, s))


def c_ensemble(parts: tuple[Candidate, ...], weights: tuple[float, ...]) -> Candidate:
    """Weighted mean of the members' scores, each z-scored with its training-set scores."""

    def fit(t: Task) -> Scorer:
        fitted = [p(t) for p in parts]
        stats = [(float(v.mean()), float(v.std()) + 1e-12) for v in (f(t.x, t.train) for f in fitted)]

        def score(x: Arr, s: Split) -> Arr:
            out = np.zeros(len(x))
            for f, w, (m, sd) in zip(fitted, weights, stats, strict=True):
                out += w * (f(x, s) - m) / sd
            return out

        return score

    return fit


def c_ridge_router(t: Task) -> Scorer:
    """The registered ``ridge`` router itself (its prior leaves out only its 900 fit prompts)."""
    from firewall_routing.routers.ridge import RidgeRouter

    r = RidgeRouter()
    r.fit(t.train.prompts, t.y)
    return lambda x, s: r.score_embeddings(x, s.prompts)


def c_steps_only(t: Task) -> Scorer:
    """Fewer predicted reasoning steps = easier = weak (no training on the pair at all)."""
    return lambda x, s: -s.steps


def c_meanpr_ridge(t: Task) -> Scorer:
    """Ridge on the mean pass rate over all 7 models (denoised difficulty), pair-agnostic."""
    y = t.pr_all.mean(1)
    m = ridge_fit(t.x, y, ridge_loo_alpha(t.x, y))
    return lambda x, s: ridge_predict(m, x)


def oof_ridge(x: Arr, y: Arr, k: int = 5, seed: int = 7) -> tuple[Arr, Ridge]:
    """Out-of-fold predictions (for stacking) and the model refit on all rows."""
    a = ridge_loo_alpha(x, y)
    oof = np.zeros(len(y))
    for fold in kfold(len(y), k, seed):
        tr = np.setdiff1d(np.arange(len(y)), fold)
        oof[fold] = ridge_predict(ridge_fit(x[tr], y[tr], a), x[fold])
    return oof, ridge_fit(x, y, a)


def c_stack_quad(bases: tuple[str, ...], alpha_top: float = 3.0) -> Candidate:
    """Needs the outcome table (not just labels): out-of-fold ridge predictions of ``bases``
    (weak pass rate, strong pass rate, mean pass rate over the 7 models) from
    [embedding, hand features, prior], then a ridge over them and all their pairwise
    products (difficulty helps only through a hump: questions both models solve or both
    fail gain nothing from the strong model)."""

    def fit(t: Task) -> Scorer:
        from itertools import combinations_with_replacement

        f = std_feats(t.train)
        mu, sd = t.train.prior.mean(0), t.train.prior.std(0) + 1e-9

        def z(x: Arr, s: Split) -> Arr:
            return np.hstack([x, f(s), (s.prior - mu) / sd])

        xt = z(t.x, t.train)
        targets = {"meanpr": t.pr_all.mean(1), "pw": t.pw, "ps": t.ps, "label": t.y}
        cols, models = [], []
        for name in bases:
            oof, m = oof_ridge(xt, targets[name])
            cols.append((oof - oof.mean()) / oof.std())
            models.append((m, oof.mean(), oof.std()))
        pairs = list(combinations_with_replacement(range(len(cols)), 2))

        def expand(c: list[Arr]) -> Arr:
            return np.column_stack(c + [c[i] * c[j] for i, j in pairs])

        top = ridge_fit(expand(cols), t.y, alpha_top)

        def score(x: Arr, s: Split) -> Arr:
            zz = z(x, s)
            return ridge_predict(top, expand([(ridge_predict(m, zz) - a) / b for m, a, b in models]))

        return score

    return fit


def c_knn(t: Task) -> Scorer:
    ks = [10, 25, 50, 100, 200]
    sims = t.x @ t.x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    best_k = max(ks, key=lambda k: apgr(t.y[order[:, :k]].mean(1), t.pw, t.ps))

    def score(x: Arr, s: Split) -> Arr:
        nn = np.argsort(-(x @ t.x.T), axis=1)[:, :best_k]
        out: Arr = t.y[nn].mean(1)
        return out

    return score


def c_mlp(
    wd: float, epochs: int, seeds: int, hidden: int = 128, lr: float = 1e-3, dropout: float = 0.1
) -> Candidate:
    """MLP head trained for a fixed number of epochs (no early stopping), seed-averaged."""

    def fit(t: Task) -> Scorer:
        import torch

        torch.set_num_threads(1)
        x = torch.tensor(t.x, dtype=torch.float32)
        y = torch.tensor(t.y, dtype=torch.float32)
        nets = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(dropout),
                torch.nn.Linear(hidden, 1),
            )
            opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                perm = torch.randperm(len(y), generator=gen)
                for i in range(0, len(y), 32):
                    b = perm[i : i + 32]
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[b]).reshape(-1), y[b])
                    opt.zero_grad()
                    torch.autograd.backward(loss)
                    opt.step()
            net.eval()
            nets.append(net)

        def score(e: Arr, s: Split) -> Arr:
            with torch.no_grad():
                xe = torch.tensor(e, dtype=torch.float32)
                out: Arr = np.mean([torch.sigmoid(n(xe).reshape(-1)).double().numpy() for n in nets], axis=0)
                return out

        return score

    return fit


def c_embedding_head(t: Task) -> Scorer:
    """Today's default router, as shipped: MLP, best epoch by APGR on the 100 validation rows."""
    from firewall_routing.routers import Validation
    from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

    router = EmbeddingHeadRouter(seed=0)
    router.fit(t.train.prompts, t.y, val=Validation(t.val.prompts, t.val_pw, t.val_ps))
    return lambda x, s: router.score_embeddings(x)


CANDIDATES: dict[str, Candidate] = {
    "ridge-a30": c_ridge_fixed(30.0),
    "embedding-head": c_embedding_head,
    "mlp-wd0.01-e40-noES": c_mlp(0.01, 40, 1),
    "mlp-wd1-e20-noES-x5": c_mlp(1.0, 20, 5),
    "ridge-loo": c_ridge_loo,
    "ridge-cvapgr": c_ridge_cvapgr,
    "knn-cv": c_knn,
    "meanpr-ridge": c_meanpr_ridge,
    "prior-steps-only": c_steps_only,
    "ridge+feats": c_ridge_feats,
    "ridge+feats+prior": c_ridge_prior,
    "ridge+feats+prior+prior^2": c_ridge_prior_sq,
    "ens 0.7 ridge+feats+prior / 0.3 knn-cv": c_ensemble((c_ridge_prior, c_knn), (0.7, 0.3)),
    "ridge (router)": c_ridge_router,
    "stack-quad(pw,ps) [table]": c_stack_quad(("pw", "ps")),
    "stack-quad(pw,ps,meanpr) [table+7 models]": c_stack_quad(("meanpr", "pw", "ps")),
}
BASELINE = "ridge-a30"


def labels_for(design: str, pw: Arr, ps: Arr) -> Arr:
    from firewall_routing.labels import soft_block, weak_pass_rate

    return soft_block(pw, ps) if design == "soft-block" else weak_pass_rate(pw)


def pair_task(data: Data, design: str, w: str, s: str) -> tuple[Task, int, int]:
    """The fit for pair (w, s) with ``design``'s labels, and the two models' columns."""
    iw, is_ = data.models.index(w), data.models.index(s)
    tr = data.train
    pw, ps = tr.pr[:, iw], tr.pr[:, is_]
    task = Task(
        tr.emb,
        labels_for(design, pw, ps),
        pw,
        ps,
        tr.pr,
        tr,
        data.val,
        data.val.pr[:, iw],
        data.val.pr[:, is_],
    )
    return task, iw, is_


def head_latency_ms(scorer: Scorer, split: Split, prior: Any, n: int = 200) -> float:
    """p50 time to score one prompt given its embedding; computing the hand features and the
    solution prior is included for every candidate (an upper bound for those not using them)."""
    lat = []
    for i in range(n):
        one = Split([split.prompts[i]], split.emb[i : i + 1], split.pr[i : i + 1])
        t0 = time.perf_counter()
        one.feats = feats(one.prompts)
        one.prior = prior.predict(one.prompts)
        scorer(one.emb, one)
        lat.append((time.perf_counter() - t0) * 1000)
    return statistics.median(lat)


def router_latency(data: Data, n: int = 60) -> dict[str, float]:
    """The registered ``ridge`` router trained on the main pair: p50/p99 of one
    ``score([prompt])`` per GSM8K test prompt with an empty embedding cache (MiniLM runs),
    and p50 of the part after the embedding (features, prior, dot product)."""
    import tempfile

    from firewall_routing.embeddings import DEFAULT_ENCODER, SentenceEncoder, register_encoder
    from firewall_routing.routers.ridge import RidgeRouter

    iw, is_ = data.models.index(MAIN[0]), data.models.index(MAIN[1])
    r = RidgeRouter()
    r.fit(data.train.prompts, labels_for("soft-block", data.train.pr[:, iw], data.train.pr[:, is_]))
    gsm = data.evals["gsm8k"]
    head = []
    for i in range(200):
        t0 = time.perf_counter()
        r.score_embeddings(gsm.emb[i : i + 1], gsm.prompts[i : i + 1])
        head.append((time.perf_counter() - t0) * 1000)
    with tempfile.TemporaryDirectory() as d:
        register_encoder("bench-uncached", SentenceEncoder(DEFAULT_ENCODER), Path(d))
        r.options = r.options.model_copy(update={"encoder": "bench-uncached"})
        r.score([gsm.prompts[-1]])  # warm-up: model load
        full = []
        for p in gsm.prompts[:n]:
            t0 = time.perf_counter()
            r.score([p])
            full.append((time.perf_counter() - t0) * 1000)
    full.sort()
    return {
        "after_embedding_ms_p50": round(statistics.median(head), 3),
        "full_ms_p50": round(statistics.median(full), 1),
        "full_ms_p99": round(full[min(len(full) - 1, round(0.99 * (len(full) - 1)))], 1),
        "n": n,
        "loadavg": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    ap.add_argument("--designs", default="soft-block,weak-pass-rate")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--print", dest="reprint", action="store_true", help="only print the tables of --out")
    args = ap.parse_args()
    if args.reprint:
        saved = json.loads(args.out.read_text())
        rows = list(saved["candidates"])
        names_saved = list(dict.fromkeys(k.split("/", 1)[1] for k in rows))
        designs_saved = list(dict.fromkeys(k.split("/", 1)[0] for k in rows))
        print_table(saved, names_saved, designs_saved)
        return

    from firewall_routing import metrics
    from firewall_routing.embeddings import get_encoder
    from firewall_routing.sampling.datasets import default_data_dir

    enc = get_encoder()
    data, info = load(default_data_dir(), lambda ps: enc.encode(ps))
    print(f"{len(data.pairs)} pairs; aux: {info}", flush=True)
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    designs = args.designs.split(",")
    gsm = data.evals["gsm8k"]
    draws = metrics.bootstrap_draws(len(gsm.prompts), args.n_boot, 0) if args.n_boot else None

    results: dict[str, Any] = {"info": info, "pairs": [list(p) for p in data.pairs], "candidates": {}}
    ceilings = {}
    for w, s in data.pairs:
        iw, is_ = data.models.index(w), data.models.index(s)
        ceilings[f"{w}->{s}"] = apgr(gsm.pr[:, iw], gsm.pr[:, iw], gsm.pr[:, is_])
    results["ceiling_true_weak_pass_rate"] = ceilings

    for design in designs:
        for name in names:
            cand = CANDIDATES[name]
            per_pair: dict[str, float] = {}
            ood: dict[str, float] = {}
            secs: list[float] = []
            main_ci: tuple[float, float] | None = None
            lat = float("nan")
            for w, s in data.pairs:
                task, iw, is_ = pair_task(data, design, w, s)
                t0 = time.perf_counter()
                scorer = cand(task)
                secs.append(time.perf_counter() - t0)
                key = f"{w}->{s}"
                per_pair[key] = apgr(scorer(gsm.emb, gsm), gsm.pr[:, iw], gsm.pr[:, is_])
                if (w, s) == MAIN:
                    lat = head_latency_ms(scorer, gsm, data.prior)
                    if draws is not None:
                        boot = metrics.bootstrap_metrics(
                            [scorer(gsm.emb, gsm)], gsm.pr[:, iw], gsm.pr[:, is_], draws
                        )
                        main_ci = metrics.ci95(boot.apgr)
                if (w, s) in (MAIN, GEN):
                    for ds in ("humaneval", "mbpp"):
                        ev = data.evals[ds]
                        ood[f"{'main' if (w, s) == MAIN else 'gen'}/{ds}"] = apgr(
                            scorer(ev.emb, ev), ev.pr[:, iw], ev.pr[:, is_]
                        )
            row = {
                "design": design,
                "mean_apgr": float(np.mean(list(per_pair.values()))),
                "main_apgr": per_pair[f"{MAIN[0]}->{MAIN[1]}"],
                "main_ci95": main_ci,
                "per_pair": per_pair,
                "ood": ood,
                "train_seconds_mean": float(np.mean(secs)),
                "head_latency_ms_p50": lat,
            }
            results["candidates"][f"{design}/{name}"] = row
            print(
                f"{design:15s} {name:32s} mean {row['mean_apgr']:6.2f}  main {row['main_apgr']:6.2f} "
                f"[{main_ci[0] if main_ci else float('nan'):5.1f}, {main_ci[1] if main_ci else float('nan'):5.1f}]  "
                f"train {row['train_seconds_mean']:6.2f}s  lat {lat:6.3f}ms  "
                + " ".join(f"{k}={v:5.1f}" for k, v in ood.items()),
                flush=True,
            )
        base = results["candidates"][f"{design}/{BASELINE}"]["per_pair"]
        for name in names:
            row = results["candidates"][f"{design}/{name}"]
            row["wins_vs_baseline"] = int(sum(row["per_pair"][k] > base[k] for k in base))

    results["ridge_router_latency"] = router_latency(data)
    print(
        f"ridge router, score([prompt]) on unseen prompts (uncached MiniLM): {results['ridge_router_latency']}"
    )
    print_table(results, names, designs)
    results["machine"] = {"python": sys.version.split()[0], "platform": platform.platform()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def print_table(results: dict[str, Any], names: list[str], designs: list[str]) -> None:
    print()
    print(
        f"| design | candidate | mean APGR ({len(results['pairs'])} pairs) | wins vs {BASELINE} | main APGR [95% CI] | train s | head ms p50 |"
    )
    print("|---|---|---:|---:|---|---:|---:|")
    for design in designs:
        for name in names:
            r = results["candidates"][f"{design}/{name}"]
            ci = r["main_ci95"]
            cis = f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
            print(
                f"| {design} | {name} | {r['mean_apgr']:.2f} | {r['wins_vs_baseline']} | {r['main_apgr']:.2f}{cis} | "
                f"{r['train_seconds_mean']:.2f} | {r['head_latency_ms_p50']:.3f} |"
            )
    print("\nOut of distribution (trained on GSM8K train, scored on HumanEval 164 / MBPP 500):\n")
    keys = ["main/humaneval", "main/mbpp", "gen/humaneval", "gen/mbpp"]
    print("| design | candidate | " + " | ".join(keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    for design in designs:
        for name in names:
            ood = results["candidates"][f"{design}/{name}"]["ood"]
            print(f"| {design} | {name} | " + " | ".join(f"{ood[k]:.1f}" for k in keys) + " |")
    ceil = results["ceiling_true_weak_pass_rate"]
    print(
        f"\nceiling (true test weak pass rate as score): mean {np.mean(list(ceil.values())):.2f}, "
        f"main {ceil[f'{MAIN[0]}->{MAIN[1]}']:.2f}"
    )
    if "ridge_router_latency" in results:
        print(f"ridge router latency: {results['ridge_router_latency']}")


if __name__ == "__main__":
    main()
