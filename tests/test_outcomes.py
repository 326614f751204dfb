"""Loaders: real shipped files, the generic format round trip, and every malformed case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import (
    concat,
    load_generic,
    load_routellm_csv,
    load_routerdc,
    load_table,
    write_generic,
)

DATA = Path(__file__).resolve().parents[1] / "data"
W, S = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


def test_routerdc_real_file() -> None:
    t = load_routerdc(DATA / "routerdc" / "gsm8k-test.json", W, S)
    assert len(t) == 1319
    # data/README.md: zephyr 0.33, dolphin-2.9 0.70 on GSM8K test
    assert t.weak.pass_rate.mean() == pytest.approx(0.33, abs=0.005)
    assert t.strong.pass_rate.mean() == pytest.approx(0.70, abs=0.005)
    assert (t.weak.n == 10).all()
    assert not t.weak.has_greedy and not t.has_margin


def test_humaneval_concat_is_164() -> None:
    parts = [
        load_routerdc(DATA / "routerdc" / f, W, S) for f in ("humaneval_train.json", "humaneval_test.json")
    ]
    t = concat(parts)
    assert len(t) == 164 and len(set(t.ids)) == 164


def test_routerdc_unknown_model_lists_names(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_routerdc(DATA / "routerdc" / "mbpp.json", "nope/model", S)
    msg = str(e.value)
    assert "mbpp.json:1" in msg and "unknown model 'nope/model'" in msg and W in msg


def test_routellm_csv() -> None:
    t = load_routellm_csv(DATA / "routellm" / "gsm8k_responses.csv")
    assert len(t) == 1319
    assert t.weak.has_greedy and t.strong.has_greedy
    assert set(np.unique(t.weak.pass_rate)) <= {0.0, 1.0}
    assert t.strong.pass_rate.mean() > t.weak.pass_rate.mean()


@pytest.mark.parametrize(
    ("content", "suffix", "expect"),
    [
        ("", ".jsonl", "file is empty"),
        ('[{"question": "q", ', ".json", "invalid JSON"),
        ('[{"question": "q", "scores": {"a": 0.5, "b": 1.5}}]', ".json", "outside [0, 1]"),
        ('[{"question": "q"}]', ".json", "field 'scores'"),
        ('{"prompt": "x", "weak_pass_rate": 0.5}\n', ".jsonl", "field 'strong_pass_rate'"),
        ('{"prompt": "x", "weak_pass_rate": 0.5, "strong_pass_rate": 2}\n', ".jsonl", "outside [0, 1]"),
        (
            '{"prompt": "x", "weak_pass_rate": 0.5, "strong_pass_rate": "abc"}\n',
            ".jsonl",
            "field 'strong_pass_rate'",
        ),
        ('{"prompt": "", "weak_pass_rate": 0.5, "strong_pass_rate": 0.5}\n', ".jsonl", "empty"),
        (
            '{"prompt": "a", "weak_pass_rate": 0.5, "strong_pass_rate": 0.5}\nnot json\n',
            ".jsonl",
            ":2: invalid JSON",
        ),
        ("prompt,weak_pass_rate\nx,0.5\n", ".csv", "field 'strong_pass_rate'"),
        (
            "prompt,weak_pass_rate,strong_pass_rate\nx,0.5,0.7\ny,0.5,-1\n",
            ".csv",
            ":3 field 'strong_pass_rate'",
        ),
        ("prompt,weak_pass_rate,strong_pass_rate\n", ".csv", "no rows"),
        (
            '{"prompt": "x", "weak_pass_rate": 0.5, "strong_pass_rate": 0.5, "weak_samples": [1, 1]}\n',
            ".jsonl",
            "mean of weak_samples",
        ),
    ],
)
def test_malformed_files_name_file_row_field(tmp_path: Path, content: str, suffix: str, expect: str) -> None:
    p = tmp_path / f"bad{suffix}"
    p.write_text(content)
    with pytest.raises(InputError) as e:
        load_table(p, "a", "b")
    assert str(p) in str(e.value)
    assert expect in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="file not found"):
        load_table("/nonexistent/x.jsonl")


def test_routerdc_needs_model_names() -> None:
    with pytest.raises(InputError, match="--weak and --strong"):
        load_table(DATA / "routerdc" / "mbpp.json")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_generic_round_trip(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    rows = [
        {
            "id": "a",
            "prompt": "What is 2+2?",
            "weak_pass_rate": 0.5,
            "strong_pass_rate": 1.0,
            "weak_n": 2,
            "strong_n": 2,
            "weak_greedy": True,
            "strong_greedy": True,
            "margin": 0.25,
            "weak_samples": [1, 0],
            "strong_samples": [1, 1],
            "weak_model": "w",
            "strong_model": "s",
        },
        {
            "id": "b",
            "prompt": 'Say, "hi"\nplease',
            "weak_pass_rate": 0.0,
            "strong_pass_rate": 0.5,
            "weak_n": 2,
            "strong_n": 2,
            "weak_greedy": False,
            "strong_greedy": True,
            "margin": 0.9,
            "weak_samples": [0, 0],
            "strong_samples": [0, 1],
            "weak_model": "w",
            "strong_model": "s",
        },
    ]
    if suffix == ".jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        t0 = load_generic(_write_jsonl(tmp_path / "tmp.jsonl", rows))
        write_generic(t0, src)
    t = load_generic(src)
    assert t.ids == ("a", "b")
    assert t.prompts[1] == 'Say, "hi"\nplease'
    assert t.weak.name == "w" and t.strong.name == "s"
    np.testing.assert_allclose(t.margin, [0.25, 0.9])
    np.testing.assert_allclose(t.weak.greedy, [1.0, 0.0])
    assert t.weak.samples is not None and t.weak.samples[0].tolist() == [1.0, 0.0]
    out = tmp_path / f"out{suffix}"
    write_generic(t, out)
    t2 = load_generic(out)
    assert t2.prompts == t.prompts and t2.ids == t.ids
    np.testing.assert_allclose(t2.strong.pass_rate, t.strong.pass_rate)
    assert t2.strong.samples is not None and t2.strong.samples[1].tolist() == [0.0, 1.0]


def _write_jsonl(p: Path, rows: list[dict[str, object]]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_generic_minimal_fields(tmp_path: Path) -> None:
    p = _write_jsonl(tmp_path / "m.jsonl", [{"prompt": "x", "weak_pass_rate": 0.2, "strong_pass_rate": 0.8}])
    t = load_generic(p)
    assert np.isnan(t.weak.greedy).all() and np.isnan(t.margin).all() and t.weak.samples is None


def test_generic_duplicate_ids(tmp_path: Path) -> None:
    row = {"id": "a", "prompt": "x", "weak_pass_rate": 0.2, "strong_pass_rate": 0.8}
    with pytest.raises(InputError, match="duplicate id 'a'"):
        load_generic(_write_jsonl(tmp_path / "d.jsonl", [row, row]))
