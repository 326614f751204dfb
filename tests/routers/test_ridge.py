"""``ridge`` router: hand-computed ridge/LOO/squash/features, the solution prior, save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.routers import load_router, make_router
from firewall_routing.routers import ridge as rr
from firewall_routing.routers.ridge import (
    RidgeRouter,
    fit_solution_prior,
    gsm8k_prior,
    loo_alpha,
    prompt_features,
    ridge_solve,
    solution_targets,
    squash,
)

from ..conftest import ToyEncoder

NATALIA = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


def test_ridge_solve_by_hand() -> None:
    x, y = np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 2.0])
    coef, b = ridge_solve(x, y, 0.0)
    assert coef[0] == pytest.approx(1.0) and b == pytest.approx(0.0)
    # centred x = (−1, 0, 1): Σx² = 2, Σxy = 2 → coef = 2 / (2 + 2); intercept = 1 − 1·0.5
    coef, b = ridge_solve(x, y, 2.0)
    assert coef[0] == pytest.approx(0.5) and b == pytest.approx(0.5)


def test_loo_alpha_matches_brute_force_leave_one_out() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    y = x @ np.array([1.0, -0.5, 0.0, 0.2]) + rng.normal(scale=1.5, size=30)
    alphas = (0.01, 1.0, 10.0, 100.0, 1000.0)

    def brute(a: float) -> float:
        errs = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            coef, b = ridge_solve(x[keep], y[keep], a)
            errs.append((y[i] - x[i] @ coef - b) ** 2)
        return float(np.mean(errs))

    expected = min(alphas, key=brute)
    assert loo_alpha(x, y, alphas) == expected


def test_squash_is_identity_inside_and_strictly_increasing_into_the_open_unit_interval() -> None:
    assert squash(np.array([0.01, 0.3, 0.99])).tolist() == pytest.approx([0.01, 0.3, 0.99])
    assert squash(np.array([0.0]))[0] == pytest.approx(0.01 / 1.01)
    assert squash(np.array([1.0]))[0] == pytest.approx(1.0 - 0.01 / 1.01)
    z = np.r_[-1e6, np.linspace(-5.0, 6.0, 20001), 1e6]
    s = squash(z)
    assert np.all(np.diff(s) > 0) and s.min() > 0 and s.max() < 1


def test_prompt_features_by_hand() -> None:
    f = dict(
        zip(rr.FEATURE_NAMES, prompt_features("Tom has $12. He spends half each day. How many?"), strict=True)
    )
    assert f["log_words"] == pytest.approx(math.log1p(10))
    assert f["log_numbers"] == pytest.approx(math.log1p(1))
    assert f["log_sentences"] == pytest.approx(math.log1p(3))
    assert (f["money"], f["fraction"], f["time_unit"], f["percent"], f["decimal"]) == (
        1.0,
        1.0,
        1.0,
        0.0,
        0.0,
    )
    assert f["log_each_per_every"] == pytest.approx(math.log1p(1))
    assert f["log_max_number"] == pytest.approx(math.log1p(12))


def test_solution_targets_of_a_gsm8k_answer_by_hand() -> None:
    t = dict(zip(rr.SOLUTION_TARGETS, solution_targets(NATALIA), strict=True))
    assert t["log_steps"] == pytest.approx(math.log(2))
    assert t["log1p_additions"] == pytest.approx(math.log1p(1))
    assert t["log1p_divisions"] == pytest.approx(math.log1p(1))
    assert t["log1p_subtractions"] == t["log1p_multiplications"] == 0.0
    assert t["log1p_abs_answer"] == pytest.approx(math.log1p(72))
    assert t["log1p_max_intermediate"] == pytest.approx(math.log1p(72))
    assert t["decimal_intermediate"] == 0.0


def _corpus(n: int = 40) -> tuple[list[str], list[str]]:
    qs, ans = [], []
    for i in range(n):
        k = 1 + i % 4
        qs.append(f"Sam has {i} apples and buys {k} more bags each day for {k} days. " * (1 + k % 2))
        steps = "\n".join(f"{i}+{j} = <<{i}+{j}={i + j}>>{i + j}" for j in range(k))
        ans.append(f"{steps}\n#### {i + k}")
    return qs, ans


def test_prior_tfidf_equals_scikit_learn_and_predicts_more_steps_for_longer_questions() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    qs, ans = _corpus()
    prior = fit_solution_prior(qs, ans, min_df=1)
    vec = TfidfVectorizer(analyzer=rr.ngrams, min_df=1, sublinear_tf=True).fit(qs)
    dense = vec.transform(qs[:3]).toarray()
    for i in range(3):
        idx, val = prior.tfidf_rows(qs[i])
        mine = np.zeros(len(prior.vocab))
        mine[idx] = val
        np.testing.assert_allclose(mine, dense[i], atol=1e-12)
    idx, val = prior.tfidf_rows("nothing known here")
    assert len(idx) == 0 and len(val) == 0
    pred = prior.predict(qs)[:, 0]
    true = np.array([solution_targets(a)[0] for a in ans])
    assert np.corrcoef(pred, true)[0, 1] > 0.5


def _write_gsm8k(path: Path) -> Path:
    qs, ans = _corpus()
    path.write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(qs, ans, strict=True))
    )
    return path


def test_gsm8k_prior_leaves_out_the_training_prompts(tmp_path: Path) -> None:
    f = _write_gsm8k(tmp_path / "train.jsonl")
    qs, _ = _corpus()
    assert gsm8k_prior([], f).n_questions == 40
    assert (
        gsm8k_prior(["  " + qs[0].replace(" ", "  "), qs[1]], f).n_questions == 38
    )  # whitespace-insensitive
    with pytest.raises(InputError, match="prior"):
        gsm8k_prior([], tmp_path / "missing.jsonl")


def _toy_data() -> tuple[list[str], np.ndarray]:
    hard = [f"hard question {i} with 3 numbers 5 and 7" for i in range(15)]
    easy = [f"easy question {i}" for i in range(15)]
    return hard + easy, np.array([0.1] * 15 + [0.9] * 15)


@pytest.mark.parametrize("prior", ["none", "gsm8k"])
def test_router_trains_saves_loads_and_scores(
    toy_encoder: ToyEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prior: str
) -> None:
    monkeypatch.setattr(rr, "gsm8k_prior_file", lambda: _write_gsm8k(tmp_path / "train.jsonl"))
    prompts, y = _toy_data()
    r = make_router("ridge", encoder="toy", prior=prior, select="all")
    r.fit(prompts, y)
    s = r.score(["hard new one", "easy new one"])
    assert s[0] < s[1] and np.all((s > 0) & (s < 1))
    r.save(tmp_path / "r")
    assert (tmp_path / "r" / rr.WEIGHTS_FILE).exists()
    assert (tmp_path / "r" / rr.PRIOR_FILE).exists() == (prior == "gsm8k")
    monkeypatch.setattr(rr, "gsm8k_prior_file", lambda: tmp_path / "gone.jsonl")  # scoring needs no data
    loaded = load_router(tmp_path / "r")
    probe = ["hard x 4", "easy y", "neither 12 and 1/2"]
    np.testing.assert_array_equal(loaded.score(probe), r.score(probe))
    assert isinstance(loaded, RidgeRouter) and isinstance(r, RidgeRouter)
    assert loaded.alpha == r.alpha and loaded.options.prior == prior


def test_untrained_and_bad_options(toy_encoder: ToyEncoder) -> None:
    with pytest.raises(InputError, match="not trained"):
        RidgeRouter(encoder="toy", prior="none").score(["a"])
    with pytest.raises(InputError, match="prior"):
        make_router("ridge", prior="mmlu")


def test_scores_from_given_embeddings_need_the_texts(toy_encoder: ToyEncoder) -> None:
    """The server passes its own encoder's vectors and the prompts (features, prior)."""
    prompts, y = _toy_data()
    r = make_router("ridge", encoder="toy", prior="none")
    assert r.scores_embeddings
    r.fit(prompts, y)
    probe = ["hard x 4", "easy y", "neither 12 and 1/2"]
    emb = toy_encoder.encode(probe)
    np.testing.assert_allclose(r.score_embeddings(emb, probe), r.score(probe), rtol=1e-8)  # cache: float32
    # the text matters beyond the vectors: same vectors, other text, other score
    assert r.score_embeddings(emb[:1], ["7 numbers 8 and 9 and 10 percent"])[0] != r.score(probe[:1])[0]
    with pytest.raises(InputError, match="texts"):
        r.score_embeddings(emb)
    with pytest.raises(ValueError):
        r.score_embeddings(emb, probe[:2])


def test_ridge_cg_equals_scikit_learn_ridge_with_intercept() -> None:
    from scipy.sparse import random as sparse_random
    from sklearn.linear_model import Ridge

    x = sparse_random(60, 25, density=0.2, random_state=1, format="coo")
    y = np.random.default_rng(1).normal(size=(60, 3))
    coef, intercept = rr.ridge_cg(x.row.astype(np.int64), x.col.astype(np.int64), x.data, x.shape, y, 3.0)
    ref = Ridge(alpha=3.0, solver="sparse_cg", tol=1e-12).fit(x.tocsr(), y)
    np.testing.assert_allclose(coef, ref.coef_.T, atol=1e-8)
    np.testing.assert_allclose(intercept, ref.intercept_, atol=1e-8)


def test_fitted_prior_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _write_gsm8k(tmp_path / "train.jsonl")
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(tmp_path / "cache"))
    first = gsm8k_prior(["unrelated"], f)
    rr._PRIOR_CACHE.clear()
    monkeypatch.setattr(rr, "fit_solution_prior", lambda *a, **k: pytest.fail("refitted"))
    again = gsm8k_prior(["something else"], f)  # same questions left: the disk copy
    np.testing.assert_array_equal(again.coef, first.coef)


def test_prompt_features_read_a_bounded_prefix() -> None:
    short = "Tom has 3 apples and buys 4 more each day. " * 20
    huge = short + "9 dollars 50 % " * 100_000
    assert prompt_features(huge) == prompt_features(huge[: rr.PREFIX_CHARS])
    assert rr.ngrams(huge) == rr.ngrams(huge[: rr.PREFIX_CHARS])


def _groups_data(signal: str) -> tuple[list[str], np.ndarray]:
    """Labels that follow a hand feature (how many numbers) or the toy embedding ('hard')."""
    rng = np.random.default_rng(5)
    prompts, y = [], []
    for i in range(80):
        k = int(rng.integers(0, 6))
        hard = bool(rng.integers(0, 2))
        prompts.append(f"{'hard' if hard else 'easy'} item {i} " + " ".join(str(7 * j) for j in range(k)))
        y.append(0.1 + 0.15 * k if signal == "numbers" else (0.2 if hard else 0.8))
    return prompts, np.clip(np.array(y) + rng.normal(0, 0.02, 80), 0, 1)


def test_feature_groups_are_chosen_by_leave_one_out_on_the_training_rows(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    prompts, y = _groups_data("numbers")
    r = make_router("ridge", encoder="toy", prior="none", select="cv")
    assert isinstance(r, RidgeRouter)
    r.fit(prompts, y)
    assert r.groups == ("words",) and r.group_errors["words"] < r.group_errors["embedding"]
    prompts, y = _groups_data("embedding")
    r.fit(prompts, y)
    assert not r.groups and set(r.group_errors) == {"embedding", "words"}
    r.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "router.json").read_text())["metadata"]
    assert meta["feature_groups"] == [] and "words" in meta["feature_group_loo_errors"]
    loaded = load_router(tmp_path / "r")
    assert isinstance(loaded, RidgeRouter) and loaded.groups == ()
    np.testing.assert_array_equal(loaded.score(prompts[:5]), r.score(prompts[:5]))


def test_a_router_saved_before_groups_were_chosen_uses_every_offered_group(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    prompts, y = _groups_data("numbers")
    r = make_router("ridge", encoder="toy", prior="none")
    assert (
        isinstance(r, RidgeRouter) and r.options.select == "all"
    )  # the default (docs/routers.md, "Plateau")
    r.fit(prompts, y)
    r.save(tmp_path / "r")
    w = dict(np.load(tmp_path / "r" / rr.WEIGHTS_FILE))
    del w["groups"]
    np.savez(tmp_path / "r" / rr.WEIGHTS_FILE, **w)
    loaded = load_router(tmp_path / "r")
    assert isinstance(loaded, RidgeRouter) and loaded.groups == ("words",)
    np.testing.assert_array_equal(loaded.score(prompts[:5]), r.score(prompts[:5]))


def test_shipped_prior_is_used_only_for_the_file_it_was_fitted_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _write_gsm8k(tmp_path / "train.jsonl")
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(tmp_path / "cache"))
    rr.write_shipped_prior(f)
    shipped = rr.shipped_prior(f)
    assert shipped is not None
    qs, ans = _corpus()
    fresh = fit_solution_prior(qs, ans)
    assert shipped.vocab == fresh.vocab
    np.testing.assert_allclose(shipped.predict(qs), fresh.predict(qs), rtol=1e-5, atol=1e-5)
    rr._PRIOR_CACHE.clear()
    monkeypatch.setattr(rr, "fit_solution_prior", lambda *a, **k: pytest.fail("refitted"))
    assert gsm8k_prior(["not a gsm8k question"], f) is not None  # the shipped one
    monkeypatch.undo()
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(tmp_path / "cache"))
    assert gsm8k_prior([qs[0]], f).n_questions == 39  # a training question: refitted without it
    f.write_text(f.read_text() + json.dumps({"question": "new q", "answer": "#### 1"}) + "\n")
    assert rr.shipped_prior(f) is None  # fitted on another file: never used


def test_the_shipped_prior_was_fitted_on_the_shipped_train_file() -> None:
    from ..conftest import DATA

    assert rr.shipped_prior(DATA / "gsm8k" / "train.jsonl") is not None, (
        "data/gsm8k/solution-prior.npz is stale: run write_shipped_prior()"
    )
