"""``backend: static``: the server scores routers trained on the static encoder with it, and
refuses at start-up any router/backend pair whose vectors differ."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from firewall_routing.calibration import calibrate, save_calibration
from firewall_routing.embeddings import STATIC_ENCODER
from firewall_routing.errors import InputError
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import load_table
from firewall_routing.routers import load_router
from firewall_routing.routers.ridge import RidgeRouter
from firewall_routing.serve.app import create_app
from firewall_routing.serve.config import config_from_mapping
from firewall_routing.serve.scoring import EmbeddingScorer, make_scorer

from ..conftest import StaticStandIn
from .conftest import API_KEY, FakeUpstream, fast_config

ROOT = Path(__file__).resolve().parents[2]
PAIR = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")


def _questions(name: str) -> list[str]:
    return [json.loads(line)["question"] for line in (ROOT / "data/gsm8k" / name).open(encoding="utf-8")]


def _static_router(out: Path, rows: int = 200) -> Path:
    """A ridge head on static vectors, trained on RouterDC's GSM8K train rows (soft-block)."""
    train = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR).take(range(rows))
    router = RidgeRouter(encoder=STATIC_ENCODER, prior="none")
    router.fit(train.prompts, compute_labels(train, "soft-block").values)
    router.save(out)
    return out


def test_backend_static_is_a_config_choice() -> None:
    base = {"router": "r", "weak": {"base_url": "http://w/v1", "model": "a"}}
    base["strong"] = {"base_url": "http://s/v1", "model": "b"}
    assert config_from_mapping(base | {"backend": "static"}, env={}).backend == "static"
    with pytest.raises(InputError, match=r"backend.*'onnx', 'torch' or 'static'"):
        config_from_mapping(base | {"backend": "fast"}, env={})


def test_minilm_router_with_backend_static_fails_at_start_up(tmp_path: Path, toy_encoder: Any) -> None:
    """A head trained on other vectors would score noise: refused, with the fix in one line."""
    r = RidgeRouter(encoder="toy", prior="none")
    r.fit([f"q {i} {'hard' * (i % 2)}" for i in range(20)], np.arange(20) % 2 == 0)
    r.save(tmp_path / "r")
    with pytest.raises(InputError) as e:
        create_app(fast_config(tmp_path / "r", backend="static"))
    msg = str(e.value)
    assert "trained on 'toy' embeddings" in msg and '"encoder": "static"' in msg and "\n" not in msg
    with pytest.raises(InputError, match="trained on 'all-MiniLM-L6-v2'"):
        make_scorer(RidgeRouter(), "static")


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_static_router_needs_backend_static(backend: Any) -> None:
    with pytest.raises(InputError, match="trained on the static encoder: set backend to static"):
        make_scorer(RidgeRouter(encoder=STATIC_ENCODER), backend)


@pytest.fixture()
def static_server(tmp_path: Path, static_standin: StaticStandIn) -> Iterator[tuple[TestClient, FakeUpstream]]:
    yield from _serve(tmp_path)


def _serve(tmp_path: Path) -> Iterator[tuple[TestClient, FakeUpstream]]:
    """The whole path a user takes: train on static vectors, calibrate on GSM8K train
    questions with the static backend, serve with ``backend: static`` at firewall@30%."""
    router_dir = _static_router(tmp_path / "router")
    calib = _questions("train.jsonl")[2000:4000]  # none of the 200 training rows' questions
    scorer = make_scorer(load_router(router_dir), "static")
    cal = calibrate(scorer(calib), router=str(router_dir), backend=scorer.backend)
    save_calibration(cal, router_dir)
    cfg = fast_config(router_dir, backend="static", default_model="firewall@30%", max_body_bytes=65536)
    upstream = FakeUpstream()
    app = create_app(cfg, transport=httpx.MockTransport(upstream.handler))
    with TestClient(app) as client:
        yield client, upstream


def _strong_fraction(client: TestClient, upstream: FakeUpstream, prompts: list[str]) -> float:
    for p in prompts:
        r = client.post(
            "/v1/chat/completions",
            json={"model": "firewall", "messages": [{"role": "user", "content": p}]},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
        assert r.status_code == 200, r.text
    sides = [req["side"] for req in upstream.requests]
    assert len(sides) == len(prompts)
    return sides.count("strong") / len(sides)


def test_serves_with_backend_static_at_the_calibrated_fraction(
    static_server: tuple[TestClient, FakeUpstream],
) -> None:
    client, upstream = static_server
    health = client.get("/healthz").json()
    assert health["backend"] == "static" and health["calibrated"] is True
    unseen = _questions("test.jsonl")  # 1319 GSM8K test questions, never trained or calibrated on
    frac = _strong_fraction(client, upstream, unseen)
    assert 0.27 <= frac <= 0.33, frac


@pytest.mark.slow
def test_real_static_backend_sends_30_percent_of_unseen_gsm8k_to_strong(tmp_path: Path) -> None:
    """The issue's check with the real distilled model (distils once: 1-3 minutes)."""
    for client, upstream in _serve(tmp_path):
        scorer = client.app.state.firewall.decider.scorer  # type: ignore[attr-defined]
        assert isinstance(scorer, EmbeddingScorer) and scorer.backend == "static"
        frac = _strong_fraction(client, upstream, _questions("test.jsonl"))
        print(f"static backend, firewall@30%: {100 * frac:.1f} % of 1319 unseen GSM8K prompts to strong")
        assert 0.27 <= frac <= 0.33, frac
