"""Tiny transformers models built in the test (no downloads): the shipped MiniLM's tokenizer
with a few-thousand-parameter model behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from firewall_routing.minilm import DEFAULT_ENCODER, resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_ENCODER))


def zero_(model: Any) -> None:
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.zero_()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    return minilm_tokenizer()


def save(model: Any, tok: Any, path: Path) -> Path:
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
