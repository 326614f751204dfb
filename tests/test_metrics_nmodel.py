"""N-model quality–cost metrics: hand-computed frontiers, area, cost at quality, oracle,
bootstrap; hypothesis invariants (the hull is concave and above every mix of single
models; the oracle dominates every choice)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firewall_routing.errors import MetricError
from firewall_routing.metrics.nmodel import (
    area_between,
    bootstrap_curve,
    frontier,
    oracle_choice,
    points_of,
    reference,
    single_models,
    summarize,
)

# 4 queries × 3 models of cost 1, 2, 4: model m solves the first m + 1 queries
SUCCESS = np.array([[1.0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
COST = np.tile([1.0, 2.0, 4.0], (4, 1))


def test_single_models_and_their_hull() -> None:
    c, q = single_models(SUCCESS, COST)
    assert c.tolist() == [1, 2, 4] and q.tolist() == [0.25, 0.5, 0.75]
    hull = frontier(c, q)
    assert hull.cost.tolist() == [1, 2, 4]  # slopes 0.25 then 0.125: concave, all vertices
    assert float(hull.at(3.0)) == pytest.approx(0.625)
    assert float(hull.at(9.0)) == pytest.approx(0.75)  # flat past the best model
    assert np.isnan(hull.at(0.5))  # no mix is cheaper than the cheapest model
    assert hull.cost_for(0.7) == pytest.approx(3.6)
    assert hull.cost_for(0.2) == 1.0
    assert hull.cost_for(0.8) == float("inf")


def test_frontier_drops_dominated_and_non_concave_points() -> None:
    f = frontier(np.array([1.0, 2, 3]), np.array([0.25, 0.2, 0.5]))
    assert f.cost.tolist() == [1, 3]  # (2, 0.2) is dominated by the cheaper (1, 0.25)
    f = frontier(np.array([1.0, 2, 3]), np.array([0.0, 0.1, 1.0]))
    assert f.cost.tolist() == [1, 3]  # (2, 0.1) lies below the chord: a mix beats it
    f = frontier(np.array([2.0, 1, 1]), np.array([0.5, 0.1, 0.3]))
    assert f.cost.tolist() == [1, 2] and f.quality.tolist() == [0.3, 0.5]  # same cost: the better


def test_oracle_is_the_cheapest_correct_model() -> None:
    ch = oracle_choice(SUCCESS, COST)
    assert ch.tolist() == [0, 1, 2, 0]  # nobody solves query 3: the cheapest
    c, q = points_of([ch], SUCCESS, COST)
    assert (c[0], q[0]) == (2.0, 0.75)


def test_area_and_cost_at_quality_by_hand() -> None:
    ref = reference(SUCCESS, COST)
    assert (ref.best, ref.cheapest, ref.lo, ref.hi, ref.gap) == (2, 0, 1.0, 4.0, 0.5)
    curve = frontier(np.array([1.0, 2.0]), np.array([0.25, 0.75]))  # cheapest + oracle
    # ∫ (curve − hull) over [1, 4] = 0.125 + 0.25, over a cost range of 3
    assert area_between(curve, ref.hull, 1.0, 4.0) == pytest.approx(0.375 / 3)
    s = summarize(curve, ref, grid=(0.0, 0.5))
    assert s.cost_at[1.0] == pytest.approx(2.0) and s.cost_fraction_at[1.0] == pytest.approx(0.5)
    assert s.cost_at[0.99] == pytest.approx(1 + (0.99 * 0.75 - 0.25) / 0.5)
    assert s.quality_at_cost[0.5] == pytest.approx(0.75)
    assert summarize(ref.hull, ref).area == 0.0


def test_missing_outcomes_are_an_error_not_a_failure() -> None:
    s = SUCCESS.copy()
    s[0, 1] = np.nan
    with pytest.raises(MetricError, match="missing outcomes"):
        single_models(s, COST)


def test_bootstrap_is_paired_and_single_models_sit_on_the_hull() -> None:
    rng = np.random.default_rng(0)
    success = (rng.uniform(size=(200, 3)) < [0.3, 0.5, 0.7]).astype(float)
    cost = np.tile([1.0, 2.0, 4.0], (200, 1))
    singles = [np.full(200, m) for m in range(3)]
    b = bootstrap_curve(singles, success, cost, draws=50, seed=3)
    assert np.allclose(b.area, 0.0) and np.allclose(b.above_hull, 0.0)
    oracle = bootstrap_curve(
        [np.zeros(200, int), oracle_choice(success, cost)], success, cost, draws=50, seed=3
    )
    again = bootstrap_curve(
        [np.zeros(200, int), oracle_choice(success, cost)], success, cost, draws=50, seed=3
    )
    assert np.array_equal(oracle.area, again.area)
    assert (oracle.area > 0).all() and oracle.excludes_hull()
    lo, hi = oracle.ci(oracle.area)
    assert lo <= float(np.median(oracle.area)) <= hi


success_st = arrays(
    np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=st.sampled_from([0.0, 1.0])
)


@settings(max_examples=80, deadline=None)
@given(success_st, st.data())
def test_hull_is_concave_and_above_every_mix(success: np.ndarray, data: st.DataObject) -> None:
    m = success.shape[1]
    costs = np.array(data.draw(st.lists(st.floats(0.1, 10), min_size=m, max_size=m)))
    cost = np.tile(costs, (len(success), 1))
    c, q = single_models(success, cost)
    hull = frontier(c, q)
    assert (np.diff(hull.cost) > 0).all() and (np.diff(hull.quality) > 0).all()
    slopes = np.diff(hull.quality) / np.diff(hull.cost)
    assert (np.diff(slopes) <= 1e-9).all()  # concave
    w = np.array(data.draw(st.lists(st.floats(0, 1), min_size=m, max_size=m)))
    if w.sum() > 0:
        w = w / w.sum()
        assert float(hull.at(w @ c)) >= w @ q - 1e-9
    ch = data.draw(st.lists(st.integers(0, m - 1), min_size=len(success), max_size=len(success)))
    oc, oq = points_of([oracle_choice(success, cost)], success, cost)
    cc, cq = points_of([np.array(ch)], success, cost)
    assert oq[0] >= cq[0] - 1e-12  # the oracle dominates every choice
    if cq[0] == oq[0]:
        assert oc[0] <= cc[0] + 1e-9
    assert oq[0] >= float(hull.at(max(oc[0], hull.cost[0]))) - 1e-9


def test_best_model_also_cheapest_leaves_area_undefined_and_measures_gain() -> None:
    success = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # model 0: 2/3 at cost 1
    cost = np.tile([1.0, 3.0], (3, 1))
    ref = reference(success, cost)
    assert (ref.best, ref.cheapest) == (0, 0)
    curve = frontier(*points_of([oracle_choice(success, cost), np.zeros(3, int)], success, cost))
    s = summarize(curve, ref)
    assert np.isnan(s.area) and s.as_dict()["area"] is None
    # at cost 1 only model 0 is affordable; the oracle (1.0 at cost 5/3) is past it
    assert s.gain == pytest.approx(0.0)
    assert s.cost_at[1.0] == pytest.approx(1.0)
