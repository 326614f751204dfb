"""The static encoder: distilled once into the cache (atomically), then a table lookup."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from firewall_routing import static_encoder
from firewall_routing.embeddings import DEFAULT_ENCODER, STATIC_ENCODER, get_encoder
from firewall_routing.errors import InputError
from firewall_routing.static_encoder import StaticEncoder, static_model_dir, static_model_path

from .conftest import StaticStandIn


def _cache() -> Path:
    return Path(os.environ["FIREWALL_ROUTING_CACHE"]) / "static"


def test_distilled_once_into_the_cache_then_reused(static_standin: StaticStandIn) -> None:
    first = StaticEncoder().encode(["How many apples are left?"])
    assert static_standin.calls == 1
    again = StaticEncoder().encode(["How many apples are left?"])  # a new process, say
    assert static_standin.calls == 1
    np.testing.assert_array_equal(first, again)
    assert [p.name for p in _cache().iterdir()] == [static_model_dir().name]  # no temp left
    assert static_model_dir().name.startswith("minilm-l6-m2v-pca256-")


def test_interrupted_distillation_leaves_nothing_to_load(
    static_standin: StaticStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(source: Path, pca_dims: int = 256) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(static_encoder, "distill_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        static_model_path()
    assert list(_cache().iterdir()) == []  # neither a half model nor its temp folder
    monkeypatch.setattr(static_encoder, "distill_model", static_standin)
    assert (static_model_path() / "model.safetensors").is_file()
    assert static_standin.calls == 1


def test_a_crash_while_saving_leaves_no_model(
    static_standin: StaticStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_pretrained dies after writing part of the folder: the cache holds no model."""

    class HalfSaved:
        def save_pretrained(self, path: str) -> None:
            (Path(path) / "config.json").write_text("{}")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(static_encoder, "distill_model", lambda source, pca_dims=256: HalfSaved())
    with pytest.raises(InputError, match="No space left on device"):
        static_model_path()
    assert list(_cache().iterdir()) == []


def test_unwritable_cache_is_one_clear_line(
    static_standin: StaticStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("FIREWALL_ROUTING_CACHE", str(blocker))
    with pytest.raises(InputError) as e:
        StaticEncoder().encode(["x"])
    msg = str(e.value)
    assert "cannot write the static model" in msg and "FIREWALL_ROUTING_CACHE" in msg
    assert "\n" not in msg
    assert static_standin.calls == 0  # failed before distilling, not minutes later


def test_other_source_weights_get_their_own_model(static_standin: StaticStandIn, tmp_path: Path) -> None:
    src = static_encoder.source_model_path()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    assert static_model_dir(copy) != static_model_dir(src)
    (copy / "weights.bin").write_bytes(b"1")
    before = static_model_dir(copy)
    (copy / "weights.bin").write_bytes(b"22")  # size differs: mtime may not (coarse clock)
    assert static_model_dir(copy) != before


def test_unit_vectors_one_text_at_a_time(static_standin: StaticStandIn) -> None:
    enc = StaticEncoder()
    texts = ["Janet has 3 apples.", "What is 2 + 2?", "a much longer question " * 20]
    emb = enc.encode(texts)
    assert emb.shape == (3, 8) and emb.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)  # float16 vectors
    np.testing.assert_array_equal(np.vstack([enc.encode([t]) for t in texts]), emb)
    assert enc.encode([]).shape == (0, 8)
    assert not enc.encode([""]).any()  # no tokens: the zero vector, not NaN


def test_reads_only_the_first_256_tokens_of_a_huge_text(static_standin: StaticStandIn) -> None:
    enc = StaticEncoder()
    enc.encode(["warm up"])
    head = "alpha beta " * 128  # 256 tokens
    start = time.perf_counter()
    huge = enc.encode([head + "gamma " * 500_000])  # ~3 MB
    assert time.perf_counter() - start < 0.5
    np.testing.assert_allclose(huge, enc.encode([head]), atol=1e-6)


def test_static_is_an_encoder_name_with_its_own_cache_key(static_standin: StaticStandIn) -> None:
    enc = get_encoder(STATIC_ENCODER)
    assert isinstance(enc.inner, StaticEncoder)
    assert enc.model_id.startswith("static-") and enc.model_id != DEFAULT_ENCODER
    assert enc._key("same text") != get_encoder(DEFAULT_ENCODER)._key("same text")
    assert enc.encode(["a prompt"]).shape == (1, 8)


def test_missing_model2vec_is_one_clear_line(
    static_standin: StaticStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import PackageNotFoundError

    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(static_encoder, "version", not_installed)
    with pytest.raises(InputError, match=r"needs model2vec: pip install 'model2vec"):
        StaticEncoder()


@pytest.mark.slow
def test_real_distillation_of_the_shipped_minilm() -> None:
    """The real thing, offline (~1-3 minutes): 256-d vectors, and paraphrases are closer."""
    enc = StaticEncoder()
    a, b, c = enc.encode(
        [
            "Tom has 5 apples and eats 2. How many are left?",
            "Tom had five apples and ate two of them. How many remain?",
            "Write a Python function that reverses a linked list.",
        ]
    )
    assert a.shape == (256,)
    assert a @ b > a @ c + 0.1
    assert [p for p in _cache().iterdir() if p.name.startswith(".")] == []
