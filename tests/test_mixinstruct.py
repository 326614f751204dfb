"""MixInstruct-shaped data (LLM-Blender release format) → an outcome table with quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import load_mixinstruct, load_table


def _cand(model: str, bart: float, method: str = "top_p_sampling", **extra: float) -> dict[str, Any]:
    return {
        "decoding_method": method,
        "model": model,
        "text": "…",
        "scores": {"bartscore": bart, "rouge1": 0.5, **extra},
    }


ITEMS: list[dict[str, Any]] = [
    {
        "id": "unified_chip2/1",
        "instruction": "",
        "input": "What is a skeptic?",
        "output": "ref",
        "candidates": [_cand("small", -3.0), _cand("large", -2.5), _cand("other", -1.0)],
    },
    {
        "id": "alpaca/2",
        "instruction": "Translate.",
        "input": "Bonjour",
        "output": "Hello",
        "candidates": [
            _cand("small", -2.0),
            _cand("small", -4.0),
            _cand("small", -2.2, "greedy"),
            _cand("large", -3.0),
            _cand("large", -2.0),
        ],
    },
]


def _write(tmp_path: Path, items: list[dict[str, Any]], suffix: str = ".json") -> Path:
    p = tmp_path / f"mix{suffix}"
    if suffix == ".json":
        p.write_text(json.dumps(items))
    else:
        p.write_text("".join(json.dumps(i) + "\n" for i in items))
    return p


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_loads_pair_and_metric(tmp_path: Path, suffix: str) -> None:
    t = load_table(_write(tmp_path, ITEMS, suffix), "small", "large", fmt="mixinstruct", metric="bartscore")
    assert t.ids == ("unified_chip2/1", "alpaca/2")
    assert t.prompts == ("What is a skeptic?", "Translate.\nBonjour")
    assert t.weak.name == "small" and t.strong.name == "large"
    assert t.weak.quality is not None and [q.tolist() for q in t.weak.quality] == [[-3.0], [-2.0, -4.0]]
    assert t.strong.quality is not None and [q.tolist() for q in t.strong.quality] == [[-2.5], [-3.0, -2.0]]
    # the greedy candidate is the greedy answer, not a sample
    assert t.weak.greedy_quality is not None and np.isnan(t.weak.greedy_quality[0])
    assert t.weak.greedy_quality[1] == -2.2
    # correctness only from the threshold, and the table says so
    assert any("quality ≥" in n for n in t.notes)


def test_hybrid_labels_on_mixinstruct(tmp_path: Path) -> None:
    t = load_mixinstruct(_write(tmp_path, ITEMS), "small", "large")
    # r_prob: row 1: -3 >= -2.5 no -> 0 ; row 2: pairs (-2 vs -3 yes, -2 vs -2 yes, -4 no, -4 no) -> 1/2
    assert compute_labels(t, "hybrid-prob").values.tolist() == [0.0, 0.5]
    # another metric: rouge1 ties everywhere -> every pair counts
    t2 = load_mixinstruct(_write(tmp_path, ITEMS), "small", "large", metric="rouge1")
    assert compute_labels(t2, "hybrid-prob").values.tolist() == [1.0, 1.0]


def test_threshold_sets_pass_rates(tmp_path: Path) -> None:
    t = load_mixinstruct(_write(tmp_path, ITEMS), "small", "large", quality_threshold=-2.75)
    assert t.weak.pass_rate.tolist() == [0.0, 0.5]
    assert t.strong.pass_rate.tolist() == [1.0, 0.5]


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (
            lambda it: it[1]["candidates"].pop(3) and it[1]["candidates"].pop(3),
            ":2 field 'candidates': no candidate of model 'large'",
        ),
        (
            lambda it: it[0]["candidates"][0]["scores"].pop("bartscore"),
            ":1 field 'candidates[0].scores.bartscore': no score 'bartscore'",
        ),
        (
            lambda it: it[0]["candidates"][1]["scores"].update(bartscore="x"),
            ":1 field 'candidates[1].scores.bartscore'",
        ),
        (lambda it: it[0]["candidates"][1]["scores"].update(bartscore=float("nan")), "finite"),
        (lambda it: it[0].pop("candidates"), ":1 field 'candidates': missing candidates"),
        (lambda it: it[0].update(input="", instruction=""), ":1 field 'prompt': prompt is empty"),
    ],
)
def test_bad_items_are_one_line(tmp_path: Path, mutate: Any, expect: str) -> None:
    items = json.loads(json.dumps(ITEMS))
    mutate(items)
    p = _write(tmp_path, items)
    with pytest.raises(InputError) as e:
        load_table(p, "small", "large", fmt="mixinstruct")
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_needs_models_and_format(tmp_path: Path) -> None:
    p = _write(tmp_path, ITEMS)
    with pytest.raises(InputError, match="'large', 'other', 'small'"):
        load_table(p, fmt="mixinstruct")
    with pytest.raises(InputError, match="--metric"):
        load_table(p, "small", "large", metric="bartscore")
    with pytest.raises(InputError, match="unknown format"):
        load_table(p, "small", "large", fmt="nope")  # type: ignore[arg-type]
