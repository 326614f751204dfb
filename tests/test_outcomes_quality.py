"""Real-valued quality in the generic format (issue 14): loading, pass rates, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import load_generic, load_table, write_generic


def _write(tmp_path: Path, rows: list[dict[str, object]], name: str = "q.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_quality_only_pass_rate_from_threshold(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            {"prompt": "a", "weak_quality": [0.2, 0.6, 0.5], "strong_quality": [1.0, 0.4, 0.9]},
            {"prompt": "b", "weak_quality": [0.0, 0.1, 0.3], "strong_quality": [0.5, 0.5, 0.49]},
        ],
    )
    t = load_generic(p)
    # threshold 0.5: weak [0,1,1] -> 2/3, [0,0,0] -> 0 ; strong [1,0,1] -> 2/3, [1,1,0] -> 2/3
    np.testing.assert_allclose(t.weak.pass_rate, [2 / 3, 0.0])
    np.testing.assert_allclose(t.strong.pass_rate, [2 / 3, 2 / 3])
    assert t.weak.samples is not None and t.weak.samples[0].tolist() == [0.0, 1.0, 1.0]
    assert t.weak.quality is not None and t.weak.quality[1].tolist() == [0.0, 0.1, 0.3]
    assert t.weak.n.tolist() == [3, 3]
    assert any("quality ≥ 0.5" in n for n in t.notes)
    # another threshold, e.g. for a different scale
    t2 = load_generic(p, quality_threshold=0.3)
    np.testing.assert_allclose(t2.weak.pass_rate, [2 / 3, 1 / 3])
    assert any("quality ≥ 0.3" in n for n in t2.notes)


def test_correctness_wins_over_quality(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            {
                "prompt": "a",
                "weak_samples": [1, 0],
                "strong_samples": [1, 1],
                "weak_quality": [0.1, 0.0],
                "strong_quality": [0.2, 0.3],
                "weak_greedy": True,
                "weak_greedy_quality": 0.05,
                "strong_greedy_quality": 0.9,
            }
        ],
    )
    t = load_generic(p)
    assert t.weak.pass_rate.tolist() == [0.5] and t.strong.pass_rate.tolist() == [1.0]
    # weak greedy correctness given (True) wins over its greedy quality (0.05 < 0.5)
    assert t.weak.greedy.tolist() == [1.0]
    assert t.weak.greedy_quality is not None and t.weak.greedy_quality.tolist() == [0.05]
    # pass rates came from correctness: no note about the threshold
    assert not any("pass rate from quality" in n for n in t.notes)


def test_greedy_from_greedy_quality_is_noted(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [{"prompt": "a", "weak_quality": [0.7], "strong_quality": [0.2], "strong_greedy_quality": 0.9}],
    )
    t = load_generic(p)
    assert t.strong.greedy.tolist() == [1.0]
    assert np.isnan(t.weak.greedy[0])
    assert any("greedy correctness from greedy quality" in n for n in t.notes)


def test_round_trip_keeps_quality(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": "a",
            "weak_samples": [1, 0],
            "strong_samples": [1, 1],
            "weak_quality": [0.75, -2.5],
            "strong_quality": [1.0, 0.25],
            "weak_greedy_quality": 0.5,
            "strong_greedy_quality": -1.0,
        }
    ]
    t = load_generic(_write(tmp_path, rows))
    for suffix in (".jsonl", ".csv"):
        out = tmp_path / f"out{suffix}"
        write_generic(t, out)
        back = load_table(out)
        assert back.weak.quality is not None and back.weak.quality[0].tolist() == [0.75, -2.5]
        assert back.strong.greedy_quality is not None and back.strong.greedy_quality.tolist() == [-1.0]
        assert back.weak.pass_rate.tolist() == [0.5]


def test_csv_quality_columns(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text("prompt,weak_quality,strong_quality\nhello,0.25;0.75,1.0;0.0\n")
    t = load_table(p)
    assert t.weak.quality is not None and t.weak.quality[0].tolist() == [0.25, 0.75]
    assert t.weak.pass_rate.tolist() == [0.5] and t.strong.pass_rate.tolist() == [0.5]


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"weak_quality": [0.1, float("nan")], "strong_quality": [0.2, 0.3]}, "weak_quality", "finite"),
        ({"weak_quality": [0.1, float("inf")], "strong_quality": [0.2, 0.3]}, "weak_quality", "finite"),
        ({"weak_quality": [], "strong_quality": [0.2]}, "weak_quality", "empty"),
        ({"weak_quality": ["x"], "strong_quality": [0.2]}, "weak_quality", ""),
        ({"weak_quality": 0.3, "strong_quality": [0.2]}, "weak_quality", ""),
        (
            {"weak_quality": [0.1], "strong_quality": [0.2], "strong_greedy_quality": float("nan")},
            "strong_greedy_quality",
            "finite",
        ),
        ({"strong_quality": [0.2]}, "weak_pass_rate", "required field is missing"),
    ],
)
def test_bad_quality_rows_are_one_line(
    tmp_path: Path, row: dict[str, object], field: str, message: str
) -> None:
    p = _write(
        tmp_path, [{"prompt": "ok", "weak_quality": [0.1], "strong_quality": [0.2]}, {"prompt": "x", **row}]
    )
    with pytest.raises(InputError) as e:
        load_generic(p)
    text = str(e.value)
    assert f"{p}:2" in text and f"field '{field}" in text and message in text
    assert "\n" not in text


def test_length_mismatch_with_samples(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            {
                "prompt": "x",
                "weak_samples": [1, 0],
                "strong_samples": [1],
                "weak_quality": [0.1],
                "strong_quality": [0.2],
            }
        ],
    )
    with pytest.raises(InputError, match=r":1: 1 weak_quality scores but 2 weak_samples"):
        load_generic(p)
    p2 = _write(
        tmp_path, [{"prompt": "x", "weak_n": 3, "weak_quality": [0.1], "strong_quality": [0.2]}], "n.jsonl"
    )
    with pytest.raises(InputError, match=r"weak_n=3 but 1 weak_quality"):
        load_generic(p2)


def test_quality_on_some_rows_only(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            {
                "prompt": "a",
                "weak_pass_rate": 0.5,
                "strong_pass_rate": 1,
                "weak_quality": [0.1],
                "strong_quality": [0.2],
            },
            {"prompt": "b", "weak_pass_rate": 0.5, "strong_pass_rate": 1},
        ],
    )
    with pytest.raises(InputError) as e:
        load_generic(p)
    assert f"{p}:2 field 'weak_quality'" in str(e.value) and "line 1" in str(e.value)


def test_quality_of_one_model_only(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "a", "weak_quality": [0.1], "strong_pass_rate": 1.0}])
    with pytest.raises(InputError, match="strong_quality"):
        load_generic(p)


def test_bad_threshold(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "a", "weak_quality": [0.1], "strong_quality": [0.2]}])
    with pytest.raises(InputError, match="quality-threshold"):
        load_generic(p, quality_threshold=float("nan"))
