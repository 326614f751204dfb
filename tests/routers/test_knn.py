"""``knn`` router: hand-computed neighbour means, tie order, weighting, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.routers import load_router, make_router
from firewall_routing.routers.knn import KNNRouter, knn_scores, unit_rows

from ..conftest import ToyEncoder

# a=(1,0) → 1.0, b=(0,1) → 0.0, c=(1,1) → 0.5, d=(−1,0) → 0.2
TRAIN = unit_rows(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
LABELS = np.array([1.0, 0.0, 0.5, 0.2])


def _one(query: list[float], k: int, weighted: bool = False) -> float:
    return float(knn_scores(unit_rows(np.array([query])), TRAIN, LABELS, k, weighted)[0])


def test_plain_mean_of_the_k_most_similar() -> None:
    # query (2, 0): cosines a 1, c 0.707, b 0, d −1 → neighbour order a, c, b, d
    assert _one([2.0, 0.0], 1) == pytest.approx(1.0)
    assert _one([2.0, 0.0], 2) == pytest.approx(0.75)
    assert _one([2.0, 0.0], 3) == pytest.approx(0.5)
    assert _one([2.0, 0.0], 4) == pytest.approx(0.425)
    assert _one([2.0, 0.0], 100) == pytest.approx(0.425)  # k > n: all training rows


def test_similarity_weighted_mean() -> None:
    c = 1 / math.sqrt(2)
    # weights a 1, c 0.707; b (cosine 0) and d (cosine −1, clipped) carry none
    assert _one([2.0, 0.0], 2, weighted=True) == pytest.approx((1.0 + c * 0.5) / (1.0 + c))
    assert _one([2.0, 0.0], 4, weighted=True) == pytest.approx((1.0 + c * 0.5) / (1.0 + c))
    assert _one([-1.0, 0.0], 3, weighted=True) == pytest.approx(0.2)  # only d has weight


def test_ties_follow_training_order_and_zero_weights_fall_back_to_the_mean() -> None:
    # query (0, −1): a and d both at cosine 0 (a first by order), c −0.707, b −1
    assert _one([0.0, -1.0], 1) == pytest.approx(1.0)
    assert _one([0.0, -1.0], 1, weighted=True) == pytest.approx(1.0)  # all weights 0
    assert _one([0.0, -1.0], 2, weighted=True) == pytest.approx(0.6)
    # an all-zero query is at cosine 0 to everything: the first k rows by training order
    assert _one([0.0, 0.0], 2) == pytest.approx(0.5)


def test_chunked_scoring_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    q, t, y = unit_rows(rng.normal(size=(9, 5))), unit_rows(rng.normal(size=(20, 5))), rng.random(20)
    whole = knn_scores(q, t, y, 4, True)
    monkeypatch.setattr("firewall_routing.routers.knn.CHUNK", 2)
    np.testing.assert_allclose(knn_scores(q, t, y, 4, True), whole, rtol=1e-12)


def test_router_fits_scores_and_round_trips(toy_encoder: ToyEncoder, tmp_path: Path) -> None:
    hard = [f"hard question {i}" for i in range(10)]
    easy = [f"easy question {i}" for i in range(10)]
    r = make_router("knn", k=3, encoder="toy")
    r.fit(hard + easy, np.array([0.0] * 10 + [1.0] * 10))
    s = r.score(["hard new one", "easy new one"])
    # toy dimension 0 (±1) dominates the cosine: all 3 neighbours share the query's class
    assert s.tolist() == [0.0, 1.0]
    r.save(tmp_path / "k")
    assert (tmp_path / "k" / "knn.npz").exists()
    loaded = load_router(tmp_path / "k")
    probe = ["hard x", "easy y", "neither"]
    np.testing.assert_array_equal(loaded.score(probe), r.score(probe))
    assert isinstance(loaded, KNNRouter) and loaded.options.k == 3 and loaded.encoder == "toy"


def test_untrained_and_bad_k(toy_encoder: ToyEncoder) -> None:
    with pytest.raises(InputError, match="not trained"):
        KNNRouter(encoder="toy").score(["a"])
    with pytest.raises(InputError, match="k"):
        make_router("knn", k=0)
