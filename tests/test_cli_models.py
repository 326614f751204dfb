"""``train --models`` / ``evaluate --costs``: the CLI on an N-model table (toy encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

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


def _train_knn_on_every_model(data: Path, out: Path, *extra: str) -> Result:
    """``train --router knn --models all`` on the toy encoder (k = 3), through the CLI."""
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    opts = json.dumps({"encoder": "toy", "k": 3})
    args = ["train", str(data), "--out", str(out), "--router", "knn", "--router-options", opts]
    return CliRunner().invoke(app, [*args, "--models", "all", *extra])


def test_train_every_model_then_evaluate_the_quality_cost_table(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    data, costs = _files(tmp_path)
    out = tmp_path / "router"
    r = _train_knn_on_every_model(data, out)
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
    _train_knn_on_every_model(data, out)
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


def test_missing_outcomes_train_as_unknown_and_evaluate_asks_to_drop(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app
    from firewall_routing.errors import InputError

    t = _table()
    mid = t.model("mid")
    pr = mid.pass_rate.copy()
    pr[3] = np.nan  # no outcome of 'mid' on row 4: not a failure
    n = mid.n.copy()
    n[3] = 0
    holed = OutcomeTable(
        t.ids, t.prompts, (t.models[0], ModelOutcomes("mid", pr, n, pr.copy()), t.models[2]), t.benchmark
    )
    data = tmp_path / "holed.jsonl"
    write_multi(holed, data)
    _, costs = _files(tmp_path)
    out = tmp_path / "router"
    r = _train_knn_on_every_model(data, out, "--val-fraction", "0")
    assert r.exit_code == 0, r.output
    assert "40 queries × 3 models (pass-rate; 1 missing outcomes skipped)" in r.output
    r = CliRunner().invoke(app, ["evaluate", str(out), str(data), "--costs", str(costs), "--bootstrap", "0"])
    assert isinstance(r.exception, InputError)
    assert "model 'mid' has no outcome on 1 of 40 rows" in str(r.exception) and "--drop-incomplete" in str(
        r.exception
    )
    r = CliRunner().invoke(
        app, ["evaluate", str(out), str(data), "--costs", str(costs), "--bootstrap", "0", "--drop-incomplete"]
    )
    assert r.exit_code == 0, r.output
    assert "39 queries" in r.output
