"""``irt`` router: hand-computed likelihood and gradient, recovery of simulated abilities and
items, probabilities in [0, 1], a table fit that routes a pair, placing a new model, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firewall_routing.errors import InputError
from firewall_routing.outcomes import ModelOutcomes, OutcomeTable
from firewall_routing.routers import load_router, make_router
from firewall_routing.routers.irt import (
    IRTRouter,
    binomial_loglik,
    fit_ability,
    fit_irt,
    knn_items,
    multi_loo_ridge,
    neg_log_posterior,
    sigmoid,
)
from firewall_routing.routers.ridge import loo_alpha, ridge_solve

from ..conftest import ToyEncoder


def test_neg_log_posterior_by_hand() -> None:
    # one item, one model: z = a·θ + d = 1·0 + 0 = 0, σ = ½; 3 of 4 samples right
    a, d, t = np.array([[1.0]]), np.array([0.0]), np.array([[0.0]])
    v, ga, gd, gt = neg_log_posterior(a, d, t, np.array([[3.0]]), np.array([[4.0]]), item_prior=1.0)
    # −[3 log ½ + 1 log ½] + ½(a² + d²)/1² + ½θ² = 4 log 2 + ½
    assert v == pytest.approx(4 * math.log(2) + 0.5)
    # ∂/∂z = nσ − k = 2 − 3 = −1;  ∂a = −1·θ + a = 1;  ∂d = −1 + d = −1;  ∂θ = −1·a + θ = −1
    assert (ga[0, 0], gd[0], gt[0, 0]) == pytest.approx((1.0, -1.0, -1.0))


def test_missing_outcomes_contribute_nothing() -> None:
    a, d, t = np.array([[0.7]]), np.array([0.3]), np.array([[1.2], [-0.4]])
    k, n = np.array([[2.0, 0.0]]), np.array([[5.0, 0.0]])
    both = neg_log_posterior(a, d, t, k, n, 2.0)
    only = neg_log_posterior(a, d, t[:1], k[:, :1], n[:, :1], 2.0)
    # the second model adds only its prior ½θ² and its own prior gradient
    assert both[0] == pytest.approx(only[0] + 0.5 * 0.4**2)
    assert both[3][1, 0] == pytest.approx(-0.4)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    a, d, t = rng.normal(size=(5, 2)), rng.normal(size=5), rng.normal(size=(3, 2))
    n = rng.integers(0, 6, size=(5, 3)).astype(float)
    k = np.floor(n * rng.random((5, 3)))
    _, ga, gd, gt = neg_log_posterior(a, d, t, k, n, 1.5)
    eps = 1e-6
    for arr, grad in ((a, ga), (d, gd), (t, gt)):
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = neg_log_posterior(a, d, t, k, n, 1.5)[0]
            arr[idx] = old - eps
            down = neg_log_posterior(a, d, t, k, n, 1.5)[0]
            arr[idx] = old
            assert grad[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-6)


def _simulate(n_items: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = np.linspace(-1.5, 1.5, 6)
    a = rng.uniform(0.5, 2.0, n_items)
    d = rng.normal(0, 1.5, n_items)
    n = np.full((n_items, 6), 10.0)
    k = rng.binomial(10, sigmoid(np.outer(a, theta) + d[:, None])).astype(float)
    return k, n, d, theta


def test_fit_recovers_simulated_abilities_and_difficulties() -> None:
    k, n, d_true, _ = _simulate()
    a, d, theta = fit_irt(k, n, dims=1)
    assert np.all(np.diff(theta[:, 0]) > 0)  # abilities in the simulated order
    assert np.corrcoef(d, d_true)[0, 1] > 0.9
    assert a.mean() > 0


def test_fit_ability_places_a_new_model_from_few_labels() -> None:
    rng = np.random.default_rng(2)
    a, d = rng.uniform(0.5, 2.0, (60, 1)), rng.normal(0, 1.5, 60)
    thetas = []
    for true in (-1.0, 1.0):
        k = rng.binomial(1, sigmoid(a[:, 0] * true + d)).astype(float)
        thetas.append(fit_ability(a, d, k, np.ones(60))[0])
    assert thetas[0] < 0 < thetas[1]
    # no labels: the prior mean
    assert fit_ability(a, d, np.zeros(60), np.zeros(60))[0] == pytest.approx(0.0)


def test_multi_loo_ridge_equals_one_column_at_a_time() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 5))
    y = np.stack([x @ rng.normal(size=5) + rng.normal(size=40), rng.normal(size=40)], axis=1)
    alphas = (0.1, 1.0, 10.0, 100.0)
    coef, intercept, chosen, _, _ = multi_loo_ridge(x, y, alphas)
    for j in range(2):
        a = loo_alpha(x, y[:, j], alphas)
        c, b = ridge_solve(x, y[:, j], a)
        assert chosen[j] == a
        np.testing.assert_allclose(coef[:, j], c, atol=1e-9)
        assert intercept[j] == pytest.approx(b)


@settings(max_examples=60, deadline=None)
@given(
    items=arrays(np.float64, (7, 3), elements=st.floats(-50, 50)),
    theta=arrays(np.float64, (4, 2), elements=st.floats(-50, 50)),
    var=arrays(np.float64, 3, elements=st.floats(0, 1e6)),
    uncertainty=st.booleans(),
)
def test_probabilities_lie_in_the_unit_interval(
    items: np.ndarray, theta: np.ndarray, var: np.ndarray, uncertainty: bool
) -> None:
    r = IRTRouter(dims=2, uncertainty=uncertainty)
    r._resid_var = var
    p = r._probabilities(items, theta)
    assert p.shape == (7, 4)
    assert np.all((p >= 0) & (p <= 1)) and not np.isnan(p).any()


def _table(n: int = 60) -> OutcomeTable:
    """'hard' prompts: only the strongest model solves them; the rest: everyone does."""
    prompts = [f"{'hard' if i % 2 else 'easy'} question {i}" for i in range(n)]
    hard = np.array([i % 2 == 1 for i in range(n)])
    nan = np.full(n, np.nan)
    rates = {
        "small": np.where(hard, 0.0, 0.9),
        "mid": np.where(hard, 0.1, 1.0),
        "big": np.where(hard, 0.8, 1.0),
    }
    models = tuple(ModelOutcomes(m, r, np.full(n, 10), nan) for m, r in rates.items())
    return OutcomeTable(tuple(map(str, range(n))), tuple(prompts), models, ("t",) * n).pair("small", "big")


def test_table_fit_routes_the_pair_and_round_trips(toy_encoder: ToyEncoder, tmp_path: Path) -> None:
    r = make_router("irt", encoder="toy", features=False, prior="none")
    r.fit_table(_table())
    assert r.model_names == ("small", "mid", "big") and r.metadata.weak == "small"
    test = ["hard one", "easy one"]
    p = r.predict_models(test)
    assert p[0, 2] > p[0, 0] and p[1, 0] > p[0, 0]  # big solves hard ones; easy ones are easy
    s = r.score(test)
    assert s[0] < s[1]  # hard goes strong first
    r.save(tmp_path / "irt")
    back = load_router(tmp_path / "irt")
    np.testing.assert_allclose(back.score(test), s)
    np.testing.assert_allclose(back.predict_models(test), p)
    back.use_pair("mid", "big", "soft-block")
    assert back.score(test).shape == (2,)


def test_add_model_places_a_new_model_between_known_ones(toy_encoder: ToyEncoder, tmp_path: Path) -> None:
    r = make_router("irt", encoder="toy", features=False, prior="none")
    assert isinstance(r, IRTRouter)
    table = _table()
    r.fit_table(table)
    hard = np.array(["hard" in p for p in table.prompts])
    few = slice(0, 10)
    theta = r.add_model("new", table.prompts[few], np.where(hard, 0.5, 1.0)[few], np.full(10, 10.0))
    small, big = r.theta[0, 0], r.theta[2, 0]
    assert small < theta[0] < big + 1e-9 or big < theta[0] < small
    assert r.predict_models(["hard x"]).shape == (1, 4)
    r.save(tmp_path / "r")
    assert load_router(tmp_path / "r").model_names[-1] == "new"
    with pytest.raises(InputError, match="already known"):
        r.add_model("new", ["x"], np.array([1.0]))


def test_needs_a_table_not_labels(toy_encoder: ToyEncoder) -> None:
    r = make_router("irt", encoder="toy", prior="none")
    with pytest.raises(InputError, match="outcome table"):
        r.fit(["a"], np.array([0.5]))
    with pytest.raises(InputError, match="not trained"):
        r.score(["a"])
    with pytest.raises(InputError, match="at least 3"):
        r.fit_models(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]), ["m1", "m2"])


def test_fit_models_treats_nan_as_missing(toy_encoder: ToyEncoder) -> None:
    t = _table()
    y = t.pass_rate_matrix()
    y[::3, 1] = np.nan
    r = make_router("irt", encoder="toy", features=False, prior="none")
    r.fit_models(t.prompts, y, t.model_names)
    p = r.predict_models(["hard q"])
    assert np.all((p >= 0) & (p <= 1))


def test_knn_items_leave_one_out_by_hand() -> None:
    e = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    items = np.array([[1.0], [2.0], [4.0]])
    # row 0's nearest other row is row 1 (cos 0.8), row 2's is row 1 (cos 0.6)
    np.testing.assert_allclose(knn_items(e, e, items, 1, loo=True)[:, 0], [2.0, 1.0, 2.0])
    np.testing.assert_allclose(knn_items(e[:1], e, items, 2)[:, 0], [1.5])


def test_binomial_loglik_by_hand() -> None:
    assert binomial_loglik(np.array([[0.5, 0.9]]), np.array([[3.0, 0.0]]), np.array([[4.0, 0.0]])) == (
        pytest.approx(4 * math.log(0.5))
    )


@pytest.mark.parametrize("head", ["ridge", "knn", "auto"])
def test_every_item_head_routes_and_round_trips(toy_encoder: ToyEncoder, tmp_path: Path, head: str) -> None:
    r = make_router("irt", encoder="toy", features=False, prior="none", head=head)
    assert isinstance(r, IRTRouter)
    r.fit_table(_table())
    assert (r.head == "ridge") == (head == "ridge") or head == "auto"
    assert set(r.head_loglik) == (
        {"ridge"}
        if head == "ridge"
        else {"knn25", "knn50", "knn100"} | ({"ridge"} if head == "auto" else set())
    )
    s = r.score(["hard one", "easy one"])
    assert s[0] < s[1]
    r.save(tmp_path / "r")
    np.testing.assert_allclose(load_router(tmp_path / "r").score(["hard one", "easy one"]), s)
