"""results.py: the results.json schema (keys, order and types), pinned on a small table, and
the one evaluation path shared by ``evaluate`` and ``reproduce``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing.experiment.config import ExperimentConfig
from firewall_routing.experiment.evaluation import evaluate_and_compare, evaluate_router
from firewall_routing.experiment.results import (
    ExperimentResults,
    FitRecord,
    ModelPair,
    RouterRun,
    TableInfo,
    TrainInfo,
)
from firewall_routing.outcomes import OutcomeTable
from firewall_routing.routers import make_router

from ..conftest import make_table

KEY = "main/gsm8k"
SUMMARY_KEYS = [
    "apgr",
    "apgr_area",
    "weak_pass_rate",
    "strong_pass_rate",
    "pass_rate@20",
    "pass_rate@50",
    "pass_rate@80",
    "cpt50",
    "cpt80",
    "quality_drop@cost_adv10",
    "quality_drop@cost_adv20",
    "quality_drop@cost_adv40",
]
CI_KEYS = ["apgr", "pass_rate@20", "pass_rate@50", "pass_rate@80"]
TAXONOMY = {"20", "50", "80"}
TAX_KEYS = ["weak_ok", "strong_only", "both_ok", "both_fail"]


def _table(n: int = 50) -> OutcomeTable:
    rng = np.random.default_rng(4)
    return make_table([f"q{i}" for i in range(n)], rng.random(n).round(1), np.clip(rng.random(n) + 0.3, 0, 1))


def _results(n_boot: int) -> ExperimentResults:
    t = _table()
    rng = np.random.default_rng(0)
    runs = [
        RouterRun("soft-block", "design", {KEY: [rng.random(len(t)), rng.random(len(t))]}),
        RouterRun("random", "baseline", {KEY: [rng.random(len(t))]}),
    ]
    runs[0].training = [FitRecord(0, None, None, 0.5), FitRecord(1, 3, 51.0, 0.25, [{"loss": 0.1}])]
    rows, comps = evaluate_and_compare(runs, {KEY: t}, n_boot)
    return ExperimentResults(
        config=ExperimentConfig(datasets=["gsm8k"]),
        data_dir=Path("data"),
        pairs={"main": ModelPair("w", "s")},
        router_seeds=2,
        router_seeded=True,
        train=TrainInfo(9, 1, "gsm8k-train"),
        tables={KEY: TableInfo(len(t), 0.4, 0.8, "toy")},
        label_notes={"soft-block": ["a note"]},
        label_params={"soft-block": {}},
        training={r.name: r.training for r in runs if r.training},
        results=rows,
        comparisons=comps,
        wall_seconds_before_report=1.5,
    )


def _check_summary(d: dict[str, Any]) -> None:
    assert list(d) == SUMMARY_KEYS
    assert all(type(v) is float for v in d.values())


def test_results_json_schema_is_pinned() -> None:
    """The exact keys, their order and value types of results.json (reproduce's output)."""
    out = json.loads(json.dumps(_results(n_boot=30).to_json()))  # what the file holds
    assert list(out) == [
        "config",
        "data_dir",
        "pairs",
        "router_seeds",
        "router_seeded",
        "train",
        "tables",
        "label_notes",
        "label_params",
        "training",
        "results",
        "comparisons",
        "wall_seconds_before_report",
    ]
    assert out["config"] == json.loads(ExperimentConfig(datasets=["gsm8k"]).model_dump_json())
    assert out["data_dir"] == "data" and out["pairs"] == {"main": {"weak": "w", "strong": "s"}}
    assert (out["router_seeds"], out["router_seeded"]) == (2, True)
    assert out["train"] == {"rows": 9, "val_rows": 1, "source": "gsm8k-train"}
    assert out["tables"] == {KEY: {"n": 50, "weak_pass_rate": 0.4, "strong_pass_rate": 0.8, "source": "toy"}}
    assert out["training"] == {
        "soft-block": [
            {"seed": 0, "best_epoch": None, "best_val_apgr": None, "seconds": 0.5, "epochs": []},
            {"seed": 1, "best_epoch": 3, "best_val_apgr": 51.0, "seconds": 0.25, "epochs": [{"loss": 0.1}]},
        ]
    }
    assert type(out["wall_seconds_before_report"]) is float
    assert len(out["results"]) == 2
    for row in out["results"]:
        assert list(row) == [
            "router",
            "kind",
            "pair",
            "dataset",
            "n_seeds",
            "mean",
            "std",
            "ci95",
            "per_seed",
            "taxonomy",
        ]
        assert (row["pair"], row["dataset"]) == ("main", "gsm8k")
        _check_summary(row["mean"])
        _check_summary(row["std"])
        assert len(row["per_seed"]) == row["n_seeds"]
        for s in row["per_seed"]:
            _check_summary(s)
        assert list(row["ci95"]) == CI_KEYS
        assert all(len(v) == 2 and all(type(x) is float for x in v) for v in row["ci95"].values())
        assert set(row["taxonomy"]) == TAXONOMY
        assert all(list(v) == TAX_KEYS for v in row["taxonomy"].values())
    assert [r["n_seeds"] for r in out["results"]] == [2, 1]
    comp = out["comparisons"][KEY]
    assert list(comp) == ["n_boot", "n_seeds", "groups", "apgr", "differences"]
    assert (comp["n_boot"], comp["n_seeds"], comp["groups"]) == (30, 2, [])
    assert list(comp["differences"][0]) == ["a", "b", "diff", "lo", "hi", "p", "separable"]


def test_no_bootstrap_writes_empty_ci_and_no_comparisons() -> None:
    out = _results(n_boot=0).to_json()
    assert all(r["ci95"] == {} for r in out["results"]) and out["comparisons"] == {}


def test_evaluate_and_reproduce_share_one_path() -> None:
    """``evaluate``'s numbers for one router equal ``reproduce``'s row for the same scores."""
    t = _table()
    router = make_router("oracle")
    ev = evaluate_router(router, t, n_boot=40).to_json()
    rows, _ = evaluate_and_compare(
        [RouterRun("oracle", "baseline", {KEY: [router.score_table(t)]})], {KEY: t}, 40
    )
    row = rows[0].to_json()
    assert list(ev) == ["router", "table", "n", "weak", "strong", "metrics", "ci95", "taxonomy"]
    assert ev["metrics"] == row["mean"] and ev["ci95"] == row["ci95"] and ev["taxonomy"] == row["taxonomy"]
    assert ev["n"] == 50 and ev["router"] == "oracle"


def _compare_module() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_results.py"
    spec = importlib.util.spec_from_file_location("compare_results", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_results_ignores_timing_only(tmp_path: Path) -> None:
    cmp = _compare_module()
    a = _results(n_boot=10).to_json()
    b = json.loads(json.dumps(a))
    b["wall_seconds_before_report"] = 99.0
    b["training"]["soft-block"][0]["seconds"] = 7.0
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert cmp.compare(tmp_path / "a.json", tmp_path / "b.json") == []
    b["results"][0]["mean"]["apgr"] += 1e-12
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert cmp.compare(tmp_path / "a.json", tmp_path / "b.json") == [
        f"$.results[0].mean.apgr: {a['results'][0]['mean']['apgr']!r} != {b['results'][0]['mean']['apgr']!r}"
    ]


def test_compare_results_ignores_named_sections_only(tmp_path: Path) -> None:
    cmp = _compare_module()
    a = _results(n_boot=10).to_json()
    b = {**json.loads(json.dumps(a)), "triviaqa": {"rows": []}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert cmp.compare(tmp_path / "a.json", tmp_path / "b.json") != []
    assert cmp.compare(tmp_path / "a.json", tmp_path / "b.json", frozenset({"triviaqa"})) == []
    assert cmp.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--ignore", "triviaqa"]) == 0
