"""N-model policies: hand-computed choices for threshold, utility and blocking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firewall_routing.errors import InputError
from firewall_routing.routers.policies import (
    choose,
    default_knobs,
    sweep,
    threshold_choice,
    utility_choice,
)

COST = np.array([1.0, 5.0, 10.0])
PRED = np.array(
    [
        [0.9, 0.95, 0.99],  # easy: the cheapest clears any τ ≤ 0.9
        [0.3, 0.7, 0.8],  # contested: the mid model clears τ = 0.6
        [0.05, 0.1, 0.15],  # hopeless everywhere
        [0.2, 0.2, 0.2],  # a tie: the cheaper wins
    ]
)


def test_threshold_picks_the_cheapest_model_above_tau() -> None:
    assert threshold_choice(PRED, COST, 0.6).tolist() == [0, 1, 2, 0]
    assert threshold_choice(PRED, COST, 0.0).tolist() == [0, 0, 0, 0]
    # above every prediction: the model most likely to succeed (ties: the cheaper)
    assert threshold_choice(PRED, COST, 1.01).tolist() == [2, 2, 2, 0]


def test_blocking_sends_hopeless_queries_to_the_cheapest() -> None:
    assert threshold_choice(PRED, COST, 0.6, hopeless=0.25).tolist() == [0, 1, 0, 0]
    assert utility_choice(PRED, COST, 0.0, hopeless=0.25).tolist() == [2, 2, 0, 0]


def test_blocking_picks_the_likeliest_of_equally_cheap_models() -> None:
    pred = np.array([[0.05, 0.15, 0.1]])
    cost = np.array([7.0, 7.0, 8.0])
    assert threshold_choice(pred, cost, 0.5, hopeless=0.2).tolist() == [1]
    assert threshold_choice(pred, cost, 0.0).tolist() == [1]


def test_utility_trades_success_for_cost() -> None:
    # scaled costs 0.1, 0.5, 1. λ = 0.1: row 0 values 0.89, 0.90, 0.89 → model 1;
    # row 1: 0.29, 0.65, 0.7 → model 2; row 2: 0.04, 0.05, 0.05 → the cheaper of the tie, 1
    assert utility_choice(PRED, COST, 0.1).tolist() == [1, 2, 1, 0]
    # λ = 0.3: row 0: 0.87, 0.80, 0.69 → 0; row 1: 0.27, 0.55, 0.5 → 1; row 2: 0.02 ... → 0
    assert utility_choice(PRED, COST, 0.3).tolist() == [0, 1, 0, 0]
    assert utility_choice(PRED, COST, 10.0).tolist() == [0, 0, 0, 0]


def test_per_query_costs_and_dispatch() -> None:
    cost = np.tile(COST, (4, 1))
    cost[1] = [1.0, 20.0, 10.0]  # on row 1 the mid model is dearer than the top one
    assert choose("threshold", PRED, cost, 0.6).tolist() == [0, 2, 2, 0]
    with pytest.raises(InputError, match="unknown policy"):
        choose("best", PRED, cost, 0.6)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="costs ≥ 0"):
        choose("utility", PRED, -cost, 0.1)


def test_sweep_spans_cheapest_to_most_likely() -> None:
    for policy in ("threshold", "utility"):
        knobs, choices = sweep(policy, PRED, COST)  # type: ignore[arg-type]
        assert len(knobs) == len(choices)
        ends = {tuple(choices[0].tolist()), tuple(choices[-1].tolist())}
        assert (0, 0, 0, 0) in ends and (2, 2, 2, 0) in ends
    assert default_knobs("utility", PRED)[0] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (6, 3), elements=st.floats(0, 1)),
    arrays(np.float64, (3,), elements=st.floats(0.1, 10)),
    st.floats(0, 1),
)
def test_threshold_choice_clears_tau_whenever_some_model_does(
    pred: np.ndarray, cost: np.ndarray, tau: float
) -> None:
    ch = threshold_choice(pred, cost, tau)
    rows = np.arange(len(pred))
    ok = (pred >= tau).any(axis=1)
    assert (pred[rows, ch][ok] >= tau).all()
    # and no eligible model is cheaper than the chosen one
    cheaper = (pred >= tau) & (cost[None, :] < cost[ch][:, None])
    assert not cheaper[ok].any()
