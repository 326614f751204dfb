"""The reference scorer: MiniLM cosine (default), ROUGE-L (hand-computed), BERTScore."""

from __future__ import annotations

import importlib.util

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers import ScoreJob, make_scorer

REF = "Paris is the capital of France."


def job(answer: str, ref: str | None = REF) -> ScoreJob:
    return ScoreJob("q1", "What is the capital of France?", answer, ref)


def test_cosine_ranks_a_paraphrase_above_an_unrelated_answer_and_empty_is_zero() -> None:
    sc = make_scorer("reference")
    same, para, other, empty = sc.score_many(
        [job(REF), job("The capital city of France is Paris."), job("Bananas are yellow fruit."), job("  ")]
    )
    assert same.quality == pytest.approx(1.0, abs=1e-5)
    assert same.quality is not None and para.quality is not None and other.quality is not None
    assert same.quality > para.quality > other.quality >= 0.0
    assert para.passed and not other.passed
    assert (empty.quality, empty.passed) == (0.0, False)


@pytest.mark.skipif(importlib.util.find_spec("rouge_score") is None, reason="[scorers] extra")
def test_rouge_l_by_hand() -> None:
    (s,) = make_scorer("reference", {"method": "rouge-l"}).score_many([job("a b c d", ref="a c d e")])
    assert s.quality == pytest.approx(0.75)  # LCS "a c d": P = R = 3/4


@pytest.mark.skipif(importlib.util.find_spec("bert_score") is None, reason="[scorers] extra")
def test_bertscore_over_minilm() -> None:
    same, other = make_scorer("reference", {"method": "bertscore"}).score_many(
        [job(REF), job("Bananas are yellow fruit.")]
    )
    assert same.quality == pytest.approx(1.0, abs=1e-4)
    assert other.quality is not None and same.quality is not None and 0.0 <= other.quality < same.quality


def test_missing_reference_names_the_item() -> None:
    with pytest.raises(InputError, match="item 'q1'"):
        make_scorer("reference").score_many([job("x", ref=None)])


def test_cache_key_ignores_threshold_but_not_method() -> None:
    a, b, c = (make_scorer("reference", o) for o in ({}, {"threshold": 0.9}, {"method": "rouge-l"}))
    assert a.cache_key() == b.cache_key() != c.cache_key()
    with pytest.raises(InputError, match="method"):
        make_scorer("reference", {"method": "bleu"})
