"""The int8 ONNX MiniLM encoder: same pipeline as sentence-transformers, close embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.serve.onnx_encoder import OnnxEncoder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def onnx() -> OnnxEncoder:
    return OnnxEncoder()


def test_unit_vectors_in_input_order(onnx: OnnxEncoder) -> None:
    texts = ["How many apples are left?", "a " * 400, "Translate 'cat' to French."]
    emb = onnx.encode(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float64
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0)
    alone = np.vstack([onnx.encode([t]) for t in texts])  # batching/padding changes nothing
    assert np.allclose(emb, alone, atol=1e-5)
    assert onnx.encode([]).shape == (0, 384)


def test_similar_texts_are_closer(onnx: OnnxEncoder) -> None:
    a, b, c = onnx.encode(
        ["The cat sat on the mat.", "A cat is sitting on a mat.", "Quarterly revenue rose by 4 percent."]
    )
    assert a @ b > 0.7 > a @ c


@pytest.mark.slow
def test_onnx_matches_torch_decisions_on_gsm8k_test(minilm_router: Path) -> None:
    """Max score difference int8-ONNX vs torch, and decision agreement at calibrated points.

    The int8 weights make scores differ slightly, so a query sitting within that difference
    of a threshold can flip; the test bounds both and prints them for the report.
    """
    from firewall_routing.calibration import thresholds_for_fractions
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    data = json.loads((ROOT / "data/routerdc/gsm8k-test.json").read_text())
    prompts = [row["question"] for row in data[:300]]
    router = load_router(minilm_router)
    s_torch = make_scorer(router, "torch")(prompts)
    s_onnx = make_scorer(router, "onnx")(prompts)
    diff = np.abs(s_torch - s_onnx)
    thresholds = thresholds_for_fractions(s_torch, np.arange(1, 10) / 10)
    agree = np.mean([np.mean((s_torch < t) == (s_onnx < t)) for t in thresholds])
    print(
        f"\nONNX vs torch on {len(prompts)} GSM8K test prompts: max |Δscore| = "
        f"{diff.max():.4f}, mean {diff.mean():.4f}, decision agreement {100 * agree:.2f} %"
    )
    assert diff.max() < 0.05
    assert agree >= 0.98
