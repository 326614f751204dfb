"""The int8 ONNX MiniLM encoder: int8 arithmetic, same pipeline as sentence-transformers."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.serve.onnx_encoder import OnnxEncoder, encode_head, int8_model_path, load_tokenizer
from firewall_routing.serve.scoring import minilm_token_counter

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


def test_int8_model_is_built_once_with_integer_matmuls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx

    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(tmp_path))
    path = int8_model_path()
    assert path.parent == tmp_path / "onnx" and list(path.parent.iterdir()) == [path]  # no temp left
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops  # the shipped file has neither
    built = path.stat().st_mtime_ns
    assert int8_model_path() == path and path.stat().st_mtime_ns == built  # cached, not rebuilt


def test_unwritable_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from firewall_routing.errors import InputError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(blocker))
    with pytest.raises(InputError, match="FIREWALL_ROUTING_CACHE to a writable directory"):
        int8_model_path()


def test_similar_texts_are_closer(onnx: OnnxEncoder) -> None:
    a, b, c = onnx.encode(
        ["The cat sat on the mat.", "A cat is sitting on a mat.", "Quarterly revenue rose by 4 percent."]
    )
    assert a @ b > 0.7 > a @ c


def test_progress_bar_is_silent_when_stderr_is_not_a_terminal(
    onnx: OnnxEncoder, capfd: pytest.CaptureFixture[str]
) -> None:
    onnx.encode([f"question {i}" for i in range(30)], progress=True)
    assert capfd.readouterr().err == ""  # was one tqdm line per refresh (~800 for calibrate)


def long_texts() -> list[str]:
    rng = random.Random(0)
    words = ["what", "is", "the", "total", "of", "17*23=391,", "naïve", "café", "東京", "Janet's", "eggs?"]
    texts = [" ".join(rng.choice(words) for _ in range(n)) for n in (1, 50, 200, 255, 400, 5000, 15_000)]
    return [
        *texts,
        "a" * 5000 + " hello",  # a 100+ character word is one [UNK]: little text per token
        " " * 9000 + "hello there",  # whitespace makes no tokens
        "x" * 99 + " " + "y " * 600,
        "\n".join(["hi"] * 3000),
    ]


def test_encode_head_gives_the_full_texts_tokens_quickly() -> None:
    """Same ids as tokenizing everything (so scores are unchanged), without reading 1 MB."""
    tok = load_tokenizer(256)
    for text in long_texts():
        assert encode_head(tok, text, 256).ids == tok.encode(text).ids, len(text)
    huge = long_texts()[6] * 20
    assert len(huge) > 1_000_000
    start = time.perf_counter()
    encode_head(tok, huge, 256)
    assert time.perf_counter() - start < 0.5  # the full text took 2.2 s


def test_capped_token_counter_matches_exact_count() -> None:
    exact, capped = minilm_token_counter(), minilm_token_counter(cap=257)
    for text in long_texts():
        assert capped(text) == min(exact(text), 257)


def test_encoder_input_ids_and_embeddings_of_normal_prompts_are_unchanged(onnx: OnnxEncoder) -> None:
    from firewall_routing.calibration import read_prompts

    tok = load_tokenizer(256)
    prompts = read_prompts(ROOT / "data/routerdc/gsm8k-test.json")[:50] + long_texts()[:6]
    for text in prompts:
        assert onnx.token_ids(text) == tok.encode(text).ids
    assert np.allclose(onnx.encode(["hello " * 3000]), onnx.encode(["hello " * 254]), atol=1e-6)


@pytest.mark.slow
def test_onnx_matches_torch_decisions_on_gsm8k_test(minilm_router: Path) -> None:
    """Max score difference int8-ONNX vs torch, decision agreement, and routing quality.

    int8 arithmetic makes scores differ slightly, so a query sitting within that difference
    of a threshold can flip; what must not change is how well the scores route (APGR).
    """
    from firewall_routing.calibration import thresholds_for_fractions
    from firewall_routing.metrics import apgr, deferral_curve
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    table = load_table(
        ROOT / "data/routerdc/gsm8k-test.json",
        "HuggingFaceH4/zephyr-7b-beta",
        "cognitivecomputations/dolphin-2.9-llama3-8b",
    ).take(np.arange(300))
    prompts = list(table.prompts)
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
    quality = [
        apgr(deferral_curve(s, table.weak.pass_rate, table.strong.pass_rate)) for s in (s_torch, s_onnx)
    ]
    print(f"APGR torch {quality[0]:.2f}, onnx {quality[1]:.2f}")
    assert diff.max() < 0.06
    assert agree >= 0.95
    assert abs(quality[0] - quality[1]) < 2.0
