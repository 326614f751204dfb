"""Router interface: random, oracle, embedding-head (toy encoder + one real MiniLM check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.routers import Validation, load_router, make_router
from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

from ..conftest import ToyEncoder, make_table


def test_random_is_deterministic_and_order_free(tmp_path: Path) -> None:
    r = make_router("random", seed=3)
    a = r.score(["x", "y", "z"])
    b = r.score(["z", "x", "y"])
    assert a.tolist() == [b[1], b[2], b[0]]
    assert ((a >= 0) & (a < 1)).all()
    assert not np.allclose(a, make_router("random", seed=4).score(["x", "y", "z"]))
    r.save(tmp_path / "r")
    assert load_router(tmp_path / "r").score(["x", "y", "z"]).tolist() == a.tolist()


def test_oracle_sorts_by_gain_and_round_trips(tmp_path: Path) -> None:
    t = make_table(["a", "b", "c"], np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5]))
    o = make_router("oracle")
    s = o.score_table(t)
    assert s.argsort().tolist() == [1, 2, 0]  # b (gain +1) first to strong
    o.save(tmp_path / "o")
    assert load_router(tmp_path / "o").score_table(t).tolist() == s.tolist()
    with pytest.raises(InputError, match="outcomes"):
        o.score(["a"])


def _toy_data(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """'hard' prompts: weak fails, strong succeeds (label 0); others: weak fine (label 1)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    prompts = [f"{'hard' if h else 'easy'} question {seed}-{i}" for i, h in enumerate(hard)]
    pr_w = np.where(hard, 0.1, 0.9)
    pr_s = np.where(hard, 0.9, 0.9)
    labels = np.where(hard, 0.0, 1.0)
    return prompts, labels, pr_w, pr_s


def test_head_learns_separable_toy_set(toy_encoder: ToyEncoder) -> None:
    prompts, labels, _, _ = _toy_data(200, 0)
    vp, _, vw, vs = _toy_data(60, 1)
    r = EmbeddingHeadRouter(encoder="toy", epochs=15, seed=0)
    rep = r.fit(prompts, labels, val=Validation(vp, vw, vs))
    losses = [e["train_loss"] for e in rep.epochs]
    assert losses[-1] < losses[0] * 0.5
    tp, _, tw, ts = _toy_data(100, 2)
    scores = r.score(tp)
    oracle = metrics.apgr(metrics.deferral_curve((1 - (ts - tw)) / 2, tw, ts))
    assert metrics.apgr(metrics.deferral_curve(scores, tw, ts)) == pytest.approx(oracle, abs=1e-9)


def test_best_validation_epoch_is_the_one_kept(toy_encoder: ToyEncoder, tmp_path: Path) -> None:
    prompts, labels, _, _ = _toy_data(120, 3)
    vp, _, vw, vs = _toy_data(40, 4)
    # noisy labels so validation APGR moves between epochs
    rng = np.random.default_rng(0)
    noisy = np.clip(labels + rng.normal(0, 0.6, len(labels)), 0, 1)
    r = EmbeddingHeadRouter(encoder="toy", epochs=12, seed=1, lr=3e-2)
    rep = r.fit(prompts, noisy, val=Validation(vp, vw, vs))
    vals = [e["val_apgr"] for e in rep.epochs]
    assert rep.best_val_apgr == max(vals)
    assert rep.best_epoch == 1 + vals.index(max(vals))
    kept = metrics.apgr(metrics.deferral_curve(r.score(vp), vw, vs))
    assert kept == pytest.approx(rep.best_val_apgr)
    r.save(tmp_path / "h")
    loaded = load_router(tmp_path / "h")
    assert np.array_equal(loaded.score(vp), r.score(vp))


def test_soft_label_is_not_rounded(toy_encoder: ToyEncoder) -> None:
    """Every example labelled 0.7: BCE with soft targets converges to 0.7, not to 1."""
    prompts = [f"easy prompt {i}" for i in range(64)]
    r = EmbeddingHeadRouter(encoder="toy", hidden=0, epochs=300, lr=5e-2, weight_decay=0.0, seed=0)
    r.fit(prompts, np.full(64, 0.7))
    assert r.score(prompts).mean() == pytest.approx(0.7, abs=0.02)


def test_head_is_deterministic_under_seed(toy_encoder: ToyEncoder) -> None:
    prompts, labels, _, _ = _toy_data(80, 5)
    a = EmbeddingHeadRouter(encoder="toy", epochs=5, seed=7)
    b = EmbeddingHeadRouter(encoder="toy", epochs=5, seed=7)
    a.fit(prompts, labels)
    b.fit(prompts, labels)
    assert np.array_equal(a.score(prompts), b.score(prompts))


def test_embeddings_cached_by_content(toy_encoder: ToyEncoder) -> None:
    from firewall_routing.embeddings import get_encoder

    enc = get_encoder("toy")
    enc.encode(["a", "b", "a"])
    assert toy_encoder.calls == 2
    enc.encode(["b", "a", "c"])
    assert toy_encoder.calls == 3


def test_fit_rejects_bad_labels(toy_encoder: ToyEncoder) -> None:
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        EmbeddingHeadRouter(encoder="toy").fit(["a", "b"], np.array([0.5, 1.5]))


def test_untrained_router_errors() -> None:
    with pytest.raises(InputError, match="not trained"):
        EmbeddingHeadRouter().score_embeddings(np.zeros((1, 384)))


def test_unknown_router_and_bad_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown router"):
        make_router("nope")
    with pytest.raises(InputError, match="not a saved router"):
        load_router(tmp_path)


def test_real_minilm_embeddings_round_trip(tmp_path: Path) -> None:
    """The real offline encoder: normalized 384-d vectors; the disk cache returns the same."""
    from firewall_routing.embeddings import CachedEncoder, SentenceEncoder

    enc = CachedEncoder(SentenceEncoder(), tmp_path)
    v = enc.encode(["How many eggs?", "Write a sort function."])
    assert v.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    again = CachedEncoder(SentenceEncoder(), tmp_path).encode(["Write a sort function."])
    np.testing.assert_array_equal(again[0], v[1])


def test_real_minilm_embedding_does_not_depend_on_batch_neighbours() -> None:
    """Bit-identical alone or among longer texts, so results never depend on cache history."""
    from firewall_routing.embeddings import SentenceEncoder

    enc = SentenceEncoder()
    texts = ["How many eggs?", "A much longer question about trains leaving two stations " * 5]
    together = enc.encode(texts)
    np.testing.assert_array_equal(enc.encode(texts[:1])[0], together[0])
    np.testing.assert_array_equal(enc.encode(texts[::-1])[1], together[0])


def test_real_minilm_embeds_on_one_thread_and_restores_the_callers_setting() -> None:
    """Embedding runs single-threaded (faster per text on a busy machine) with vectors equal
    to a multi-threaded pass, and leaves torch's thread count as the caller had it."""
    import torch

    from firewall_routing.embeddings import SentenceEncoder

    enc = SentenceEncoder()
    text = ["A train leaves at 3 pm going 60 miles per hour; when does it arrive 150 miles away?"]
    seen: list[int] = []
    model = enc._load()
    real = model.encode

    def spy(*a: object, **k: object) -> object:
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        multi = real(text, batch_size=1, convert_to_numpy=True, normalize_embeddings=True)
        model.encode = spy
        single = enc.encode(text)
        assert seen == [1] and torch.get_num_threads() == 2
        np.testing.assert_array_equal(single[0], np.asarray(multi, dtype=np.float32)[0].astype(np.float64))
    finally:
        model.encode = real
        torch.set_num_threads(before)


def test_margin_router_reads_table_margin(tmp_path: Path) -> None:
    t = make_table(["a", "b", "c"], np.array([0.9, 0.1, 0.5]), np.array([0.9, 0.9, 0.5]))
    t = type(t).from_pair(t.ids, t.prompts, t.weak, t.strong, np.array([0.8, 0.05, 0.4]), t.benchmark)
    r = make_router("margin")
    assert r.score_table(t).tolist() == [0.8, 0.05, 0.4]  # small margin -> strong first
    r.save(tmp_path / "m")
    assert load_router(tmp_path / "m").score_table(t).tolist() == [0.8, 0.05, 0.4]


def test_margin_router_needs_margins() -> None:
    t = make_table(["a"], np.array([0.5]), np.array([0.5]))
    with pytest.raises(InputError, match="no margin"):
        make_router("margin").score_table(t)
    with pytest.raises(InputError, match="bare prompts"):
        make_router("margin").score(["a"])
