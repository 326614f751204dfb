"""Loaders: real shipped files, the generic format round trip, and every malformed case."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

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
    assert "mbpp.json: " in msg and "unknown model 'nope/model'" in msg and W in msg


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
    """Without a pair the 7-model table loads; a pair command asking for .weak is told what to pass."""
    t = load_table(DATA / "routerdc" / "mbpp.json")
    assert len(t.models) == 7
    with pytest.raises(InputError, match="--weak and --strong"):
        _ = t.weak


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


# --------------------------------------------------------------------------- issue 12


def test_unknown_suffix_advice_names_no_missing_option(tmp_path: Path) -> None:
    """A .tsv used to be told to "pass --format", an option no command has."""
    p = tmp_path / "t.tsv"
    p.write_text("prompt\tweak_pass_rate\tstrong_pass_rate\nx\t0.5\t0.7\n")
    with pytest.raises(InputError) as e:
        load_table(p)
    msg = str(e.value)
    assert "--format" not in msg and ".csv" in msg and str(p) in msg


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_table(d)


@pytest.mark.parametrize(
    ("header", "field"),
    [("prompt,weak_pass_rate,strong_passrate", "strong_pass_rate"), ("promt,mistral,gpt4", "prompt")],
)
def test_missing_column_lists_columns_found(tmp_path: Path, header: str, field: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(header + "\nx,0.5,0.7\n")
    with pytest.raises(InputError) as e:
        load_table(p)
    msg = str(e.value)
    assert f"field '{field}'" in msg and "missing column" in msg
    for col in header.split(","):
        assert f"'{col}'" in msg


def _pair_file(tmp_path: Path, named: bool) -> Path:
    row: dict[str, object] = {"prompt": "x", "weak_pass_rate": 0.2, "strong_pass_rate": 0.8}
    if named:
        row |= {"weak_model": "gpt-4o-mini", "strong_model": "gpt-4o"}
    return _write_jsonl(tmp_path / f"named{named}.jsonl", [row])


def test_generic_weak_strong_must_match_named_models(tmp_path: Path) -> None:
    p = _pair_file(tmp_path, named=True)
    assert load_table(p, "gpt-4o-mini", "gpt-4o").strong.name == "gpt-4o"
    assert load_table(p, None, "gpt-4o").weak.name == "gpt-4o-mini"
    with pytest.raises(InputError) as e:
        load_table(p, "gpt-4o-mini", "foo")
    msg = str(e.value)
    assert "--strong 'foo'" in msg and "gpt-4o-mini" in msg and "'gpt-4o'" in msg


def test_generic_weak_strong_on_unnamed_file_says_so(tmp_path: Path) -> None:
    p = _pair_file(tmp_path, named=False)
    assert load_table(p).weak.name == "weak"
    with pytest.raises(InputError, match="does not name its models"):
        load_table(p, "gpt-4o-mini", "foo")


def test_deeply_nested_json_is_an_input_error(tmp_path: Path) -> None:
    for suffix in (".jsonl", ".json"):
        p = tmp_path / f"deep{suffix}"
        p.write_text("[" * 100_000 + "\n")
        with pytest.raises(InputError, match=r"nested too deeply|invalid JSON"):
            load_table(p, "a", "b")


def test_huge_sample_count_is_an_input_error(tmp_path: Path) -> None:
    row = {"prompt": "x", "weak_pass_rate": 0.2, "strong_pass_rate": 0.8, "weak_n": 10**30}
    with pytest.raises(InputError, match="field 'weak_n'"):
        load_table(_write_jsonl(tmp_path / "n.jsonl", [row]))


# --------------------------------------------------------------------------- fuzzing (hypothesis)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

_FIELDS = [
    "prompt",
    "weak_pass_rate",
    "strong_pass_rate",
    "id",
    "benchmark",
    "weak_n",
    "strong_n",
    "weak_greedy",
    "strong_greedy",
    "margin",
    "weak_samples",
    "strong_samples",
    "weak_model",
    "strong_model",
    "question",
    "scores",
    "a",
    "b",
]


Strategies = tuple[ModuleType, "SearchStrategy[Any]", "SearchStrategy[Any]", "SearchStrategy[Any]"]


def _fuzz_strategies() -> Strategies:
    """(hypothesis.strategies, any row, a row likely to load, any JSON value)."""
    from hypothesis import strategies as st

    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, 1, 0.0, 0.5, 1.0, "0", "1", "true", "", " "]),
        st.text(max_size=12),
    )
    value = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=4), inner, max_size=4),
        ),
        max_leaves=8,
    )
    key = st.sampled_from(_FIELDS) | st.text(max_size=6)
    row = st.dictionaries(key, value, max_size=8)
    # Mostly rows with the required fields present, so validation goes past the first check.
    rate = st.floats(0, 1) | st.sampled_from([0, 1, -0.1, 1.1]) | scalar
    count = st.integers(1, 12) | st.integers(-(2**70), 2**70) | scalar
    binary = st.lists(st.sampled_from([0, 1]), max_size=4) | value
    text = st.text(max_size=6) | value
    typed = {"weak_n": count, "strong_n": count, "weak_samples": binary, "strong_samples": binary}
    typed |= {k: text for k in ("id", "benchmark", "weak_model", "strong_model")}
    typed |= {"margin": rate, "weak_greedy": st.booleans() | value, "strong_greedy": st.booleans() | value}
    likely = st.fixed_dictionaries(
        {"prompt": st.text(min_size=1, max_size=8), "weak_pass_rate": rate, "strong_pass_rate": rate},
        optional={k: typed.get(k, value) for k in _FIELDS[3:14]},
    )
    return st, row, likely, value


def _check_loaded_or_input_error(p: Path, weak: str | None = None, strong: str | None = None) -> None:
    try:
        t = load_table(p, weak, strong)
    except InputError as e:
        assert e.path == str(p), e  # every error names the file ...
        assert "\n" not in str(e)  # ... on one line
        return
    assert len(t) >= 1 and len(t.ids) == len(set(t.ids))
    rates = t.pass_rate_matrix()
    assert ((rates >= 0) & (rates <= 1) | np.isnan(rates)).all()  # NaN = no outcome, never a failure
    if t.has_pair:  # a pair's rows are complete
        assert ((t.weak.pass_rate >= 0) & (t.weak.pass_rate <= 1)).all()
        assert ((t.strong.pass_rate >= 0) & (t.strong.pass_rate <= 1)).all()


def test_fuzz_generic_jsonl_loader() -> None:
    """Arbitrary JSONL rows give a table or an InputError naming the file, never another error."""
    import tempfile

    from hypothesis import HealthCheck, given, settings

    st, row, likely, _ = _fuzz_strategies()
    raw_line = st.text(max_size=20)
    line = st.one_of(
        likely.map(lambda r: json.dumps(r, allow_nan=True)),
        row.map(lambda r: json.dumps(r, allow_nan=True)),
        raw_line.filter(lambda s: "\n" not in s and "\r" not in s),
    )

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.jsonl"

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(line, min_size=0, max_size=4), st.sampled_from([None, "weak", "gpt"]))
        def check(lines: list[str], weak: str | None) -> None:
            p.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
            _check_loaded_or_input_error(p, weak, None)

        check()


def test_fuzz_csv_loaders() -> None:
    """Arbitrary CSV tables (generic and RouteLLM) give a table or a one-line InputError."""
    import csv
    import io
    import tempfile

    from hypothesis import HealthCheck, given, settings

    st, _, _, _ = _fuzz_strategies()
    cell = st.one_of(
        st.sampled_from(["", "0", "1", "0.5", "True", "False", "nan", "-1", "2", "1;0;1", "x", '"']),
        st.text(max_size=8),
    )
    header = st.lists(st.sampled_from(_FIELDS[:14]) | st.text(max_size=5), min_size=0, max_size=6)

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.csv"

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(header, st.lists(st.lists(cell, max_size=7), max_size=4), st.sampled_from([None, "a"]))
        def check(head: list[str], rows: list[list[str]], weak: str | None) -> None:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(head)
            w.writerows(rows)
            p.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
            _check_loaded_or_input_error(p, weak, "b" if weak else None)

        check()


def test_fuzz_routerdc_json_loader() -> None:
    """Arbitrary JSON documents as a RouterDC file: a table or a one-line InputError."""
    import tempfile

    from hypothesis import HealthCheck, given, settings

    st, _, _, value = _fuzz_strategies()
    item = st.fixed_dictionaries(
        {
            "question": st.text(min_size=1, max_size=6) | value,
            "scores": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0, 1) | value) | value,
        }
    )
    doc = st.one_of(st.lists(item, max_size=4), value)

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.json"

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(doc, st.sampled_from([(None, None), ("a", "b"), ("a", None)]))
        def check(data: object, pair: tuple[str | None, str | None]) -> None:
            p.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
            _check_loaded_or_input_error(p, *pair)

        check()


def test_model_names_with_newlines_stay_on_one_line_in_errors(tmp_path: Path) -> None:
    """Found by the RouterDC fuzz: listed model names were printed raw, breaking the line."""
    p = tmp_path / "r.json"
    p.write_text(json.dumps([{"question": "q", "scores": {"a\n": 0.5, "b": 1.0, "c": 0.2}}]))
    with pytest.raises(InputError) as e:
        load_table(p, "a", "b")
    assert "\n" not in str(e.value) and "'a\\n'" in str(e.value)
    with pytest.raises(InputError) as e:
        _ = load_table(p).weak  # three models and no pair chosen
    assert "\n" not in str(e.value) and "'a\\n'" in str(e.value)
