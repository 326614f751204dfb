"""``evaluate_models`` (the N-model table of ``evaluate``) and its text, on a hand-made table."""

from __future__ import annotations

import numpy as np
import pytest

from firewall_routing.experiment.evaluation import evaluate_models
from firewall_routing.experiment.report import format_models_evaluation
from firewall_routing.outcomes import ModelOutcomes, OutcomeTable


def _table() -> OutcomeTable:
    # 4 queries × 3 models of cost 1, 2, 4: model m solves the first m + 1 queries
    s = np.array([[1.0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    models = tuple(
        ModelOutcomes(n, s[:, j], np.ones(4, dtype=np.int64), s[:, j].copy())
        for j, n in enumerate(("a", "b", "c"))
    )
    return OutcomeTable(("1", "2", "3", "4"), ("p", "q", "r", "t"), models, ("x",) * 4)


def test_perfect_predictions_reach_the_oracle_and_blocking_sends_hopeless_rows_cheap() -> None:
    t = _table()
    cost = np.tile([1.0, 2.0, 4.0], (4, 1))
    pred = t.pass_rate_matrix()  # a router that knows the outcomes
    res = evaluate_models(pred, t, ["a", "b", "c"], cost, hopeless=0.5, n_boot=0)
    assert (res["best"], res["cheapest"]) == ("c", "a")
    assert res["oracle"] == pytest.approx({"cost": 2.0, "quality": 0.75})
    assert res["random"] == pytest.approx({"cost": 7 / 3, "quality": 0.5})
    assert res["hull_cost_at"]["1"] == pytest.approx(4.0)
    for policy in ("threshold", "utility"):
        # blocking sends row 4 (nobody solves it) to a: the oracle's point, 0.75 at cost 2
        assert res["policies"][policy]["cost_at"]["1"] == pytest.approx(2.0)
    # threshold: points (1, .25) and (2, .75) against the hull (1, .25)–(2, .5)–(4, .75):
    # ∫ (curve − hull) = 0.125 + 0.25 over a cost range of 3
    assert res["policies"]["threshold"]["area"] == pytest.approx(0.375 / 3)
    # utility also has (1.25, .5) at 4/3 < λ < 4 (row 2 to a, row 1 still to b), above that
    # chord: ∫ = 0.0234375 + 0.1640625 + 0.25
    assert res["policies"]["utility"]["area"] == pytest.approx(0.4375 / 3)
    res["costs"] = "toy.csv"
    text = format_models_evaluation(res)
    assert "costs: toy.csv" in text and "threshold" in text and "+0.1250" in text and "+0.1458" in text
