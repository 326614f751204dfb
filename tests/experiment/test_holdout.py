"""Train-on-one-split, evaluate-on-the-other experiment (TriviaQA section, `hybrid-llm`)."""

from __future__ import annotations

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.experiment.holdout import holdout_markdown, run_holdout, split_last
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import ModelOutcomes, OutcomeTable


def _table(n: int, quality: bool, seed: int = 0) -> OutcomeTable:
    rng = np.random.default_rng(seed)
    wq = tuple(rng.uniform(0, 0.8, 5) for _ in range(n))
    sq = tuple(np.clip(w + rng.uniform(0, 0.5, 5), 0, 1) for w in wq)

    def side(name: str, q: tuple[np.ndarray, ...]) -> ModelOutcomes:
        samples = tuple((x >= 0.5).astype(float) for x in q)
        return ModelOutcomes(
            name,
            np.array([s.mean() for s in samples]),
            np.full(n, 5),
            np.array([s[0] for s in samples]),
            samples,
            q if quality else None,
            np.array([x[0] for x in q]) if quality else None,
        )

    return OutcomeTable.from_pair(
        ids=tuple(f"id{i}" for i in range(n)),
        prompts=tuple(f"question {i}" for i in range(n)),
        weak=side("w", wq),
        strong=side("s", sq),
        margin=np.full(n, np.nan),
        benchmark=("triviaqa",) * n,
    )


def test_split_last_is_file_order() -> None:
    tr, te = split_last(_table(10, False), 3)
    assert tr.ids == tuple(f"id{i}" for i in range(7)) and te.ids == ("id7", "id8", "id9")
    with pytest.raises(InputError):
        split_last(_table(10, False), 10)


DESIGNS = ["soft-block", "hybrid-prob", "hybrid-trans"]


def test_rows_match_metrics_directly_on_quality() -> None:
    t = _table(60, True)
    tr, te = split_last(t, 20)
    res = run_holdout(tr, te, DESIGNS, ["random", "oracle"], router="random", n_boot=50)
    assert [r.name for r in res.rows] == [*DESIGNS, "random", "oracle"]
    # t* is the one compute_labels finds on the train split
    assert res.t_star == compute_labels(tr, "hybrid-trans").params["t"]
    # the random router's row equals the metric functions applied to its scores
    from firewall_routing.routers import make_router

    scores = make_router("random", seed=0).score_table(te)
    s = metrics.summarize(scores, te.weak.pass_rate, te.strong.pass_rate)
    row = res.row("random")
    assert row.apgr == pytest.approx(s.apgr)
    qc = metrics.quality_cost_curve(scores, te.weak.mean_quality(), te.strong.mean_quality())
    assert row.quality_drop == {c: pytest.approx(qc.at(c)) for c in metrics.COST_ADVANTAGES}
    # the quality oracle loses the least quality at every cost advantage
    for r in res.rows:
        for c in metrics.COST_ADVANTAGES:
            assert res.row("oracle").quality_drop[c] <= r.quality_drop[c] + 1e-9
    assert res.row("hybrid-trans").uses_quality and not res.row("soft-block").uses_quality
    assert res.weak_quality == pytest.approx(float(np.mean([x.mean() for x in te.weak.quality or ()])))
    lo, hi = res.row("oracle").apgr_ci
    assert lo <= res.row("oracle").apgr <= hi
    md = holdout_markdown(res, "TriviaQA")
    assert "### TriviaQA" in md and "quality drop" in md and f"t* = {res.t_star:g}" in md


def test_binary_table_identical_designs_share_scores_and_no_quality_columns() -> None:
    t = _table(40, False)
    tr, te = split_last(t, 10)
    res = run_holdout(tr, te, ["soft-block", "hybrid-prob"], [], router="random", n_boot=0)
    # on 0/1 correctness r_prob at t = 0 is soft-block: same labels, marked, same metrics
    assert res.row("hybrid-prob").same_as == "soft-block"
    assert res.row("hybrid-prob").apgr == res.row("soft-block").apgr
    assert res.weak_quality is None and res.row("soft-block").quality_drop == {}
    assert "quality drop" not in holdout_markdown(res)


def test_bad_design_and_baseline() -> None:
    tr, te = split_last(_table(20, False), 5)
    with pytest.raises(InputError, match="unknown label design"):
        run_holdout(tr, te, ["nope"], [], router="random")
    with pytest.raises(InputError, match="baseline 'knn'"):
        run_holdout(tr, te, [], ["knn"], router="random")
