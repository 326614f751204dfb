"""report.py: the plain-language conclusion, --bootstrap 0 wording, and the plots' contents."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.experiment import evaluation, report, verdict
from firewall_routing.experiment.conclusion import Difference
from firewall_routing.experiment.config import ExperimentConfig
from firewall_routing.experiment.evaluation import evaluate_and_compare
from firewall_routing.experiment.results import (
    BootstrapCI,
    Evaluation,
    ExperimentResults,
    FitRecord,
    ModelPair,
    ResultRow,
    RouterEvaluation,
    RouterKind,
    RouterRun,
    TableInfo,
    TrainInfo,
)
from firewall_routing.outcomes import OutcomeTable

from ..conftest import make_table

KEY = "main/toy"


def _table(n: int = 400, seed: int = 1) -> OutcomeTable:
    """Weak passes half the queries; strong passes all but a few of the weak's."""
    rng = np.random.default_rng(seed)
    pr_w = (rng.random(n) < 0.5).astype(float)
    pr_s = np.where(rng.random(n) < 0.1, 0.0, 1.0)
    return make_table([f"q{i}" for i in range(n)], pr_w, pr_s)


def _runs(t: OutcomeTable, seeds: int = 1) -> list[RouterRun]:
    """soft-block: knows which queries the weak model fails (clearly better than random);
    weak-pass-rate: pure noise (not separable from random)."""
    rng = np.random.default_rng(2)
    n = len(t)
    return [
        RouterRun(
            "soft-block", "design", {KEY: [t.weak.pass_rate + 0.1 * rng.random(n) for _ in range(seeds)]}
        ),
        RouterRun("hybrid-prob", "design", {}),
        RouterRun("weak-pass-rate", "design", {KEY: [rng.random(n) for _ in range(seeds)]}),
        RouterRun("random", "baseline", {KEY: [rng.random(n) for _ in range(seeds)]}),
        RouterRun("oracle", "baseline", {KEY: [t.weak.pass_rate - t.strong.pass_rate]}),
    ]


def _config(**fields: Any) -> ExperimentConfig:
    """A config naming the toy dataset (not one we ship, so built without validation)."""
    cfg = ExperimentConfig(router="embedding-head", baselines=["random", "oracle"])
    return cfg.model_copy(update={"datasets": ["toy"], **fields})


def _result(t: OutcomeTable, n_boot: int, seeds: int = 1) -> tuple[list[RouterRun], ExperimentResults]:
    runs = _runs(t, seeds)
    runs[1].scores = dict(runs[0].scores)  # identical labels → identical router
    rows, comps = evaluate_and_compare(runs, {KEY: t}, n_boot)
    res = ExperimentResults(
        config=_config(seeds=seeds, n_boot=n_boot),
        data_dir=Path("data"),
        pairs={"main": ModelPair("org/weak-7b", "org/strong-8b")},
        router_seeds=seeds,
        router_seeded=True,
        train=TrainInfo(1, 1, "toy"),
        tables={KEY: TableInfo(len(t), 0.5, 0.9, "toy")},
        label_notes={},
        label_params={},
        training={},
        results=rows,
        comparisons=comps,
        wall_seconds_before_report=1.0,
    )
    return runs, res


def test_conclusion_states_the_known_answer() -> None:
    _, res = _result(_table(), n_boot=200)
    text = "\n".join(report.conclusion_lines(res.comparisons, res.tables))
    assert "Better than random: soft-block = hybrid-prob (+" in text
    assert "Not separable from random: weak-pass-rate." in text
    assert "Highest APGR: soft-block = hybrid-prob" in text
    assert "Separably below it: weak-pass-rate (-" in text
    assert "Label designs separable from each other: 1 of 1 pairs" in text
    # the blocking claim, counted over design pairs with exactly one blocking side
    assert "separably better in 1, separably worse in 0, not separable in 0 of 1" in text
    assert "* On 1 of 1 evaluation sets at least one router beats random at 95 %." in text
    verdicts = [
        line for line in report.conclusion_lines(res.comparisons, res.tables) if line.startswith("* ")
    ]
    assert verdicts and not any("oracle" in line for line in verdicts)


def test_conclusion_when_nothing_beats_random() -> None:
    t = _table()
    runs = [RouterRun("soft-block", "design", {KEY: [np.random.default_rng(9).random(len(t))]})]
    _, comps = evaluate_and_compare(runs, {KEY: t}, 200)
    text = "\n".join(report.conclusion_lines(comps, {KEY: TableInfo(len(t), 0.5, 0.9, "toy")}))
    assert "No router beats random at 95 % on any of the 1 evaluation sets." in text
    assert "Better than random on no set: soft-block." in text
    assert "Highest APGR" not in text  # one router: nothing to rank


def test_conclusion_multi_seed_says_what_is_compared() -> None:
    _, res = _result(_table(), n_boot=50, seeds=2)
    text = "\n".join(report.conclusion_lines(res.comparisons, res.tables))
    assert "several seeds (here up to 2; a deterministic router has one) the compared number" in text


def test_no_bootstrap_never_claims_a_bootstrap_ci(tmp_path: Path) -> None:
    _, res = _result(_table(100), n_boot=0)
    report.write_markdown(res, tmp_path / "r.md", 1.0)
    md = (tmp_path / "r.md").read_text()
    assert "bootstrap CI" not in md and "--bootstrap 0" in md
    console = report.console_summary(res)
    assert "bootstrap CI" not in console and "--bootstrap 0" in console


def test_format_evaluation_without_ci() -> None:
    t = _table(100)
    m = metrics.summarize(t.weak.pass_rate, t.weak.pass_rate, t.strong.pass_rate)
    ev = RouterEvaluation([m], m, m, None, {0.5: dict.fromkeys(metrics.TAXONOMY, 0.25)})
    r = Evaluation("x", "t", 100, "w", "s", ev)
    assert "bootstrap" not in report.format_evaluation(r)
    r = replace(r, ev=replace(ev, ci95=BootstrapCI((40.0, 60.0), {})))
    assert "(95 % bootstrap CI)" in report.format_evaluation(r)


def test_curve_band_matches_per_resample_curves() -> None:
    t = _table(60)
    rng = np.random.default_rng(3)
    sets = [np.round(rng.random(60), 1), rng.random(60)]  # ties in the first seed
    lo, hi, glo, ghi = evaluation.curve_band(sets, t.weak.pass_rate, t.strong.pass_rate, n_boot=40, seed=7)
    ys, gains = [], []
    for w in metrics.bootstrap_draws(60, 40, 7):
        cs = [metrics.deferral_curve(s, t.weak.pass_rate, t.strong.pass_rate, weights=w) for s in sets]
        y = np.mean([c.at(evaluation.GRID) for c in cs], axis=0)
        ys.append(y)
        gains.append(y - (cs[0].weak_pass_rate + evaluation.GRID * cs[0].gap))
    np.testing.assert_allclose(lo, np.percentile(ys, 2.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(hi, np.percentile(ys, 97.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(glo, np.percentile(gains, 2.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(ghi, np.percentile(gains, 97.5, axis=0), atol=1e-12)


@pytest.mark.parametrize("n_boot", [0, 30])
def test_deferral_figure_has_what_a_reader_expects(n_boot: int) -> None:
    from matplotlib.collections import PolyCollection

    t = _table()
    runs, _ = _result(t, n_boot=0)
    fig = report.deferral_figure(runs, {KEY: t}, [KEY], n_boot)
    (top, bottom, rest) = fig.axes[:3]
    assert "weak w → strong s" in fig._suptitle.get_text()
    assert top.get_ylabel() == "system pass rate (%)"
    assert bottom.get_ylabel() == "gain over random (% points)"
    assert rest.get_xlabel() == "calls to the strong model (% of queries)"
    p_w, p_s = t.weak.pass_rate.mean() * 100, t.strong.pass_rate.mean() * 100
    flat = [ln.get_ydata() for ln in top.lines if len(set(np.asarray(ln.get_ydata()).round(9))) == 1]
    assert {round(float(y[0]), 6) for y in flat} == {round(p_w, 6), round(p_s, 6)}
    rnd = next(ln for ln in top.lines if ln.get_label() == "Random (expected)")
    np.testing.assert_allclose(rnd.get_ydata(), p_w + evaluation.GRID * (p_s - p_w))  # straight, expected
    bands = [c for ax in (top, bottom) for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == (2 if n_boot else 0)
    assert "soft-block" in bottom.get_title()
    # one shared legend; the identical design is named once, merged
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    labels = [x.get_text() for x in fig.legends[0].get_texts()]
    assert "Soft Block (Eq. 7) (= hybrid-prob)" in labels and "all-weak" in labels
    assert not any("Hybrid LLM r_prob" in x for x in labels)


def test_deferral_panel_shows_the_few_curves_that_matter_and_every_router_below() -> None:
    """Issue 25: nine bunched curves ran over the labels. The top rows hold at most three
    routers (the winner, the best of the other label family, MF); the bottom row all."""
    t = _table()
    runs, _ = _result(t, n_boot=0)
    lines = evaluation.router_lines(runs, t, KEY)
    routers = [ln for ln in lines if ln.name not in ("oracle", "random")]
    shown = report.featured(routers)
    assert 1 <= len(shown) <= 3 and shown[0] is max(routers, key=lambda ln: ln.apgr)
    fig = report.deferral_figure(runs, {KEY: t}, [KEY], 0)
    _top, bottom, rest = fig.axes[:3]
    zero_and_refs = 1  # the random line / zero line
    assert len(bottom.lines) == len(shown) + zero_and_refs
    assert len(rest.lines) == len(routers) + zero_and_refs


def test_featured_curves_are_the_winner_the_other_family_and_mf() -> None:
    def line(name: str, apgr: float) -> evaluation.RouterLine:
        return evaluation.RouterLine([name], np.zeros(101), apgr, [])

    rs = [
        line(n, a)
        for n, a in [("hard-block", 58), ("soft-block", 60), ("hard", 55), ("weak-pass-rate", 56), ("mf", 51)]
    ]
    assert [ln.name for ln in report.featured(rs)] == ["soft-block", "weak-pass-rate", "mf"]
    rs[3] = line("weak-pass-rate", 61)  # a non-blocking winner: the best blocking design beside it
    assert [ln.name for ln in report.featured(rs)] == ["weak-pass-rate", "soft-block", "mf"]


def test_bin_figure_axes_and_limits() -> None:
    t = _table()
    runs, _ = _result(t, n_boot=0)
    fig = report.bin_figure(runs, t, KEY)
    used = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in used] == [
        "Soft Block (Eq. 7) (= hybrid-prob)",
        "Weak Model Pass Rate",
        "Oracle (upper bound)",
    ]
    assert used[0].get_ylabel() == "pass rate (%)"
    assert all(ax.get_xlabel() == "router-score bin (1 = lowest)" for ax in used)
    lo, hi = used[0].get_ylim()
    gains = [ln.get_ydata() for ax in used for ln in ax.lines if ln.get_label().startswith("gain")]
    assert lo < min(float(np.min(g)) for g in gains) and -100 < lo <= -5
    assert 100 <= hi <= 105  # bars reach 100 % (strong passes every weak-failed query in bin 1)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)


def test_write_plots_files(tmp_path: Path) -> None:
    t = _table(120)
    runs, _ = _result(t, n_boot=0)
    paths = report.write_plots(runs, {KEY: t}, tmp_path, n_boot=20)
    assert [p.name for p in paths] == ["deferral-main.png", "bins-main-toy.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_signed_points_never_print_minus_zero() -> None:
    d = Difference("a", "b", diff=-3.9, lo=-9.94, hi=-0.04, p=0.01)
    assert verdict.signed(d) == "-3.9 [-9.9, -0.04]"


def test_deterministic_router_is_not_reported_as_seeds_or_best_epoch(tmp_path: Path) -> None:
    """``ridge`` is trained once per design: the header must not claim 3 seeds (the config's
    ``--seeds``) or a best epoch it never picked; a seeded router with epochs keeps both."""
    _, res = _result(_table(100), n_boot=0, seeds=3)
    res.router_seeds, res.router_seeded = 1, False
    res.config = res.config.model_copy(update={"router": "ridge", "baselines": ["mf"]})
    res.training = {
        "soft-block": [FitRecord(0, None, None, 2.5)],
        "mf": [FitRecord(0, 7, 51.0, 1.0)],
    }
    report.write_markdown(res, tmp_path / "r.md", 1.0)
    md = (tmp_path / "r.md").read_text()
    assert "deterministic (trained once per label design; no seeds)" in md
    assert "3 seed(s)" not in md and "best epoch by validation APGR" not in md
    assert "| soft-block | – | – | 2.5 |" in md
    res.router_seeds, res.router_seeded = 3, True
    res.training["soft-block"] = [FitRecord(s, 4, 50.0, 1.0) for s in range(3)]
    report.write_markdown(res, tmp_path / "r2.md", 1.0)
    md = (tmp_path / "r2.md").read_text()
    assert "3 seed(s) per label design" in md and "best epoch by validation APGR" in md


def _summary(apgr: float, rates: tuple[float, float, float], qd: bool = True) -> metrics.Summary:
    return metrics.Summary(
        apgr=apgr,
        apgr_area=apgr + 0.5,
        pass_rate_at=dict(zip(metrics.PASS_RATE_FRACTIONS, rates, strict=True)),
        cpt={0.5: 0.3, 0.8: 0.6},
        quality_drop=dict(zip(metrics.COST_ADVANTAGES, (1.5, 3.0, 6.0), strict=True)) if qd else {},
        weak_pass_rate=0.4,
        strong_pass_rate=0.8,
    )


def _row(router: str, s: metrics.Summary, ci: BootstrapCI | None = None) -> ResultRow:
    tax = {a: {"weak_ok": 0.1, "strong_only": 0.2, "both_ok": 0.3, "both_fail": 0.4} for a in (0.2, 0.5, 0.8)}
    kind: RouterKind = "design" if router in ("soft-block", "hard") else "baseline"
    return ResultRow(router, kind, "main", "toy", RouterEvaluation([s], s, s, ci, tax))


def test_markdown_and_console_render_the_numbers_they_are_given(tmp_path: Path) -> None:
    """Hand-made results → the exact cells: APGR with its CI, pass rates in %, CPT, QD, the
    taxonomy, "undefined" for a NaN APGR, "–" for a missing quality drop, no row for a
    router the run did not have (mf)."""
    _, res = _result(_table(100), n_boot=0)
    ci = BootstrapCI((58.04, 64.96), {a: (0.0, 1.0) for a in metrics.PASS_RATE_FRACTIONS})
    res.results = [
        _row("soft-block", _summary(61.234, (0.5, 0.6, 0.7)), ci),
        _row("hard", _summary(float("nan"), (0.45, 0.55, 0.65), qd=False)),
        _row("random", _summary(50.0, (0.48, 0.6, 0.72))),
    ]
    report.write_markdown(res, tmp_path / "r.md", 1.0)
    md = (tmp_path / "r.md").read_text()
    table1 = md.split("## Table 1")[1].split("## Table 3")[0]
    assert "| Soft Block (Eq. 7) | 61.23 [58.0, 65.0] | 50.00 | 60.00 | 70.00 |" in table1
    assert "| Linear Interpolation (random) | 50.00 | 48.00 | 60.00 | 72.00 |" in table1
    assert "| RouteLLM MF" not in table1  # not in the run: no row
    # every design the run trained is in Table 1 (issue 25), not only the paper's rows
    assert "| Hard Label (Eq. 1) | undefined | 45.00 | 55.00 | 65.00 |" in table1
    table3 = md.split("## Table 3")[1].split("##")[0]
    assert "| Hard Label (Eq. 1) | undefined | 45.00 | 55.00 | 65.00 |" in table3
    more = md.split("## More metrics")[1].split("##")[0]
    assert "| toy | Soft Block (Eq. 7) | 61.23 | 61.73 | 30.0 % | 60.0 % | 1.50 | 3.00 | 6.00 |" in more
    assert "| toy | Hard Label (Eq. 1) | undefined | undefined | 30.0 % | 60.0 % | – | – | – |" in more
    tax = md.split("## Where the strong calls go")[1].split("##")[0]
    assert "| toy | Soft Block (Eq. 7) | 10.0 % | 20.0 % | 30.0 % | 40.0 % |" in tax
    console = report.console_summary(res)
    line = next(x for x in console.splitlines() if "Soft Block" in x)
    assert line.split()[-3:] == ["61.23", "[58.0,", "65.0]"]
    assert next(x for x in console.splitlines() if "Hard Label" in x).split()[-1] == "undefined"


def test_console_answers_in_one_sentence_first_and_leaves_the_long_conclusion_to_the_file(
    tmp_path: Path,
) -> None:
    """Issue 25: the ~60-line conclusion was printed in full, with no one-sentence answer."""
    _, res = _result(_table(), n_boot=200)
    console = report.console_summary(res)
    first = next(x for x in console.splitlines() if x.strip())
    row = res.row("soft-block", "main", "toy")
    assert row is not None
    cpt = row.ev.mean.cpt[0.8] * 100
    assert first.startswith(f"Answer: on main/toy, use Soft Block (Eq. 7) at {cpt:.0f} % strong calls: 80 % ")
    assert "beats random at 95 % (+" in first
    assert "How it is decided" not in console and "report.md, section Conclusion" in console
    report.write_markdown(res, tmp_path / "r.md", 1.0)
    md = (tmp_path / "r.md").read_text()
    assert (
        md.index("**Answer:** on main/toy, use Soft Block")
        < md.index("## Conclusion")
        < md.index("How it is decided")
    )


def test_answer_says_plainly_when_nothing_beats_random() -> None:
    t = _table()
    runs = [RouterRun("soft-block", "design", {KEY: [np.random.default_rng(9).random(len(t))]})]
    _, res = _result(t, n_boot=0)
    rows, comps = evaluate_and_compare(runs, {KEY: t}, 200)
    res.results, res.comparisons = rows, comps
    assert report.answer(res).startswith("Answer: on main/toy no router beats random at 95 %")
