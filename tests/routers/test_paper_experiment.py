"""``reproduce --paper`` machinery on a tiny encoder: identical-label reuse, resume, baselines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.experiment.config import MAIN, ExperimentConfig, paper_config
from firewall_routing.experiment.run import load_eval_tables, score_tables, train_and_score
from firewall_routing.labels import Approximations, compute_labels
from firewall_routing.outcomes import FloatArray, load_routerdc
from firewall_routing.routers import load_router
from firewall_routing.routers.base import training_hash
from firewall_routing.routers.encoder import EncoderRouter

from ..conftest import DATA, ToyEncoder
from .test_encoder import build_tiny_bert

WEAK, STRONG = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def _setup(tiny: str, **fields: Any) -> tuple[ExperimentConfig, Any, Any, dict[str, Any]]:
    cfg = paper_config(
        {"backbone": tiny, "epochs": 1, "max_length": 16, "progress": False},
        designs="soft-block,hybrid-prob",
        datasets=["humaneval"],
        baselines=["random", "mf", "oracle"],
        baseline_options={"mf": {"encoder": "toy", "epochs": 3}},
        data_dir=DATA,
        **fields,
    )
    full = load_routerdc(DATA / "routerdc" / "gsm8k-train.json", WEAK, STRONG, "gsm8k-train")
    train, val = full.take(np.arange(48)), full.take(np.arange(48, 64))
    tables = {k: t.take(np.arange(20)) for k, t in load_eval_tables(cfg, DATA).items()}
    return cfg, train, val, tables


def test_paper_config_uses_the_fine_tuned_encoder() -> None:
    cfg = paper_config({"epochs": 2})
    assert cfg.router == "encoder" and cfg.paper and cfg.seeds == 1
    assert cfg.router_options["epochs"] == 2 and cfg.router_options["threads"] == 1
    assert paper_config(seeds=3).seeds == 3


def test_identical_labels_train_once_and_resume_trains_nothing(
    tiny: str, toy_encoder: ToyEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[float] = []
    real_fit = EncoderRouter.fit

    def counting_fit(self: EncoderRouter, prompts: Any, labels: Any, **k: Any) -> Any:
        fits.append(float(np.mean(labels)))
        return real_fit(self, prompts, labels, **k)

    monkeypatch.setattr(EncoderRouter, "fit", counting_fit)
    cfg, train, val, tables = _setup(tiny, resume=True)
    runs, notes, _ = train_and_score(
        cfg, train, val, tables, Approximations(), tmp_path / "r", tmp_path / "s"
    )
    assert len(fits) == 1  # hybrid-prob = soft-block on 0/1 correctness: reused
    assert any("identical" in n and "soft-block" in n for n in notes["hybrid-prob"])
    by = {r.name: r for r in runs}
    key = f"{MAIN}/humaneval"
    np.testing.assert_array_equal(by["hybrid-prob"].scores[key][0], by["soft-block"].scores[key][0])
    assert by["mf"].training and by["mf"].training[0].best_epoch is not None  # trained on battles
    assert (tmp_path / "r" / "hybrid-prob" / "router.json").exists()  # linked to soft-block's
    meta = load_router(tmp_path / "r" / "soft-block").metadata
    assert (meta.label_design, meta.weak, meta.strong, meta.train_rows) == ("soft-block", WEAK, STRONG, 48)
    assert meta.train_sha256 == training_hash(
        train.prompts, compute_labels(train, "soft-block", Approximations()).values
    )

    again, _, _ = train_and_score(cfg, train, val, tables, Approximations(), None, tmp_path / "s")
    assert len(fits) == 1, "resume must reuse the stored scores"
    np.testing.assert_array_equal(
        {r.name: r for r in again}["soft-block"].scores[key][0], by["soft-block"].scores[key][0]
    )

    changed = cfg.model_copy(update={"router_options": cfg.router_options | {"lr": 1e-3}})
    train_and_score(changed, train, val, tables, Approximations(), None, tmp_path / "s")
    assert len(fits) == 2 and fits[0] == fits[1], "other settings must not reuse old scores"


def test_prompt_only_routers_score_each_distinct_prompt_once(
    toy_encoder: ToyEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firewall_routing.routers import make_router

    cfg = ExperimentConfig(datasets=["humaneval"], data_dir=DATA)
    tables = load_eval_tables(cfg, DATA)  # main and gen pairs share the 164 prompts
    seen: list[int] = []
    r = make_router("random", seed=0)
    real = r.score

    def spy(prompts: Sequence[str]) -> FloatArray:
        seen.append(len(prompts))
        return real(prompts)

    monkeypatch.setattr(r, "score", spy)
    out = score_tables(r, tables)
    assert seen == [164]
    np.testing.assert_array_equal(out["main/humaneval"], out["gen/humaneval"])
