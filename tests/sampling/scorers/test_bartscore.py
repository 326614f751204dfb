"""BARTScore on a tiny BART built here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers import ScoreJob, make_scorer
from firewall_routing.sampling.scorers.bartscore import BartScorer

from .conftest import save, zero_


def tiny_bart(tok: Any, path: Path, zero: bool = False, seed: int = 0) -> Path:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    cfg = BartConfig(
        vocab_size=tok.vocab_size,
        d_model=8,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        decoder_start_token_id=tok.cls_token_id,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(cfg)
    if zero:
        zero_(model)
    return save(model, tok, path)


JOBS = [
    ScoreJob("q1", "Say hi.", "Hi!", "Hello."),
    ScoreJob(
        "q2", "Explain rain in one sentence.", "Water vapour condenses into drops that fall.", "Clouds."
    ),
]


def test_uniform_model_scores_minus_log_vocab(tiny_tokenizer: Any, tmp_path: Path) -> None:
    """All weights zero → uniform next-token distribution → BARTScore = −log V exactly."""
    path = tiny_bart(tiny_tokenizer, tmp_path / "u", zero=True)
    sc = make_scorer("bartscore", {"model": str(path)})
    assert isinstance(sc, BartScorer)
    v = tiny_tokenizer.vocab_size
    assert sc.bartscores(JOBS) == pytest.approx([-math.log(v)] * 2, abs=1e-4)
    assert [s.quality for s in sc.score_many(JOBS)] == pytest.approx([1 / v] * 2, rel=1e-3)


def test_padding_does_not_change_scores_and_direction_matters(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tiny_bart(tiny_tokenizer, tmp_path / "r", seed=1)
    alone = make_scorer("bartscore", {"model": str(path), "batch_size": 1})
    batched = make_scorer("bartscore", {"model": str(path), "batch_size": 4})
    assert isinstance(alone, BartScorer) and isinstance(batched, BartScorer)
    a = alone.bartscores(JOBS)
    assert a == pytest.approx(batched.bartscores(JOBS), abs=1e-4)
    ref = make_scorer("bartscore", {"model": str(path), "direction": "reference-answer"})
    assert isinstance(ref, BartScorer) and ref.wants_reference() and not alone.wants_reference()
    assert ref.bartscores(JOBS) != pytest.approx(a, abs=1e-6)
    assert ref.cache_key() != alone.cache_key()


def test_reference_answer_direction_needs_a_reference(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tiny_bart(tiny_tokenizer, tmp_path / "n", zero=True)
    with pytest.raises(InputError, match="item 'q9'"):
        make_scorer("bartscore", {"model": str(path), "direction": "reference-answer"}).score_many(
            [ScoreJob("q9", "p", "a", None)]
        )
