"""Cost tables (issue 22 item 2): reading, per-query costs, provenance, every bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.costs import SHIPPED, load_costs, shipped_costs
from firewall_routing.errors import InputError
from firewall_routing.outcomes import load_table

from .test_cli import run_installed

DATA = Path(__file__).resolve().parents[1] / "data"
HEAD = "model,relative_cost,input_per_1m,output_per_1m,source,date,note\n"


def _costs(tmp_path: Path, body: str, name: str = "c.csv") -> Path:
    p = tmp_path / name
    p.write_text(HEAD + body)
    return p


def test_relative_costs_per_query(tmp_path: Path) -> None:
    p = _costs(tmp_path, "small,1,,,sizes,2026-01-02,\nbig,10,,,sizes,2026-01-02,a guess\n")
    c = load_costs(p)
    assert c.kind == "relative" and c.model_names == ("small", "big")
    np.testing.assert_array_equal(c.query_costs(["big", "small"], 3), [[10, 1]] * 3)
    assert c.costs[1].note == "a guess"
    assert c.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert c.describe() == f"c.csv (relative cost per query; sha256 {c.sha256[:12]})"
    assert c.provenance() == {
        "path": str(p),
        "sha256": c.sha256,
        "kind": "relative",
        "sources": ["sizes"],
        "dates": ["2026-01-02"],
    }


def test_token_prices_per_query(tmp_path: Path) -> None:
    p = _costs(tmp_path, "mini,,0.15,0.60,list price,2025-06-01,\nbig,,2.5,10,list price,2025-06-01,\n")
    c = load_costs(p)
    inp = np.array([1000.0, 2_000_000.0])
    out = np.array([[100.0, 200.0], [0.0, 1_000_000.0]])  # per model
    got = c.query_costs(["mini", "big"], 2, inp, out)
    # hand-computed: tokens × price / 1e6, input + output
    want = [[1000 * 0.15 / 1e6 + 100 * 0.6 / 1e6, 1000 * 2.5 / 1e6 + 200 * 10 / 1e6], [0.3, 5.0 + 10.0]]
    np.testing.assert_allclose(got, want)
    with pytest.raises(InputError, match="need input and output token counts"):
        c.query_costs(["mini"], 2)
    with pytest.raises(InputError, match="finite and ≥ 0"):
        c.query_costs(["mini"], 1, np.array([-1.0]), np.array([1.0]))


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ("a,-1,,,s,2026-01-01,\n", "model 'a': cost must be a finite number ≥ 0, got -1.0"),
        ("a,nan,,,s,2026-01-01,\n", "finite number"),
        ("a,inf,,,s,2026-01-01,\n", "finite number"),
        ("a,,,,s,2026-01-01,\n", "cost is missing"),
        ("a,,1.0,,s,2026-01-01,\n", "cost is missing"),
        ("a,1,1,1,s,2026-01-01,\n", "not both"),
        ("a,1,,,,2026-01-01,\n", "field 'source'"),
        ("a,1,,,s,,\n", "field 'date'"),
        ("a,1,,,s,yesterday,\n", "field 'date'"),
        ("a,x,,,s,2026-01-01,\n", "field 'relative_cost'"),
        (
            "a,1,,,s,2026-01-01,\nb,2,,,s,2026-01-01,\na,3,,,s,2026-01-01,\n",
            "model 'a' appears twice (first on line 2)",
        ),
        ("a,1,,,s,2026-01-01,\nb,,1,2,s,2026-01-01,\n", "use one kind per table"),
    ],
)
def test_bad_cost_rows_are_one_line(tmp_path: Path, body: str, expect: str) -> None:
    p = _costs(tmp_path, body)
    with pytest.raises(InputError) as e:
        load_costs(p)
    assert str(p) in str(e.value) and expect in str(e.value) and "\n" not in str(e.value)


def test_bad_cost_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_costs(tmp_path / "none.csv")
    (tmp_path / "c.yaml").write_text("a: 1\n")
    with pytest.raises(InputError, match=r"is a \.csv file"):
        load_costs(tmp_path / "c.yaml")
    (tmp_path / "h.csv").write_text("model,cost\na,1\n")
    with pytest.raises(InputError, match="columns must be model, relative_cost"):
        load_costs(tmp_path / "h.csv")
    (tmp_path / "e.csv").write_text(HEAD)
    with pytest.raises(InputError, match="no rows"):
        load_costs(tmp_path / "e.csv")


def test_costs_must_match_the_outcome_models(tmp_path: Path) -> None:
    c = load_costs(_costs(tmp_path, "a,1,,,s,2026-01-01,\nb,2,,,s,2026-01-01,\n"))
    c.check_models(["b", "a"])
    with pytest.raises(InputError, match=r"model 'b' has a cost but is not in t.jsonl"):
        c.check_models(["a"], "t.jsonl")
    with pytest.raises(InputError, match=r"model 'z' of t.jsonl has no cost"):
        c.check_models(["a", "b", "z"], "t.jsonl")
    c.require(["a"])  # a subset needs only its own costs


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_costs_price_exactly_their_tables(name: str) -> None:
    files = {
        "mmlu-pro": "mmlu-pro/outcomes.jsonl",
        "routerdc": "routerdc/gsm8k-test.json",
        "alpacaeval": "alpacaeval/judged.jsonl",
    }
    c = load_costs(shipped_costs(name))
    t = load_table(DATA / files[name])
    c.check_models(t.model_names)
    assert all(x.source and x.date for x in c.costs)
    if name == "mmlu-pro":
        rel = dict(zip(c.model_names, c.query_costs(c.model_names, 1)[0], strict=True))
        assert rel["gemini-1.5-pro-002"] == 200 and rel["Meta-Llama-3_1-8B-Instruct"] == 8


# --------------------------------------------------------------------------- the installed script


def _one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _outcomes(tmp_path: Path) -> Path:
    p = tmp_path / "t.jsonl"
    rows = [
        {"prompt": f"q{i}", "models": {"a": {"pass_rate": 0.5}, "b": {"pass_rate": 1.0}}} for i in range(3)
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_cli_costs_prints_the_table_and_its_hash(tmp_path: Path) -> None:
    p = _costs(tmp_path, "a,1,,,s,2026-01-01,\nb,2,,,s,2026-01-01,guess\n")
    r = run_installed("costs", str(p), "--outcomes", str(_outcomes(tmp_path)))
    assert r.returncode == 0, r.stderr
    sha = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    assert f"sha256 {sha}" in r.stdout and "pass rate 1.000" in r.stdout and "[guess]" in r.stdout
    r = run_installed("costs", "mmlu-pro")
    assert r.returncode == 0 and "gemini-1.5-pro-002" in r.stdout


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            "a,1,,,s,2026-01-01,\nb,2,,,s,2026-01-01,\nc,3,,,s,2026-01-01,\n",
            ("model 'c' has a cost but is not in",),
        ),
        ("a,1,,,s,2026-01-01,\n", ("model 'b' of", "has no cost")),
        ("a,-2,,,s,2026-01-01,\nb,1,,,s,2026-01-01,\n", ("model 'a'", "≥ 0")),
        ("a,,,,s,2026-01-01,\nb,1,,,s,2026-01-01,\n", ("model 'a'", "cost is missing")),
        ("a,1,,,s,2026-01-01,\na,1,,,s,2026-01-01,\n", ("model 'a' appears twice",)),
    ],
)
def test_cli_bad_costs_one_line_exit_2(tmp_path: Path, body: str, needles: tuple[str, ...]) -> None:
    p = _costs(tmp_path, body)
    _one_line_exit_2(run_installed("costs", str(p), "--outcomes", str(_outcomes(tmp_path))), str(p), *needles)
