"""``sweep`` on small synthetic RouterDC-shaped data with the toy encoder (no MiniLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from firewall_routing import metrics
from firewall_routing.experiment.config import CEILING_PREFIX, CEILING_PW, ORACLE, RANDOM
from firewall_routing.experiment.sweep import (
    GAIN,
    SweepConfig,
    across,
    ceiling_fraction,
    evaluate_pair,
    own_ceiling,
    run,
    select_pairs,
    target_labels,
)

from ..conftest import ToyEncoder

MODELS = {"org/low": 0.2, "org/mid": 0.5, "org/top": 0.8}
"""Mean pass rates on train: ordered pairs with gap ≥ 0.1 are low→top (0.6), low→mid and
mid→top (0.3 each); the three reversed pairs have negative gaps."""


def _rows(n: int, prefix: str, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Half the prompts say 'hard' (toy encoder feature 0): there the weak models fail more."""
    rows = []
    for i in range(n):
        hard = i % 2 == 0
        scores = {}
        for m, base in MODELS.items():
            p = base - 0.15 if hard else base + 0.15
            if m == "org/low" and hard:
                p = 0.0
            scores[m] = float(np.clip(np.round(p + rng.normal(0, 0.05), 1), 0, 1))
        rows.append({"question": f"{prefix} {'hard' if hard else 'easy'} question {i}", "scores": scores})
    return rows


def _exact_train(n: int) -> list[dict[str, Any]]:
    """Train file whose model means are exactly MODELS (pair selection is hand-checkable)."""
    return [
        {"question": f"train {'hard' if i % 2 == 0 else 'easy'} question {i}", "scores": dict(MODELS)}
        | {"scores": {m: round(v + (-0.1 if i % 2 == 0 else 0.1), 1) for m, v in MODELS.items()}}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    (d / "routerdc").mkdir()
    rng = np.random.default_rng(0)
    files = {
        "gsm8k-train.json": _exact_train(60),
        "gsm8k-test.json": _rows(40, "gsm", rng),
        "humaneval_train.json": _rows(14, "he-a", rng),
        "humaneval_test.json": _rows(10, "he-b", rng),
        "mbpp.json": _rows(30, "mbpp", rng),
    }
    for name, rows in files.items():
        (d / "routerdc" / name).write_text(json.dumps(rows))
    return d


def _config(data_dir: Path, **over: Any) -> SweepConfig:
    fields: dict[str, Any] = {
        "data_dir": data_dir,
        "router_options": {"encoder": "toy", "prior": "none"},  # the default router, ridge
        "designs": "soft-block,weak-pass-rate,hybrid-prob",
        "baselines": ["mf", "knn"],
        "baseline_options": {"mf": {"encoder": "toy", "epochs": 3}, "knn": {"encoder": "toy", "k": 5}},
        "n_boot": 60,
        "plots": False,
    }
    return SweepConfig(**(fields | over))


def test_pairs_by_hand(data_dir: Path) -> None:
    pairs = select_pairs(data_dir / "routerdc" / "gsm8k-train.json", 0.10)
    assert [(p.weak, p.strong) for p in pairs] == [
        ("org/low", "org/top"),  # gap 0.6 first, then the 0.3s by name
        ("org/low", "org/mid"),
        ("org/mid", "org/top"),
    ]
    assert pairs[0].gap == pytest.approx(0.6) and pairs[0].label == "low → top"
    assert len(select_pairs(data_dir / "routerdc" / "gsm8k-train.json", 0.31)) == 1
    assert len(select_pairs(data_dir / "routerdc" / "gsm8k-train.json", 0.0)) == 3


def test_shipped_data_has_fifteen_pairs() -> None:
    from ..conftest import DATA

    pairs = select_pairs(DATA / "routerdc" / "gsm8k-train.json", 0.10)
    assert len(pairs) == 15 and all(p.gap >= 0.10 for p in pairs)


def test_ceiling_fraction_by_hand() -> None:
    assert ceiling_fraction(55.0, 70.0) == pytest.approx(0.25)
    assert ceiling_fraction(45.0, 70.0) == pytest.approx(-0.25)
    assert np.isnan(ceiling_fraction(55.0, 50.0))
    assert own_ceiling("soft-block", "design") == CEILING_PREFIX + "soft-block"
    assert own_ceiling("weak-pass-rate", "design") == CEILING_PW
    assert own_ceiling("mf", "baseline") == CEILING_PW


def test_default_router_is_reproduces_default() -> None:
    from firewall_routing.experiment.config import ExperimentConfig

    assert SweepConfig(baselines=["mf"]).router == ExperimentConfig().router


@pytest.fixture(scope="module")
def result(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from firewall_routing.embeddings import register_encoder

    register_encoder("toy", ToyEncoder(), tmp_path_factory.mktemp("toycache"))
    out = tmp_path_factory.mktemp("sweep")
    run(_config(data_dir), out)
    res: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert (out / "summary.md").read_text().startswith("# Sweep")
    return res


def test_results_structure(result: dict[str, Any]) -> None:
    assert result["n_pairs"] == 3 and len(result["pairs"]) == 3
    assert result["contenders"] == ["soft-block", "weak-pass-rate", "hybrid-prob", "mf", "knn", RANDOM]
    for p in result["pairs"]:
        assert set(p["datasets"]) == {"gsm8k", "humaneval", "mbpp"}
        assert p["datasets"]["humaneval"]["n"] == 24  # train + test files together
        rows = p["datasets"]["gsm8k"]["routers"]
        for name in (ORACLE, CEILING_PW, CEILING_PREFIX + "soft-block", CEILING_PREFIX + "hybrid-prob"):
            assert rows[name]["kind"] == "ceiling"
        lo, hi = rows["soft-block"]["ci95"]
        assert lo <= rows["soft-block"]["apgr"] <= hi or abs(hi - lo) < 1e-9
        assert rows["soft-block"]["ceiling"] == CEILING_PREFIX + "soft-block"
        # every unordered pair of the 6 non-ceiling routers once: 6·5/2
        assert len(p["datasets"]["gsm8k"]["paired"]) == 15
        assert rows["knn"]["kind"] == "baseline" and rows["knn"]["ceiling"] == CEILING_PW
    s = result["summary"]["gsm8k"]
    w = s["wins"]["soft-block"][RANDOM]
    assert w["n"] == 3 and w["wins"] + w["losses"] + w["ties"] == 3
    assert {"sign_test_p", "wilcoxon_p", "significant_wins", "mean_diff"} <= set(w)
    assert s["wins"][RANDOM]["soft-block"]["wins"] == w["losses"]  # mirrored
    assert set(s["mean"]) >= {"soft-block", "mf", RANDOM, ORACLE, CEILING_PW}


def test_random_is_the_expected_line(result: dict[str, Any]) -> None:
    for p in result["pairs"]:
        for ds in p["datasets"].values():
            r = ds["routers"][RANDOM]
            assert r["apgr"] == pytest.approx(50.0, abs=1e-9)
            assert r["ci95"] == pytest.approx([50.0, 50.0], abs=1e-9)


def test_identical_labels_are_ties(result: dict[str, Any]) -> None:
    """hybrid-prob = soft-block on pass rates: trained once, so every pair is a tie."""
    assert all("hybrid-prob" in p["identical_labels"] for p in result["pairs"])
    w = result["summary"]["gsm8k"]["wins"]["hybrid-prob"]["soft-block"]
    assert (w["ties"], w["sign_test_p"]) == (3, 1.0)
    assert result["aliases"] == {"hybrid-prob": "soft-block"}
    assert all(p["same_as"] == {"hybrid-prob": "soft-block"} for p in result["pairs"])


def test_aliases_show_the_preferred_name() -> None:
    from firewall_routing.experiment.sweep import aliases

    same = {"soft-block": "win-rate", "hybrid-prob": "win-rate", "hybrid-det": "hard"}
    pairs = [{"same_as": same}, {"same_as": same | {"hard-block": "hard"}}]
    assert aliases(pairs) == {"win-rate": "soft-block", "hybrid-prob": "soft-block", "hybrid-det": "hard"}
    assert aliases([{"same_as": same}, {"same_as": {}}]) == {}


def test_console_lists_aliases_once(result: dict[str, Any]) -> None:
    from firewall_routing.experiment.sweep_report import console, markdown

    text = console(result)
    assert "soft-block (= hybrid-prob)" in text
    assert not any(line.startswith(("hybrid-prob ", "ceiling:hybrid-prob")) for line in text.splitlines())
    assert "vs random" in text and "vs mf" in text and "vs knn" in text
    md = markdown(result)
    assert "| soft-block (= hybrid-prob) |" in md and "## Wins on mbpp (3 pairs)" in md


def test_ceiling_rows_match_direct_computation(result: dict[str, Any], data_dir: Path) -> None:
    from firewall_routing.labels import soft_block
    from firewall_routing.outcomes import load_routerdc

    p = result["pairs"][0]
    t = load_routerdc(data_dir / "routerdc" / "mbpp.json", p["weak"], p["strong"])
    pw, ps = t.weak.pass_rate, t.strong.pass_rate
    rows = p["datasets"]["mbpp"]["routers"]
    assert rows[CEILING_PW]["apgr"] == pytest.approx(metrics.apgr(metrics.deferral_curve(pw, pw, ps)))
    want = metrics.apgr(metrics.deferral_curve(soft_block(pw, ps), pw, ps))
    assert rows[CEILING_PREFIX + "soft-block"]["apgr"] == pytest.approx(want)
    sb = rows["soft-block"]
    assert sb["of_ceiling"] == pytest.approx((sb["apgr"] - 50) / (want - 50))


def test_paired_differences_are_consistent(result: dict[str, Any]) -> None:
    ds = result["pairs"][1]["datasets"]["gsm8k"]
    rows = ds["routers"]
    for d in ds["paired"]:
        assert d["diff"] == pytest.approx(rows[d["a"]]["apgr"] - rows[d["b"]]["apgr"])
        assert d["lo"] <= d["hi"] and 0 < d["p"] <= 1


def test_gain_target_by_hand() -> None:
    from firewall_routing.labels import Approximations

    from ..conftest import make_table

    t = make_table(["a", "b", "c"], np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 0.5]))
    # (1 − (pr_s − pr_w)) / 2: gain 1 -> 0 (strong first), gain −1 -> 1, gain 0 -> ½
    np.testing.assert_allclose(target_labels(t, GAIN, Approximations()), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(target_labels(t, "weak-pass-rate", Approximations()), [0.0, 1.0, 0.5])


def test_small_test_gap_is_excluded_not_an_error() -> None:
    """A zero test gap would make APGR undefined (MetricError): the dataset is marked instead."""
    from firewall_routing.experiment.results import RouterRun

    from ..conftest import make_table

    flat = make_table(["a", "b"], np.array([0.0, 1.0]), np.array([1.0, 0.0]))  # gap 0
    steep = make_table(["a", "b"], np.array([0.0, 0.5]), np.array([1.0, 0.5]))  # gap 0.5
    tables = {"main/gsm8k": steep, "main/mbpp": flat}
    runs = [RouterRun("x", "design", {k: [np.array([0.1, 0.9])] for k in tables})]
    runs.append(RouterRun(CEILING_PW, "ceiling", {k: [t.weak.pass_rate] for k, t in tables.items()}))
    runs.append(RouterRun(CEILING_PREFIX + "x", "ceiling", {k: [np.array([0.2, 0.3])] for k in tables}))
    out = evaluate_pair(runs, tables, n_boot=10, boot_seed=0, min_test_gap=0.05)
    assert "excluded" in out["mbpp"] and out["mbpp"]["gap"] == 0.0
    # the gain-1 query first: PGR rises linearly to 1 at α = ½, so the 11-point mean is 8/11
    assert out["gsm8k"]["routers"]["x"]["apgr"] == pytest.approx(100 * 8 / 11)
    res = across([{"label": "p", "datasets": out}], ["gsm8k", "mbpp"], ["x"])
    assert res["mbpp"] == {"n_pairs": 0, "excluded": ["p"], "mean": {}, "wins": {}}
    assert res["gsm8k"]["n_pairs"] == 1


def test_cli_help_lists_the_options() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", "sweep", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert r.returncode == 0
    for opt in ("--min-gap", "--router", "--seeds", "--bootstrap", "--baselines", "--out"):
        assert opt in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--datasets", "nope"], "dataset"),
        (["--designs", "nope"], "nope"),
        (["--router", "nope"], "unknown router"),
        (["--baselines", "nope"], "unknown router"),
        (["--seeds", "0"], "seeds"),
        (["--min-gap", "2"], "min_gap"),
        (["--bootstrap", "-1"], "n_boot"),
        (["--router-options", "[1]"], "JSON object"),
        (["--baseline-options", "{x"], "not valid JSON"),
        (["--greedy-approx", "x"], "greedy"),
        (["--knn-label", "x"], "label design"),
    ],
)
def test_bad_options_are_one_line(
    args: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through ``main()`` in-process (the same error handling as the installed command)."""
    from firewall_routing.cli import main

    monkeypatch.setattr(sys, "argv", ["firewall-routing", "sweep", "--out", str(tmp_path / "x"), *args])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # failed before any work


def test_no_pair_above_the_gap_is_a_clean_error(data_dir: Path, tmp_path: Path) -> None:
    from firewall_routing.errors import InputError

    with pytest.raises(InputError, match="no model pair"):
        run(_config(data_dir, min_gap=0.9), tmp_path)


def test_cli_end_to_end(data_dir: Path, tmp_path: Path, toy_encoder: ToyEncoder) -> None:
    from firewall_routing.cli import app

    out = tmp_path / "sw"
    r = CliRunner().invoke(
        app,
        [
            "sweep",
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
            "--designs",
            "soft-block,hard",
            "--router-options",
            '{"encoder": "toy", "prior": "none"}',
            "--baselines",
            "mf,knn",
            "--baseline-options",
            '{"mf": {"encoder": "toy", "epochs": 2}, "knn": {"encoder": "toy", "k": 3}}',
            "--knn-label",
            "soft-block",
            "--datasets",
            "gsm8k,mbpp",
            "--bootstrap",
            "30",
            "--max-pairs",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "wins-losses-ties" in r.output and "wall time" in r.output
    res = json.loads((out / "results.json").read_text())
    assert res["n_pairs"] == 2 and res["config"]["datasets"] == ["gsm8k", "mbpp"]
    assert res["config"]["knn_label"] == "soft-block" and "knn" in res["contenders"]
    assert (out / "plots" / "sweep-apgr.png").stat().st_size > 10_000
