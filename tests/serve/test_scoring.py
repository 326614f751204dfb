"""Serving a ``ridge`` router through the ONNX encoder (vectors + texts, no torch, no cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing import embeddings
from firewall_routing.embeddings import DEFAULT_ENCODER, CachedEncoder
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import load_table
from firewall_routing.routers import load_router
from firewall_routing.routers.ridge import RidgeRouter
from firewall_routing.serve.onnx_encoder import OnnxEncoder
from firewall_routing.serve.scoring import EmbeddingScorer, make_scorer

ROOT = Path(__file__).resolve().parents[2]
PAIR = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")


def test_ridge_is_served_from_onnx_vectors_and_the_prompt_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained on the int8 ONNX MiniLM's vectors (so no torch model is loaded here), the
    saved router scores through ``make_scorer(.., 'onnx')`` exactly as ``score`` does, and
    the request path never touches the training-time encoder or its on-disk cache."""
    onnx = OnnxEncoder()
    monkeypatch.setitem(embeddings._SHARED, DEFAULT_ENCODER, CachedEncoder(onnx, tmp_path / "cache"))
    train = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR).take(range(50))
    router = RidgeRouter(prior="none")
    router.fit(train.prompts, compute_labels(train, "soft-block").values)
    router.save(tmp_path / "r")
    probe = list(load_table(ROOT / "data/routerdc/gsm8k-test.json", *PAIR).prompts[:12])
    expected = router.score(probe)

    def no_cache(*_: Any, **__: Any) -> Any:
        raise AssertionError("the server must not use the embedding cache or the torch encoder")

    monkeypatch.setattr("firewall_routing.routers.base.get_encoder", no_cache)
    served = load_router(tmp_path / "r")
    scorer = make_scorer(served, "onnx")
    assert isinstance(scorer, EmbeddingScorer) and scorer.backend == "onnx"
    got = scorer(probe)
    np.testing.assert_allclose(got, expected, atol=1e-6)  # the cache stores float32
    one = np.concatenate([scorer([p]) for p in probe[:3]])
    np.testing.assert_allclose(one, got[:3], atol=1e-5)  # one at a time, as requests come


def test_torch_backend_encodes_with_the_configured_threads() -> None:
    """The server's encoder_threads reaches the torch encoder, which otherwise embeds on one
    thread (the cache's setting) whatever the process was told."""
    import torch

    from firewall_routing.embeddings import SentenceEncoder
    from firewall_routing.routers import make_router

    before = torch.get_num_threads()
    try:
        scorer = make_scorer(make_router("knn"), "torch", threads=2)
        assert isinstance(scorer, EmbeddingScorer) and scorer.backend == "torch"
        enc = scorer._encoder
        assert isinstance(enc, SentenceEncoder) and enc.threads == 2
    finally:
        torch.set_num_threads(before)
