"""``encoder: static`` on the routers over frozen embeddings (ridge, knn, embedding-head, mf):
trained, saved, loaded and scored on the static vectors, never on MiniLM's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.embeddings import STATIC_ENCODER
from firewall_routing.errors import InputError
from firewall_routing.routers import load_router, make_router, router_help

from ..conftest import StaticStandIn

FAST: dict[str, dict[str, Any]] = {
    "ridge": {"prior": "none"},
    "knn": {"k": 3},
    "embedding-head": {"epochs": 2},
    "mf": {"epochs": 2},
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_trained_saved_and_scored_on_static_vectors(
    name: str, static_standin: StaticStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firewall_routing.embeddings import SentenceEncoder

    def no_minilm(*_: Any, **__: Any) -> Any:
        raise AssertionError("a static router must never load MiniLM")

    monkeypatch.setattr(SentenceEncoder, "encode", no_minilm)
    prompts = [f"{'hard' if i % 2 else 'easy'} question number {i}" for i in range(24)]
    labels = np.array([0.0 if i % 2 else 1.0 for i in range(24)])
    r = make_router(name, encoder=STATIC_ENCODER, **FAST[name])
    assert r.encoder == STATIC_ENCODER
    r.fit(prompts, labels)
    r.save(tmp_path / "r")
    assert json.loads((tmp_path / "r" / "router.json").read_text())["config"]["encoder"] == "static"
    loaded = load_router(tmp_path / "r")
    assert loaded.encoder == STATIC_ENCODER
    np.testing.assert_allclose(loaded.score(prompts), r.score(prompts))
    assert static_standin.calls == 1


def test_encoder_option_is_validated_and_documented() -> None:
    with pytest.raises(InputError, match=r"encoder: Input should be a valid string"):
        make_router("ridge", encoder=3)
    assert "'static' (model2vec" in router_help("ridge")
