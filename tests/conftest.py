"""Shared test set-up: an isolated embedding cache and a toy encoder for fast router tests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.outcomes import ModelOutcomes, OutcomeTable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["FIREWALL_ROUTING_CACHE"] = str(tmp_path_factory.mktemp("cache"))


class ToyEncoder:
    """8-d features: dimension 0 is +1 for prompts containing 'hard', −1 otherwise; the rest is
    a deterministic hash of the text. Lets tests build separable data without MiniLM."""

    model_id = "toy"
    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            h = hashlib.sha256(t.encode()).digest()
            out[i, 1:] = np.frombuffer(h[:7], dtype=np.uint8) / 255.0 - 0.5
            out[i, 0] = 1.0 if "hard" in t else -1.0
        return out


@pytest.fixture()
def toy_encoder(tmp_path: Path) -> ToyEncoder:
    from firewall_routing.embeddings import register_encoder

    enc = ToyEncoder()
    register_encoder("toy", enc, tmp_path / "toycache")
    return enc


def make_table(prompts: list[str], pr_w: np.ndarray, pr_s: np.ndarray) -> OutcomeTable:
    """A pass-rate-only outcome table (10 samples, no greedy, no margin) for router tests."""
    n = len(prompts)
    nan = np.full(n, np.nan)
    return OutcomeTable.from_pair(
        tuple(map(str, range(n))),
        tuple(prompts),
        ModelOutcomes("w", pr_w, np.full(n, 10), nan),
        ModelOutcomes("s", pr_s, np.full(n, 10), nan),
        nan,
        ("t",) * n,
    )


def write_gsm8k_bench(tmp_path: Path) -> Path:
    """Three GSM8K-style items for sampling tests; a fake strong model knows the answers."""
    path = tmp_path / "bench.jsonl"
    rows = [
        {
            "prompt": f"Question: {a} + {a}?\nAnswer: ",
            "grader": "gsm8k",
            "reference": f"#### {2 * a}",
            "id": f"q{a}",
        }
        for a in (1, 2, 3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class StaticStandIn:
    """Replaces model2vec's distillation (minutes of MiniLM passes over 30k tokens) by a
    random 8-d vector per token of the source's tokenizer, so the static encoder's caching,
    loading and serving run in milliseconds. Counts distillations."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: Path, pca_dims: int = 256) -> object:
        from model2vec import StaticModel
        from tokenizers import Tokenizer

        self.calls += 1
        tok = Tokenizer.from_file(str(source / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        vectors = np.random.default_rng(0).normal(size=(tok.get_vocab_size(), 8)).astype(np.float32)
        return StaticModel(vectors=vectors, tokenizer=tok, normalize=True)


@pytest.fixture()
def static_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StaticStandIn:
    """The stand-in distillation, in an empty cache of this test's own."""
    from firewall_routing import embeddings, static_encoder

    fake = StaticStandIn()
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(tmp_path / "static-cache"))
    monkeypatch.setattr(static_encoder, "distill_model", fake)
    monkeypatch.delitem(embeddings._SHARED, embeddings.STATIC_ENCODER, raising=False)
    return fake
