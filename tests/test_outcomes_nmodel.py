"""N-model tables (issue 22): the pair view, missing outcomes, RouterDC with all its models,
MMLU-Pro, AlpacaEval judged, and the matrices a router reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import (
    ModelOutcomes,
    OutcomeTable,
    concat,
    load_alpacaeval,
    load_alpacaeval_answers,
    load_mmlu_pro,
    load_routellm_csv,
    load_routerdc,
    load_table,
    mmlu_pro_prompt,
)

DATA = Path(__file__).resolve().parents[1] / "data"
W, S = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


def _model(name: str, rates: list[float]) -> ModelOutcomes:
    pr = np.array(rates, dtype=np.float64)
    return ModelOutcomes(name, pr, np.where(np.isnan(pr), 0, 10).astype(np.int64), np.full(len(pr), np.nan))


def _table(**models: list[float]) -> OutcomeTable:
    n = len(next(iter(models.values())))
    return OutcomeTable(
        ids=tuple(f"q{i}" for i in range(n)),
        prompts=tuple(f"prompt {i}" for i in range(n)),
        models=tuple(_model(k, v) for k, v in models.items()),
        benchmark=("b",) * n,
        source="mem.jsonl",
    )


# --------------------------------------------------------------------------- the table API


def test_pair_view_reads_the_chosen_models() -> None:
    t = _table(a=[0.1, 0.2], b=[0.5, 0.6], c=[0.9, 1.0])
    assert t.model_names == ("a", "b", "c") and not t.has_pair
    p = t.pair("a", "c")
    assert p.weak.name == "a" and p.strong.name == "c" and p.model_names == t.model_names
    np.testing.assert_array_equal(p.strong.pass_rate, [0.9, 1.0])
    assert t.pair("b", "b").weak is t.pair("b", "b").strong  # one model in both roles (the sweep)


def test_weak_without_a_pair_names_the_options_and_models() -> None:
    t = _table(a=[0.1], b=[0.5], c=[0.9])
    with pytest.raises(InputError) as e:
        _ = t.weak
    msg = str(e.value)
    assert "--weak and --strong" in msg and "'a', 'b', 'c'" in msg and "mem.jsonl" in msg
    two = _table(a=[0.1], b=[0.5])
    assert (two.weak.name, two.strong.name) == ("a", "b")  # two models: in order


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown model 'z'; models in this file: 'a', 'b'"):
        _table(a=[0.1], b=[0.5]).pair("a", "z")


def test_duplicated_model_names_are_an_input_error() -> None:
    with pytest.raises(InputError, match="model 'a' appears twice"):
        OutcomeTable(("q",), ("p",), (_model("a", [0.1]), _model("a", [0.2])), ("b",), "f.jsonl")


def test_pass_rate_matrix_keeps_missing_as_nan() -> None:
    t = _table(a=[0.1, np.nan], b=[0.5, 0.6])
    m = t.pass_rate_matrix()
    assert m.shape == (2, 2) and np.isnan(m[1, 0]) and m[1, 1] == 0.6
    np.testing.assert_array_equal(t.pass_rate_matrix(["b"]), [[0.5], [0.6]])
    np.testing.assert_array_equal(t.n_matrix(), [[10, 10], [0, 10]])
    np.testing.assert_array_equal(t.model("a").missing, [False, True])


def test_missing_outcome_is_never_a_failure() -> None:
    """A pair needing the row stops with the model, file and first row; it is not read as 0."""
    t = _table(a=[0.1, np.nan, np.nan], b=[0.5, 0.6, 0.7])
    with pytest.raises(InputError) as e:
        t.pair("a", "b").complete(("a", "b"))
    msg = str(e.value)
    assert "model 'a'" in msg and "2 of 3 rows" in msg and "row 2" in msg and "'q1'" in msg
    assert "mem.jsonl" in msg and "--drop-incomplete" in msg and "\n" not in msg
    kept = t.complete(drop=True)
    assert kept.ids == ("q0",) and kept.notes[-1].startswith("dropped 2 of 3 rows")
    assert t.complete(["b"]) is t  # b is complete: nothing to drop
    with pytest.raises(InputError, match="no row has an outcome"):
        _table(a=[np.nan], b=[0.5]).complete(drop=True)


def test_take_select_concat_keep_every_model() -> None:
    t = _table(a=[0.1, 0.2, 0.3], b=[0.4, 0.5, 0.6], c=[0.7, 0.8, 0.9]).pair("a", "c")
    both = concat([t.take([0]), t.take([1, 2])])
    assert both.roles == ("a", "c") and both.model_names == ("a", "b", "c")
    np.testing.assert_array_equal(both.pass_rate_matrix(), t.pass_rate_matrix())
    assert t.select(["c", "a"]).roles == ("a", "c") and t.select(["b"]).roles is None
    with pytest.raises(ValueError, match="different models"):
        concat([t, t.select(["a", "c"])])


def test_from_pair_puts_the_margin_on_the_weak_model() -> None:
    w, s = _model("w", [0.1, 0.2]), _model("s", [0.5, 0.6])
    t = OutcomeTable.from_pair(("0", "1"), ("p", "q"), w, s, np.array([0.3, np.nan]), ("b", "b"))
    assert t.weak.margin is not None and t.margin[0] == 0.3 and t.strong.margin is None
    assert not t.has_margin


def test_quality_matrix_needs_quality() -> None:
    with pytest.raises(InputError, match="model 'a' has no quality scores"):
        _table(a=[0.1], b=[0.2]).quality_matrix()


# --------------------------------------------------------------------------- RouterDC


def _raw_routerdc(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((DATA / "routerdc" / name).read_text())
    return rows


@pytest.mark.parametrize("name", ["gsm8k-train.json", "gsm8k-test.json", "humaneval_test.json", "mbpp.json"])
def test_routerdc_loads_all_seven_models_and_the_pair_is_a_view(name: str) -> None:
    raw = _raw_routerdc(name)
    full = load_routerdc(DATA / "routerdc" / name)
    assert full.model_names == tuple(raw[0]["scores"]) and len(full.models) == 7
    for m in full.model_names:  # every model's pass rates are the file's numbers, 10 samples
        np.testing.assert_array_equal(full.model(m).pass_rate, [r["scores"][m] for r in raw])
        assert (full.model(m).n == 10).all()
    pair = load_routerdc(DATA / "routerdc" / name, W, S, "b")
    np.testing.assert_array_equal(pair.weak.pass_rate, full.model(W).pass_rate)
    np.testing.assert_array_equal(pair.strong.pass_rate, full.model(S).pass_rate)
    assert pair.prompts == tuple(r["question"] for r in raw) and pair.ids[0] == "b/0"
    assert load_table(DATA / "routerdc" / name, W, S).pair_names == (W, S)


def test_routerdc_missing_score_is_missing_not_zero(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(
        json.dumps(
            [{"question": "q1", "scores": {"a": 0.5, "b": 1.0}}, {"question": "q2", "scores": {"b": 0.2}}]
        )
    )
    t = load_routerdc(p)
    assert np.isnan(t.model("a").pass_rate[1]) and t.model("a").n[1] == 0
    with pytest.raises(InputError, match=r"model 'a' has no outcome on 1 of 2 rows \(first: row 2"):
        load_table(p, "a", "b")
    dropped = load_table(p, "a", "b", drop_incomplete=True)
    assert dropped.ids == ("r/0",) and any("dropped 1 of 2 rows" in n for n in dropped.notes)


def test_routerdc_duplicated_model_key_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('[{"question": "q", "scores": {"a": 0.5, "a": 0.7, "b": 1.0}}]')
    with pytest.raises(InputError, match="key 'a' appears twice"):
        load_table(p, "a", "b")


def test_routellm_loads_every_model_column() -> None:
    full = load_routellm_csv(DATA / "routellm" / "gsm8k_responses.csv", None, None)
    assert full.model_names == ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")
    default = load_table(DATA / "routellm" / "gsm8k_responses.csv")
    np.testing.assert_array_equal(default.strong.pass_rate, full.model("gpt-4-1106-preview").pass_rate)
    np.testing.assert_array_equal(default.weak.greedy, default.weak.pass_rate)


def test_routellm_empty_cell_is_missing(tmp_path: Path) -> None:
    p = tmp_path / "x_responses.csv"
    p.write_text("prompt,m1,m2,m3\nq1,True,False,True\nq2,,True,False\n")
    t = load_table(p, "m2", "m3")
    assert len(t) == 2
    with pytest.raises(InputError, match="model 'm1' has no outcome on 1 of 2 rows"):
        load_table(p, "m1", "m2")


# --------------------------------------------------------------------------- MMLU-Pro


def _mmlu_rows() -> list[dict[str, Any]]:
    return [
        {
            "question_id": 7,
            "category": "math",
            "src": "x",
            "question": "2+2?",
            "options": ["3", "4", "5"],
            "answer": "B",
            "models": {"small": {"pred": "A", "correct": 0}, "big": {"pred": "B", "correct": 1}},
        },
        {
            "question_id": 9,
            "category": "law",
            "src": "y",
            "question": "Is it?",
            "options": ["yes", "no"],
            "answer": "A",
            "models": {
                "small": {"pred": None, "correct": 0},
                "big": {"pred": "A", "correct": 1},
                "mid": None,
            },
        },
    ]


def _jsonl(p: Path, rows: list[dict[str, Any]]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_mmlu_pro_small_file(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "mmlu.jsonl", _mmlu_rows())
    t = load_table(p)  # detected from the first row
    assert t.model_names == ("small", "big", "mid")
    assert t.ids == ("mmlu-pro/7", "mmlu-pro/9") and t.benchmark == ("math", "law")
    assert t.prompts[0] == "2+2?\nA. 3\nB. 4\nC. 5" == mmlu_pro_prompt("2+2?", ["3", "4", "5"])
    big = t.model("big")
    np.testing.assert_array_equal(big.pass_rate, [1.0, 1.0])
    np.testing.assert_array_equal(big.greedy, big.pass_rate)  # one greedy answer each
    assert big.samples is not None and big.samples[0].tolist() == [1.0] and (big.n == 1).all()
    assert t.model("small").pass_rate.tolist() == [0.0, 0.0]  # no letter extracted = wrong
    assert np.isnan(t.model("mid").pass_rate).all()  # never answered = missing
    pair = load_table(p, "small", "big", fmt="mmlu-pro")
    assert pair.weak.pass_rate.mean() == 0.0 and pair.strong.pass_rate.mean() == 1.0


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda r: r.pop("question"), "field 'question'"),
        (lambda r: r.update(options=[]), "field 'options'"),
        (lambda r: r["models"]["big"].update(correct=2), "field 'models.big.correct'"),
        (lambda r: r.update(question_id="x"), "field 'question_id'"),
    ],
)
def test_mmlu_pro_bad_rows_are_one_line(tmp_path: Path, mutate: Any, expect: str) -> None:
    rows = _mmlu_rows()
    mutate(rows[1])
    p = _jsonl(tmp_path / "mmlu.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_mmlu_pro(p)
    assert f"{p}:2" in str(e.value) and expect in str(e.value) and "\n" not in str(e.value)


def test_shipped_mmlu_pro_table() -> None:
    t = load_mmlu_pro(DATA / "mmlu-pro" / "outcomes.jsonl")
    assert len(t) == 10_002 and len(t.models) == 23 and not np.isnan(t.pass_rate_matrix()).any()
    rates = dict(zip(t.model_names, t.pass_rate_matrix().mean(axis=0), strict=True))
    # data/README.md: Llama-3.1-8B-Instruct ≈ 44 %, 70B-Instruct ≈ 63 %, gemini-1.5-pro-002 ≈ 70 %
    assert rates["Meta-Llama-3_1-8B-Instruct"] == pytest.approx(0.443, abs=0.001)
    assert rates["Meta-Llama-3_1-70B-Instruct"] == pytest.approx(0.626, abs=0.001)
    assert rates["gemini-1.5-pro-002"] == pytest.approx(0.702, abs=0.001)
    assert len(set(t.benchmark)) == 14


# --------------------------------------------------------------------------- AlpacaEval judged


def _judged_rows() -> list[dict[str, Any]]:
    return [
        {
            "instruction": "Write a haiku.",
            "dataset": "koala",
            "reference": "ref 1",
            "reference_model": "gpt4_1106_preview",
            "models": {"tiny": {"output": "a", "quality": 0.1}, "huge": {"output": "b", "quality": 0.9}},
        },
        {
            "instruction": "Explain tides.",
            "dataset": "oasst",
            "reference": "ref 2",
            "reference_model": "gpt4_1106_preview",
            "models": {"tiny": {"output": "c", "quality": 0.5}, "huge": {"output": "d", "quality": None}},
        },
    ]


def test_alpacaeval_quality_and_threshold(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "judged.jsonl", _judged_rows())
    t = load_table(p, drop_incomplete=True)  # detected from the first row; a 2-model table is a pair
    assert len(t) == 1 and any("dropped 1 of 2 rows" in n for n in t.notes)
    t = load_alpacaeval(p)
    assert t.model_names == ("tiny", "huge") and t.benchmark == ("koala", "oasst")
    tiny = t.model("tiny")
    assert tiny.quality is not None and [q.tolist() for q in tiny.quality] == [[0.1], [0.5]]
    np.testing.assert_array_equal(tiny.pass_rate, [0.0, 1.0])  # 0.5 ≥ 0.5 counts as correct
    assert np.isnan(tiny.greedy).all() and (tiny.n == 1).all()
    assert any("quality ≥ 0.5" in n for n in t.notes)
    huge = load_alpacaeval(p).model("huge")
    assert np.isnan(huge.pass_rate[1]) and huge.n[1] == 0  # null quality = missing
    np.testing.assert_array_equal(load_alpacaeval(p).model("huge").mean_quality(), [0.9, np.nan])
    strict = load_alpacaeval(p, quality_threshold=0.95)
    assert strict.model("huge").pass_rate[0] == 0.0 and any("quality ≥ 0.95" in n for n in strict.notes)
    with pytest.raises(InputError, match="model 'huge' has no outcome on 1 of 2 rows"):
        load_table(p, "tiny", "huge")
    assert len(load_table(p, "tiny", "huge", drop_incomplete=True)) == 1


def test_alpacaeval_answers_align_with_the_table(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "judged.jsonl", _judged_rows())
    a, t = load_alpacaeval_answers(p), load_alpacaeval(p)
    assert a.ids == t.ids and a.prompts == t.prompts
    assert a.reference == ("ref 1", "ref 2") and a.reference_model == "gpt4_1106_preview"
    assert a.outputs == {"tiny": ("a", "c"), "huge": ("b", "d")}


def test_alpacaeval_bad_quality_is_one_line(tmp_path: Path) -> None:
    rows = _judged_rows()
    rows[1]["models"]["tiny"]["quality"] = 1.5
    p = _jsonl(tmp_path / "judged.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_alpacaeval(p)
    assert (
        f"{p}:2" in str(e.value)
        and "models.tiny.quality" in str(e.value)
        and "outside [0, 1]" in str(e.value)
    )


def test_shipped_alpacaeval_table() -> None:
    t = load_alpacaeval(DATA / "alpacaeval" / "judged.jsonl")
    assert len(t) == 797 and len(t.models) == 28
    q = t.quality_matrix()
    means = dict(zip(t.model_names, q.mean(axis=0), strict=True))
    # data/README.md: ≈0.09 gpt-3.5-turbo-1106, ≈0.16 claude-2.1, ≈0.71 FuseChat-Gemma-2-9B
    assert means["gpt-3.5-turbo-1106"] == pytest.approx(0.089, abs=0.001)
    assert means["FuseChat-Gemma-2-9B-Instruct"] == pytest.approx(0.706, abs=0.001)
    answers = load_alpacaeval_answers(DATA / "alpacaeval" / "judged.jsonl")
    assert len(answers.outputs) == 28 and all(len(v) == 797 for v in answers.outputs.values())
