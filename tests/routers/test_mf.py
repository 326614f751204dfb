"""``mf`` router: RouteLLM matrix factorization over (toy) prompt embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.routers import Validation, load_router, make_router
from firewall_routing.routers.mf import MFRouter, battle_targets

from ..conftest import ToyEncoder, make_table


def _toy(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """'hard' prompts: strong usually wins the battle; 'easy' ones: weak usually wins."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    prompts = [f"{'hard' if h else 'easy'} q {seed}-{i}" for i, h in enumerate(hard)]
    return prompts, np.where(hard, 0.1, 0.8), np.where(hard, 0.9, 0.3)


def test_battle_targets_drop_or_split_ties() -> None:
    pr_w, pr_s = np.array([0.5, 1.0, 0.0, 0.2]), np.array([0.5, 1.0, 1.0, 0.6])
    t, w = battle_targets(pr_w, pr_s, "drop")
    # row 0: p_w = p_s = 0.25; row 1: both always right (only ties); row 2: strong always wins
    assert t.tolist() == pytest.approx([0.5, 0.5, 0.0, 0.08 / (0.08 + 0.48)])
    assert w.tolist() == pytest.approx([0.5, 0.0, 1.0, 0.56])
    t2, w2 = battle_targets(pr_w, pr_s, "half")
    assert t2.tolist() == pytest.approx([0.5, 0.5, 0.0, 0.08 + 0.5 * 0.44])
    assert w2.tolist() == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(InputError, match="ties"):
        battle_targets(pr_w, pr_s, "ignore")


def test_learns_who_wins_and_scores_high_for_weak(toy_encoder: ToyEncoder, tmp_path: Path) -> None:
    prompts, pr_w, pr_s = _toy(200, 0)
    r = MFRouter(encoder="toy", dim=16, epochs=40, lr=3e-2, noise=0.05, seed=0)
    rep = r.fit_table(make_table(prompts, pr_w, pr_s))
    assert rep.best_epoch == 40  # no validation: the last epoch is kept
    losses = [e["train_loss"] for e in rep.epochs]
    assert losses[-1] < losses[0] - 0.1
    tp, tw, ts = _toy(80, 2)
    s = r.score(tp)
    assert ((s >= 0) & (s <= 1)).all()
    hard = np.array(["hard" in p for p in tp])
    assert s[hard].max() < s[~hard].min()  # higher = weak: the strong-wins prompts score low
    oracle = metrics.apgr(metrics.deferral_curve(1 - (ts - tw), tw, ts))
    assert metrics.apgr(metrics.deferral_curve(s, tw, ts)) == pytest.approx(oracle, abs=1e-9)
    r.save(tmp_path / "mf")
    loaded = load_router(tmp_path / "mf")
    np.testing.assert_array_equal(loaded.score(tp), s)
    assert loaded.metadata.label_design == "battles (ties drop)"
    assert (loaded.metadata.weak, loaded.metadata.strong, loaded.metadata.train_rows) == ("w", "s", 200)


def test_best_validation_epoch_is_kept(toy_encoder: ToyEncoder) -> None:
    prompts, pr_w, _ = _toy(120, 3)
    vp, vw, vs = _toy(40, 4)
    noisy = np.clip(np.where(pr_w > 0.5, 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.8, 120), 0, 1)
    r = MFRouter(encoder="toy", dim=8, epochs=15, lr=5e-2, noise=0.3, seed=2)
    rep = r.fit(prompts, noisy, val=Validation(vp, vw, vs))
    vals = [e["val_apgr"] for e in rep.epochs]
    assert len(set(np.round(vals, 6))) > 1
    assert rep.best_val_apgr == max(vals) and rep.best_epoch == 1 + vals.index(max(vals))
    assert metrics.apgr(metrics.deferral_curve(r.score(vp), vw, vs)) == pytest.approx(max(vals))


def test_soft_label_is_used_as_is(toy_encoder: ToyEncoder) -> None:
    prompts = [f"easy {i}" for i in range(64)]
    r = MFRouter(encoder="toy", dim=8, epochs=300, lr=3e-2, weight_decay=0.0, noise=0.0, seed=0)
    r.fit(prompts, np.full(64, 0.7))
    assert r.score(prompts).mean() == pytest.approx(0.7, abs=0.02)


def test_deterministic_under_seed(toy_encoder: ToyEncoder) -> None:
    prompts, pr_w, pr_s = _toy(64, 5)
    t = make_table(prompts, pr_w, pr_s)
    a, b, c = (MFRouter(encoder="toy", epochs=5, seed=s) for s in (3, 3, 4))
    for r in (a, b, c):
        r.fit_table(t)
    np.testing.assert_array_equal(a.score(prompts), b.score(prompts))
    assert not np.array_equal(a.score(prompts), c.score(prompts))


def test_errors(toy_encoder: ToyEncoder) -> None:
    with pytest.raises(InputError, match="not trained"):
        make_router("mf", encoder="toy").score(["a"])
    with pytest.raises(InputError, match="tie"):
        MFRouter(encoder="toy").fit_table(make_table(["a", "b"], np.ones(2), np.ones(2)))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        MFRouter(encoder="toy").fit(["a"], np.array([2.0]))
