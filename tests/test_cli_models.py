"""``train --models`` / ``evaluate --costs``: the CLI on an N-model table (toy encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.outcomes import ModelOutcomes, OutcomeTable, write_multi

from .conftest import ToyEncoder


def _table(n: int = 40) -> OutcomeTable:
    """'hard' prompts: only the big model is right; easy ones: everyone is."""
    prompts = tuple(f"{'hard' if i % 2 else 'easy'} question {i}" for i in range(n))
    hard = np.array([i % 2 for i in range(n)], dtype=float)
    nan = np.full(n, np.nan)

    def model(name: str, pr: np.ndarray) -> ModelOutcomes:
        return ModelOutcomes(name, pr, np.ones(n, dtype=np.int64), pr.copy(), None, None, None, None)

    models = (model("small", 1 - hard), model("mid", 1 - hard), model("big", np.ones(n)))
    del nan
    return OutcomeTable(tuple(map(str, range(n))), prompts, models, ("toy",) * n)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "three.jsonl"
    write_multi(_table(), data)
    costs = tmp_path / "costs.csv"
    costs.write_text(
        "model,relative_cost,source,date\nsmall,1,test,2026-12-07\nmid,3,test,2026-12-07\nbig,10,test,2026-12-07\n"
    )
    return data, costs


def test_train_every_model_then_evaluate_the_quality_cost_table(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    data, costs = _files(tmp_path)
    out = tmp_path / "router"
    opts = json.dumps({"encoder": "toy", "k": 3})
    r = CliRunner().invoke(
        app,
        [
            "train",
            str(data),
            "--out",
            str(out),
            "--router",
            "knn",
            "--router-options",
            opts,
            "--models",
            "all",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "× 3 models" in r.output
    meta = json.loads((out / "router.json").read_text())["metadata"]
    assert meta["model_names"] == ["small", "mid", "big"]
    report = tmp_path / "eval.json"
    r = CliRunner().invoke(
        app,
        ["evaluate", str(out), str(data), "--costs", str(costs), "--bootstrap", "20", "--json", str(report)],
    )
    assert r.exit_code == 0, r.output
    assert "costs: costs.csv (relative cost per query" in r.output
    res = json.loads(report.read_text())
    assert res["best"] == "big" and res["cheapest"] == "small"
    assert res["oracle"] == pytest.approx({"cost": 5.5, "quality": 1.0})
    # the router separates hard from easy prompts: full quality at the oracle's cost
    assert res["policies"]["threshold"]["cost_at"]["1"] == pytest.approx(5.5)
    assert res["policies"]["threshold"]["area"] > 0
    assert res["cost_provenance"]["sha256"]
    # the same router still routes one pair through the two-model path
    r = CliRunner().invoke(
        app, ["evaluate", str(out), str(data), "--weak", "small", "--strong", "big", "--bootstrap", "0"]
    )
    assert r.exit_code == 0, r.output
    assert "APGR" in r.output


def test_evaluate_without_costs_and_pair_only_routers_are_one_line_errors(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app
    from firewall_routing.errors import InputError

    data, costs = _files(tmp_path)
    out = tmp_path / "router"
    opts = json.dumps({"encoder": "toy", "k": 3})
    CliRunner().invoke(
        app,
        [
            "train",
            str(data),
            "--out",
            str(out),
            "--router",
            "knn",
            "--router-options",
            opts,
            "--models",
            "all",
        ],
    )
    r = CliRunner().invoke(app, ["evaluate", str(out), str(data)])
    assert isinstance(r.exception, InputError) and "pass --costs" in str(r.exception)
    costs.write_text(
        "model,relative_cost,source,date\nsmall,1,test,2026-12-07\nbig,10,test,2026-12-07\nghost,2,test,2026-12-07\n"
    )
    r = CliRunner().invoke(app, ["evaluate", str(out), str(data), "--costs", str(costs)])
    assert isinstance(r.exception, InputError) and "model 'ghost' has a cost but is not in" in str(
        r.exception
    )
    costs.write_text("model,relative_cost,source,date\nsmall,1,test,2026-12-07\nbig,10,test,2026-12-07\n")
    r = CliRunner().invoke(app, ["evaluate", str(out), str(data), "--costs", str(costs)])
    assert isinstance(r.exception, InputError) and "model 'mid'" in str(r.exception)
    r = CliRunner().invoke(
        app, ["train", str(data), "--out", str(tmp_path / "x"), "--router", "random", "--models", "all"]
    )
    assert isinstance(r.exception, InputError) and "learns one pair only" in str(r.exception)
