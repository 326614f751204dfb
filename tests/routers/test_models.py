"""Routers that predict every model's success (``predicts_models``): ``knn``, ``ridge``,
``mf`` and ``embedding-head`` trained on a rows × models matrix with missing entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firewall_routing.routers import load_router, make_router
from firewall_routing.routers.knn import knn_matrix, unit_rows
from firewall_routing.routers.ridge import ALPHAS, loo_alpha, ridge_columns, ridge_solve

from ..conftest import ToyEncoder

TRAIN = unit_rows(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
# model 0 has every outcome; model 1 lacks row a (NaN): never read as a failure
SUCCESS = np.array([[1.0, np.nan], [0.0, 1.0], [0.5, 0.0], [0.2, 1.0]])


def test_knn_matrix_skips_missing_neighbours() -> None:
    q = unit_rows(np.array([[2.0, 0.0]]))  # neighbour order a, c, b, d
    out = knn_matrix(q, TRAIN, SUCCESS, 2, weighted=False)
    # model 0: mean(1, 0.5); model 1: a is missing, so only c counts → 0
    assert out[0] == pytest.approx([0.75, 0.0])
    out = knn_matrix(q, TRAIN, SUCCESS, 3, weighted=False)
    assert out[0] == pytest.approx([0.5, 0.5])  # model 1: mean of c (0) and b (1)


def test_knn_matrix_falls_back_to_the_model_mean_without_observed_neighbours() -> None:
    q = unit_rows(np.array([[2.0, 0.0]]))
    out = knn_matrix(q, TRAIN, SUCCESS, 1, weighted=False)
    # model 1's only neighbour (a) is missing: its mean over observed rows, 2/3
    assert out[0] == pytest.approx([1.0, 2 / 3])


def test_knn_matrix_column_equals_the_single_label_knn() -> None:
    from firewall_routing.routers.knn import knn_scores

    rng = np.random.default_rng(0)
    train, query = unit_rows(rng.normal(size=(30, 4))), unit_rows(rng.normal(size=(7, 4)))
    y = rng.uniform(size=(30, 3))
    for weighted in (False, True):
        out = knn_matrix(query, train, y, 5, weighted)
        for j in range(3):
            assert out[:, j] == pytest.approx(knn_scores(query, train, y[:, j], 5, weighted))


def test_ridge_columns_match_the_single_ridge_per_column() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5))
    y = np.clip(x[:, :3] * 0.2 + 0.5 + rng.normal(scale=0.1, size=(40, 3)), 0, 1)
    y[::4, 2] = np.nan  # model 2 observed on 30 rows only
    coef, intercept, alphas = ridge_columns(x, y)
    for j in range(3):
        rows = ~np.isnan(y[:, j])
        a = loo_alpha(x[rows], y[rows, j], ALPHAS)
        c, b = ridge_solve(x[rows], y[rows, j], a)
        assert alphas[j] == a
        assert coef[:, j] == pytest.approx(c, abs=1e-9)
        assert intercept[j] == pytest.approx(b, abs=1e-9)


def _data() -> tuple[list[str], np.ndarray]:
    """'hard' prompts: model 0 fails, model 1 succeeds; easy ones: both succeed; model 2 is
    missing on every third row and otherwise the opposite of model 0."""
    prompts = [f"{'hard' if i % 2 else 'easy'} question {i}" for i in range(60)]
    hard = np.array([i % 2 == 1 for i in range(60)], dtype=float)
    y = np.stack([1 - hard, np.ones(60), hard], axis=1)
    y[::3, 2] = np.nan
    return prompts, y


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("knn", {"k": 5}),
        ("ridge", {"features": False, "prior": "none"}),
        ("mf", {"epochs": 60, "lr": 1e-2, "dim": 8, "noise": 0.0}),
        ("embedding-head", {"epochs": 60, "hidden": 8, "lr": 1e-2, "weight_decay": 0.0}),
    ],
)
def test_routers_learn_every_model_and_survive_save_load(
    name: str, options: dict[str, object], toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    prompts, y = _data()
    r = make_router(name, encoder="toy", **options)
    assert r.predicts_models
    r.fit_models(prompts, y, ["w", "s", "x"])
    assert r.model_names == ("w", "s", "x")
    test = ["hard new one", "easy new one"]
    pred = r.predict_models(test)
    assert pred.shape == (2, 3)
    assert ((pred >= 0) & (pred <= 1)).all()
    assert pred[0, 0] < pred[1, 0]  # model 0 is worse on hard prompts
    assert pred[0, 2] > pred[1, 2]  # model 2 learned from its observed rows only
    r.use_pair("w", "s", "soft-block")
    scores = r.score(test)
    assert scores == pytest.approx(1 - (1 - pred[:, 0]) * pred[:, 1])
    r.save(tmp_path / name)
    back = load_router(tmp_path / name)
    assert back.model_names == ("w", "s", "x")
    assert back.predict_models(test) == pytest.approx(pred, abs=1e-6)
    assert back.score(test) == pytest.approx(scores, abs=1e-6)


def test_mf_keeps_validation_epoch_by_bce(toy_encoder: ToyEncoder) -> None:
    from firewall_routing.routers.base import ModelValidation

    prompts, y = _data()
    r = make_router("mf", encoder="toy", epochs=5, dim=4)
    rep = r.fit_models(prompts[:40], y[:40], ["w", "s", "x"], val=ModelValidation(prompts[40:], y[40:]))
    bces = [e["val_bce"] for e in rep.epochs]
    assert rep.best_epoch == int(np.argmin(bces)) + 1


def test_pair_training_is_unchanged(toy_encoder: ToyEncoder) -> None:
    """A router trained on one label (the two-model path) still scores as before."""
    prompts, y = _data()
    r = make_router("ridge", encoder="toy", features=False, prior="none")
    r.fit(prompts, y[:, 0])
    assert r.model_names == ()
    assert r.score(["hard new one"])[0] < r.score(["easy new one"])[0]
