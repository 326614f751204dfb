"""The N-model JSONL/CSV format: reading, writing, round trips, and the CLI on N-model files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import (
    ModelOutcomes,
    OutcomeTable,
    detect_format,
    load_generic,
    load_multi,
    load_table,
    write_generic,
    write_multi,
)

from .test_cli import run_installed

NAMES = ("meta-llama/Llama-3.1-8B", "gpt-4o.mini", "qwen2.5:7b")


def _jsonl(p: Path, rows: list[dict[str, Any]]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _rows() -> list[dict[str, Any]]:
    a, b, c = NAMES
    return [
        {
            "prompt": "What is 2+2?",
            "id": "x1",
            "models": {
                a: {"samples": [1, 0], "greedy": True, "margin": 0.25},
                b: {"pass_rate": 1.0, "n": 10},
                c: {"quality": [0.7, 0.2]},
            },
        },
        {
            "prompt": "Capital of France?",
            "models": {a: {"pass_rate": 0.0}, b: None, c: {"quality": [0.9, 0.8]}},
        },
    ]


def test_multi_jsonl_reads_every_field(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "m.jsonl", _rows())
    assert detect_format(p) == "multi"
    t = load_multi(p)
    a, b, c = (t.model(n) for n in NAMES)
    assert t.model_names == NAMES and t.ids == ("x1", "m/1")
    np.testing.assert_array_equal(a.pass_rate, [0.5, 0.0])
    assert a.greedy[0] == 1.0 and np.isnan(a.greedy[1]) and a.margin is not None and a.margin[0] == 0.25
    assert a.samples is None  # row 2 has a pass rate only
    assert b.pass_rate[0] == 1.0 and np.isnan(b.pass_rate[1]) and b.n.tolist() == [10, 0]
    np.testing.assert_array_equal(c.pass_rate, [0.5, 1.0])  # quality ≥ 0.5
    assert c.quality is not None and c.quality[1].tolist() == [0.9, 0.8]
    assert any("pass rates from quality ≥ 0.5 for 1 of 3 models" in n for n in t.notes)


def test_multi_csv_columns_survive_slashes_dots_dashes_and_colons(tmp_path: Path) -> None:
    a, b, c = NAMES
    p = tmp_path / "m.csv"
    p.write_text(
        f"id,prompt,pass_rate:{a},samples:{b},quality:{c},note\n"
        f"1,hello,0.5,1;0;1,0.2;0.9,x\n"
        f'2,"a, b",,0;0,0.6,y\n'
    )
    assert detect_format(p) == "multi"
    t = load_table(p, a, b, drop_incomplete=True)
    assert t.weak.name == a and t.ids == ("1",)  # row 2 has no outcome of a: dropped, noted
    full = load_multi(p)
    assert full.model_names == NAMES
    assert np.isnan(full.model(a).pass_rate[1])
    b_samples = full.model(b).samples
    assert b_samples is not None and b_samples[0].tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_array_equal(full.model(c).pass_rate, [0.5, 1.0])


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda r: r["models"][NAMES[0]].update(pass_rate=1.5), f"field 'models.{NAMES[0]}.pass_rate'"),
        (lambda r: r["models"].update({NAMES[1]: {}}), "pass_rate is missing: give it, samples or quality"),
        (lambda r: r["models"][NAMES[0]].update(samples=[1, 1]), "≠ mean of samples"),
        (lambda r: r.update(models={}), "no models on this row"),
        (lambda r: r.update(models={" ": {"pass_rate": 1}}), "a model name is empty"),
        (lambda r: r.update(prompt=""), "prompt is empty"),
    ],
)
def test_multi_bad_rows_are_one_line(tmp_path: Path, mutate: Any, expect: str) -> None:
    rows = _rows()
    mutate(rows[1])
    p = _jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_multi(p)
    assert f"{p}:2" in str(e.value) and expect in str(e.value) and "\n" not in str(e.value)


def test_multi_duplicates_are_errors(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "x", "models": {"a": {"pass_rate": 1}, "a": {"pass_rate": 0}}}\n')
    with pytest.raises(InputError, match=r"d.jsonl:1: key 'a' appears twice"):
        load_multi(p)
    c = tmp_path / "d.csv"
    c.write_text("prompt,pass_rate:a,pass_rate:a\nx,1,0\n")
    with pytest.raises(InputError, match=r"column 'pass_rate:a' appears twice"):
        load_multi(c)
    ids = _jsonl(tmp_path / "i.jsonl", [{"prompt": "x", "id": "1", "models": {"a": {"pass_rate": 1}}}] * 2)
    with pytest.raises(InputError, match="duplicate id '1'"):
        load_multi(ids)


def test_quality_on_some_rows_of_a_model_only(tmp_path: Path) -> None:
    rows = [
        {"prompt": "x", "models": {"a": {"pass_rate": 1, "quality": [0.9]}}},
        {"prompt": "y", "models": {"a": None}},  # no outcome: does not count
        {"prompt": "z", "models": {"a": {"pass_rate": 0}}},
    ]
    with pytest.raises(InputError) as e:
        load_multi(_jsonl(tmp_path / "q.jsonl", rows))
    assert ":3 field 'models.a.quality'" in str(e.value) and "line 1" in str(e.value)


# --------------------------------------------------------------------------- writer


def test_pair_file_as_multi_is_the_same_pair(tmp_path: Path) -> None:
    """The pair format and the N-model format are one table: writing a pair file as N-model
    and choosing the pair back gives the same arrays."""
    rows = [
        {
            "prompt": "q1",
            "weak_model": "w",
            "strong_model": "s",
            "weak_samples": [1, 0],
            "strong_samples": [1, 1],
            "weak_quality": [0.6, 0.1],
            "strong_quality": [0.8, 0.9],
            "weak_greedy": True,
            "margin": 0.5,
        },
        {
            "prompt": "q2",
            "weak_model": "w",
            "strong_model": "s",
            "weak_pass_rate": 0.0,
            "strong_pass_rate": 0.5,
        },
    ]
    pair = load_generic(_jsonl(tmp_path / "p.jsonl", [rows[0], rows[0] | {"prompt": "q2", "id": "b"}]))
    for suffix in (".jsonl", ".csv"):
        write_multi(pair, tmp_path / f"m{suffix}")
        back = load_table(tmp_path / f"m{suffix}", "w", "s")
        _assert_same(back, pair)
    write_generic(back, tmp_path / "again.jsonl")
    _assert_same(load_generic(tmp_path / "again.jsonl"), pair)


def _same_array(x: Any, y: Any) -> None:
    if x is None or y is None:
        assert x is None and y is None
        return
    np.testing.assert_array_equal(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def _same_model(a: ModelOutcomes, b: ModelOutcomes) -> None:
    assert a.name == b.name
    for attr in ("pass_rate", "n", "greedy", "greedy_quality", "margin"):
        got, want = getattr(a, attr), getattr(b, attr)
        if got is None and want is not None and np.isnan(want).all():
            continue  # an all-NaN column is written as nothing and read back as None
        _same_array(got, want)
    for attr in ("samples", "quality"):
        got, want = getattr(a, attr), getattr(b, attr)
        assert (got is None) == (want is None), attr
        for g, w in zip(got or (), want or (), strict=True):
            _same_array(g, w)


def _assert_same(a: OutcomeTable, b: OutcomeTable) -> None:
    assert a.ids == b.ids and a.prompts == b.prompts and a.benchmark == b.benchmark
    assert a.model_names == b.model_names
    for x, y in zip(a.models, b.models, strict=True):
        _same_model(x, y)


def _tables() -> Any:
    """Hypothesis strategy: small N-model tables with missing outcomes and awkward names."""
    from hypothesis import strategies as st

    name = st.text(alphabet=st.sampled_from("abcXYZ019/.-:_ @"), min_size=1, max_size=8).filter(
        lambda s: s.strip() == s and s.strip()
    )
    text = st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(['"', ",", ";", "\n"]),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s.strip() != "")

    @st.composite
    def table(draw: Any) -> OutcomeTable:
        names = draw(st.lists(name, min_size=1, max_size=4, unique=True))
        rows = draw(st.integers(1, 5))
        models = []
        for m in names:
            kind = draw(st.sampled_from(["rate", "samples", "quality"]))
            present = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
            pr, n, greedy, samples, quality = [], [], [], [], []
            for here in present:
                k = draw(st.integers(1, 4))
                s = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=k, max_size=k)))
                q = np.array(draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=k, max_size=k)))
                if kind == "quality":
                    s = (q >= 0.5).astype(float)
                if not here:
                    s, q = np.array([]), np.array([])
                pr.append(float(s.mean()) if here else np.nan)
                n.append(len(s) if kind != "rate" and here else (draw(st.integers(1, 9)) if here else 0))
                greedy.append(draw(st.sampled_from([0.0, 1.0, np.nan])) if here else np.nan)
                samples.append(s)
                quality.append(q)
            margin = np.array([draw(st.floats(0, 1)) if h else np.nan for h in present])
            models.append(
                ModelOutcomes(
                    m,
                    np.array(pr),
                    np.array(n, dtype=np.int64),
                    np.array(greedy),
                    tuple(samples) if kind != "rate" and any(present) else None,
                    tuple(quality) if kind == "quality" and any(present) else None,
                    None,
                    margin,
                )
            )
        prompts = draw(st.lists(text, min_size=rows, max_size=rows))
        ids = tuple(f"id{i}" for i in range(rows))
        return OutcomeTable(
            ids, tuple(prompts), tuple(models), tuple(draw(st.lists(name, min_size=rows, max_size=rows)))
        )

    return table()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_writer_reader_round_trip(tmp_path: Path, suffix: str) -> None:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_tables())
    def check(t: OutcomeTable) -> None:
        p = tmp_path / f"rt{suffix}"
        write_multi(t, p)
        back = load_multi(p)
        _assert_same(back, t)

    check()


# --------------------------------------------------------------------------- the command line


def _three_models(tmp_path: Path, missing: bool = False) -> Path:
    rows: list[dict[str, Any]] = [
        {
            "prompt": f"question {i}",
            "models": {
                "small": {"pass_rate": i % 2 * 0.5},
                "mid": {"pass_rate": 0.5},
                "big": {"pass_rate": 1.0 if i % 3 else 0.5},
            },
        }
        for i in range(12)
    ]
    if missing:
        rows[4]["models"]["small"] = None
        rows[7]["models"].pop("small")
    return _jsonl(tmp_path / "three.jsonl", rows)


def _one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_chooses_the_pair_on_an_n_model_file(tmp_path: Path) -> None:
    f = _three_models(tmp_path)
    r = run_installed(
        "labels", str(f), "--weak", "small", "--strong", "big", "--out", str(tmp_path / "l.jsonl")
    )
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == 12
    _one_line_exit_2(
        run_installed("labels", str(f), "--out", str(tmp_path / "x.jsonl")),
        str(f),
        "holds 3 models",
        "--weak and --strong",
        "'small', 'mid', 'big'",
    )
    _one_line_exit_2(
        run_installed("evaluate", "random", str(f), "--weak", "small", "--strong", "huge"),
        "unknown model 'huge'",
        "'mid'",
    )


def test_cli_missing_outcome_stops_unless_dropped(tmp_path: Path) -> None:
    f = _three_models(tmp_path, missing=True)
    _one_line_exit_2(
        run_installed("evaluate", "random", str(f), "--weak", "small", "--strong", "big"),
        str(f),
        "model 'small' has no outcome on 2 of 12 rows",
        "row 5",
        "--drop-incomplete",
    )
    r = run_installed("evaluate", "random", str(f), "--weak", "mid", "--strong", "big")
    assert r.returncode == 0, r.stderr  # small's gaps do not matter to this pair
    r = run_installed("evaluate", "random", str(f), "--weak", "small", "--strong", "big", "--drop-incomplete")
    assert r.returncode == 0, r.stderr
    assert "note: dropped 2 of 12 rows" in r.stderr


def test_cli_duplicated_model_names(tmp_path: Path) -> None:
    dup_key = tmp_path / "k.jsonl"
    dup_key.write_text('{"prompt": "x", "models": {"a": {"pass_rate": 1}, "a": {"pass_rate": 0}}}\n')
    _one_line_exit_2(
        run_installed("labels", str(dup_key), "--out", str(tmp_path / "l")), "key 'a' appears twice"
    )
    dup_col = tmp_path / "c.csv"
    dup_col.write_text("prompt,pass_rate:a,pass_rate:a,pass_rate:b\nx,1,0,1\n")
    _one_line_exit_2(run_installed("labels", str(dup_col), "--out", str(tmp_path / "l")), "appears twice")
    pair = _jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": "x", "weak_model": "m", "strong_model": "m", "weak_pass_rate": 0, "strong_pass_rate": 1}],
    )
    _one_line_exit_2(
        run_installed("labels", str(pair), "--out", str(tmp_path / "l")), "both 'm'", "field 'strong_model'"
    )
