"""The ``predicts_models`` part of the Router interface: fit on a success matrix with
missing entries, predict every model, route any pair by a label design, save the models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import (
    FitReport,
    ModelValidation,
    Router,
    check_success,
)


class ColumnMeans(Router):
    """Predicts each model's mean observed success on every prompt (NaN skipped)."""

    name = "column-means"
    trains = True
    predicts_models = True

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        y = check_success(prompts, success, models)
        self.means = np.nanmean(y, axis=0)
        self.model_names = tuple(models)
        return FitReport()

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        return np.tile(self.means, (len(prompts), 1))

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.pair_scores(prompts)


def fitted() -> ColumnMeans:
    r = ColumnMeans()
    success = np.array([[1.0, 0.0, np.nan], [0.0, 1.0, 0.5], [1.0, 1.0, np.nan]])
    r.fit_models(["a", "b", "c"], success, ["w", "m", "s"])
    return r


def test_missing_outcomes_are_skipped_not_failures() -> None:
    r = fitted()
    # column means over observed rows only: s is 0.5 (one row), not 0.5/3
    assert r.predict_models(["x"]) == pytest.approx(np.array([[2 / 3, 2 / 3, 0.5]]))


def test_pair_score_is_the_design_of_the_predicted_success() -> None:
    r = fitted()
    r.use_pair("w", "s", "soft-block")
    # soft-block = 1 − (1 − p_w)·p_s = 1 − (1/3)(1/2)
    assert r.score(["x"]) == pytest.approx([1 - (1 / 3) * 0.5])
    r.use_pair("m", "s", "weak-pass-rate")
    assert r.score(["x"]) == pytest.approx([2 / 3])


def test_pair_must_be_named_and_known() -> None:
    r = fitted()
    with pytest.raises(InputError, match="name the pair"):
        r.score(["x"])
    with pytest.raises(InputError, match="has not learned model 'gpt'"):
        r.use_pair("w", "gpt", "soft-block")


def test_model_names_survive_save_and_load(tmp_path: Path) -> None:
    r = fitted()
    r.use_pair("w", "s", "soft-block")
    r.save(tmp_path)
    doc = json.loads((tmp_path / "router.json").read_text())
    assert doc["metadata"]["model_names"] == ["w", "m", "s"]
    back = ColumnMeans.from_config(doc["config"], None, doc["metadata"])
    assert back.model_names == ("w", "m", "s")
    assert back.metadata.weak == "w"


def test_routers_without_the_ability_say_so() -> None:
    class Plain(Router):
        name = "plain"

        def score(self, prompts: Sequence[str]) -> FloatArray:
            return np.zeros(len(prompts))

    p = Plain()
    with pytest.raises(InputError, match="does not learn every model"):
        p.fit_models(["a"], np.ones((1, 1)), ["w"])
    with pytest.raises(InputError, match="does not predict"):
        p.predict_models(["a"])
    with pytest.raises(InputError, match="one pair only"):
        p.use_pair("w", "s", "soft-block")


@pytest.mark.parametrize(
    ("success", "models", "message"),
    [
        (np.array([[0.5, 1.5]]), ["w", "s"], r"\[0, 1\]"),
        (np.array([[0.5, np.nan]]), ["w", "s"], "model 's' has no outcome"),
        (np.array([[0.5, 0.5]]), ["w", "w"], "listed twice"),
    ],
)
def test_bad_success_matrices(success: FloatArray, models: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_success(["a"], success, models)
