"""The reward scorer on a tiny BERT sequence classifier built here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers import ScoreJob, make_scorer
from firewall_routing.sampling.scorers.reward import RewardScorer

from .conftest import save, zero_


def tiny_classifier(
    tok: Any, path: Path, labels: int, bias: list[float] | None = None, seed: int = 0
) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=512,
    )
    cfg.num_labels = labels
    model = BertForSequenceClassification(cfg)
    if bias is not None:  # constant logits = bias: the mapping to quality is checked by hand
        zero_(model)
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor(bias))
    return save(model, tok, path)


JOBS = [
    ScoreJob("q1", "Say hi.", "Hi there!", None),
    ScoreJob("q2", "Add 2+2.", "It is four, as 2+2=4.", None),
]


def test_one_logit_is_a_reward_through_a_logistic(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tiny_classifier(tiny_tokenizer, tmp_path / "rm", 1, bias=[2.0])
    scores = make_scorer("reward", {"model": str(path)}).score_many(JOBS)
    assert [s.quality for s in scores] == [pytest.approx(1 / (1 + math.exp(-2.0)))] * 2
    centred = make_scorer("reward", {"model": str(path), "center": 2.0, "scale": 3.0}).score_many(JOBS)
    assert [s.quality for s in centred] == [pytest.approx(0.5)] * 2


def test_two_logits_give_the_probability_of_the_last_label(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tiny_classifier(tiny_tokenizer, tmp_path / "rm2", 2, bias=[0.0, math.log(3.0)])
    (s, _) = make_scorer("reward", {"model": str(path)}).score_many(JOBS)
    assert s.quality == pytest.approx(0.75) and s.passed


def test_batching_does_not_change_rewards(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tiny_classifier(tiny_tokenizer, tmp_path / "rm3", 1, seed=3)
    one = make_scorer("reward", {"model": str(path), "batch_size": 1})
    many = make_scorer("reward", {"model": str(path), "batch_size": 8})
    assert isinstance(one, RewardScorer) and isinstance(many, RewardScorer)
    a, b = one.rewards(JOBS), many.rewards(JOBS)
    assert a[0][0] != a[1][0]  # the random model tells the answers apart
    assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-5)
    assert one.cache_key() == many.cache_key()


def test_a_path_that_is_no_model_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot load reward model"):
        make_scorer("reward", {"model": str(tmp_path / "nothing")}).score_many(JOBS)
