"""``reproduce``'s use of the router contract: the default router, seeds, up-front embedding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from firewall_routing.embeddings import DEFAULT_ENCODER
from firewall_routing.experiment.config import MAIN, ExperimentConfig
from firewall_routing.experiment.run import (
    design_seeds,
    embedding_encoders,
    load_eval_tables,
    train_and_score,
)
from firewall_routing.experiment.sweep import SweepConfig
from firewall_routing.labels import Approximations
from firewall_routing.outcomes import load_routerdc
from firewall_routing.routers import DEFAULT_ROUTER
from firewall_routing.routers.ridge import RidgeRouter

from ..conftest import DATA, ToyEncoder

WEAK, STRONG = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


def test_one_default_router_for_reproduce_and_sweep() -> None:
    assert DEFAULT_ROUTER == "ridge"
    assert ExperimentConfig().router == DEFAULT_ROUTER
    assert SweepConfig().router == DEFAULT_ROUTER


def test_deterministic_router_trains_once_seeded_router_once_per_seed() -> None:
    assert design_seeds(ExperimentConfig(seeds=3, router="ridge")) == 1
    assert design_seeds(ExperimentConfig(seeds=3, router="embedding-head")) == 3


def test_ridge_prompts_are_embedded_up_front() -> None:
    """Before ridge declared ``scores_embeddings`` a ridge run embedded nothing up front
    (no progress bar; the first fit embedded everything silently)."""
    assert embedding_encoders(ExperimentConfig(router="ridge", baselines=[])) == [DEFAULT_ENCODER]
    assert embedding_encoders(ExperimentConfig(router="random", baselines=[])) == []


def test_ridge_is_fitted_once_per_design_whatever_the_seed_count(
    toy_encoder: ToyEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[int] = []
    real_fit = RidgeRouter.fit

    def counting_fit(self: RidgeRouter, prompts: Any, labels: Any, **k: Any) -> Any:
        fits.append(len(prompts))
        return real_fit(self, prompts, labels, **k)

    monkeypatch.setattr(RidgeRouter, "fit", counting_fit)
    cfg = ExperimentConfig(
        router="ridge",
        router_options={"encoder": "toy", "prior": "none"},
        designs="soft-block,hard",
        datasets=["humaneval"],
        baselines=["random"],
        seeds=3,
        data_dir=DATA,
    )
    full = load_routerdc(DATA / "routerdc" / "gsm8k-train.json", WEAK, STRONG, "gsm8k-train")
    train, val = full.take(np.arange(48)), full.take(np.arange(48, 64))
    tables = {k: t.take(np.arange(20)) for k, t in load_eval_tables(cfg, DATA).items()}
    runs, _, _ = train_and_score(cfg, train, val, tables, Approximations(), None, None)
    by = {r.name: r for r in runs}
    assert fits == [48, 48]  # soft-block and hard, one fit each
    assert len(by["soft-block"].scores[f"{MAIN}/humaneval"]) == 1 and len(by["soft-block"].training) == 1
    assert len(by["random"].scores[f"{MAIN}/humaneval"]) == 3  # random takes a seed
