"""Benchmark loaders on the real shipped data, and user JSONL validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import firewall_routing.sampling.datasets as bm
from firewall_routing import datadir
from firewall_routing.errors import InputError
from firewall_routing.outcomes import load_routerdc
from firewall_routing.sampling.datasets import (
    BenchmarkItem,
    data_dir,
    load_benchmark,
    paper_prompt,
)
from firewall_routing.sampling.graders import GRADERS, grade, gsm8k_gold

pytestmark = pytest.mark.timeout(60)

WEAK = "HuggingFaceH4/zephyr-7b-beta"
STRONG = "cognitivecomputations/dolphin-2.9-llama3-8b"


@pytest.mark.parametrize(
    ("name", "split", "size", "grader"),
    [
        ("gsm8k", "test", 1319, "gsm8k"),
        ("gsm8k", "train", 7473, "gsm8k"),
        ("triviaqa", "test", 1500, "triviaqa-contains"),
        ("humaneval", "test", 164, "humaneval"),
        ("mbpp", "test", 500, "mbpp"),
    ],
)
def test_builtin_sizes_ids_and_graders(name: str, split: str, size: int, grader: str) -> None:
    items = load_benchmark(name, split)
    assert len(items) == size
    assert len({it.id for it in items}) == size
    assert {it.benchmark for it in items} == {name}
    assert {it.grader for it in items} == {grader}
    assert all(it.question.strip() and it.reference.strip() for it in items)


@pytest.mark.parametrize("name", ["gsm8k", "triviaqa", "mbpp"])
def test_paper_prompt_format(name: str) -> None:
    for it in load_benchmark(name, limit=20):
        assert it.prompt == f"Question: {it.question}\nAnswer: "


def test_gsm8k_references_hold_the_gold_number() -> None:
    items = load_benchmark("gsm8k")
    assert items[0].question.startswith("Janet’s ducks lay 16 eggs")
    assert gsm8k_gold(items[0].reference) == 18
    assert all("####" in it.reference for it in items)


@pytest.mark.parametrize(
    ("routerdc_file", "split", "count"),
    [("gsm8k-test.json", "test", 1319), ("gsm8k-train.json", "train", 1000), ("mbpp.json", "test", 500)],
)
def test_ids_and_questions_line_up_with_routerdc_outcomes(routerdc_file: str, split: str, count: int) -> None:
    """The documented promise: same ids, same questions, so sampled rows join shipped ones."""
    table = load_routerdc(data_dir() / "routerdc" / routerdc_file, WEAK, STRONG)
    name = "mbpp" if routerdc_file == "mbpp.json" else "gsm8k"
    items = load_benchmark(name, split, limit=count)
    assert len(table) == count
    assert [it.id for it in items] == list(table.ids)
    assert [it.question.strip() for it in items] == [p.strip() for p in table.prompts]


def test_humaneval_items() -> None:
    items = load_benchmark("humaneval")
    assert [it.id for it in items[:2]] == ["humaneval/0", "humaneval/1"]
    for it in items:
        ref = json.loads(it.reference)
        assert it.prompt == it.question == ref["prompt"]  # code to complete, not the paper format
        assert f"def {ref['entry_point']}(" in ref["prompt"]
        assert "def check(candidate)" in ref["test"]
    routerdc = json.loads((data_dir() / "routerdc" / "humaneval_test.json").read_text())
    assert {q["question"] for q in routerdc} <= {it.question for it in items}


def test_mbpp_reference_is_the_assert_from_the_question() -> None:
    for it in load_benchmark("mbpp"):
        assert re.fullmatch(r"assert .*", it.reference)
        assert it.reference in it.question
        compile(it.reference, it.id, "exec")  # a test that cannot even compile grades nothing


def test_limit_and_split_errors() -> None:
    assert [it.id for it in load_benchmark("triviaqa", limit=3)] == ["triviaqa/0", "triviaqa/1", "triviaqa/2"]
    assert load_benchmark("mbpp", limit=0) == []
    with pytest.raises(InputError, match="limit") as e:
        load_benchmark("mbpp", limit=-1)
    assert e.value.field == "limit"
    with pytest.raises(InputError, match="no split 'train'; available: test") as e:
        load_benchmark("triviaqa", "train")
    assert e.value.field == "split"
    with pytest.raises(InputError, match="no split 'dev'"):
        load_benchmark("gsm8k", "dev")


def test_unknown_name_that_is_no_file() -> None:
    with pytest.raises(InputError, match=r"unknown benchmark 'gsm9k'.*gsm8k"):
        load_benchmark("gsm9k")


# -------------------------------------------------------------------------------- data_dir


def test_data_dir_defaults_to_the_repository() -> None:
    assert (data_dir() / "gsm8k" / "test.jsonl").is_file()


def test_data_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gsm8k").mkdir()
    line = {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps(line) + "\n")
    monkeypatch.setenv("FIREWALL_ROUTING_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    [item] = load_benchmark("gsm8k")
    assert item == BenchmarkItem(
        "gsm8k-test/0", "gsm8k", "What is 2 + 2?", paper_prompt("What is 2 + 2?"), line["answer"], "gsm8k"
    )
    assert grade(item.grader, "2 + 2 makes 4.", item.reference)


def test_data_dir_env_pointing_nowhere_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWALL_ROUTING_DATA", str(tmp_path / "missing"))
    with pytest.raises(InputError, match="FIREWALL_ROUTING_DATA is not a directory"):
        data_dir()


def test_data_dir_falls_back_to_cwd_then_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREWALL_ROUTING_DATA", raising=False)
    # Pretend the package is installed somewhere without a data/ folder beside it.
    monkeypatch.setattr(datadir, "__file__", str(tmp_path / "site" / "fr" / "datadir.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="cannot find the data folder"):
        data_dir()
    (tmp_path / "data").mkdir()
    assert data_dir() == tmp_path / "data"


# ------------------------------------------------------------------------------ user JSONL


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_user_jsonl(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        json.dumps({"prompt": "Q: 6 * 7?\nA:", "grader": "gsm8k", "reference": "42"}),
        "",
        json.dumps(
            {
                "prompt": "Capital of France?",
                "grader": "triviaqa-em",
                "reference": "Paris",
                "id": "geo-1",
                "question": "France?",
            }
        ),
    )
    items = load_benchmark(str(path), limit=None)
    assert items == [
        BenchmarkItem("mine/0", "mine", "Q: 6 * 7?\nA:", "Q: 6 * 7?\nA:", "42", "gsm8k"),
        BenchmarkItem("geo-1", "mine", "France?", "Capital of France?", "Paris", "triviaqa-em"),
    ]
    assert [grade(it.grader, ans, it.reference) for it, ans in zip(items, ["42", "paris"], strict=True)] == [
        True,
        True,
    ]
    assert load_benchmark(str(path), limit=1) == items[:1]


@pytest.mark.parametrize(
    ("second_line", "row", "field", "message"),
    [
        ('{"prompt": "x", "grader": "gsm8k"', 2, None, "invalid JSON"),
        ('["prompt", "x"]', 2, None, "not a JSON object"),
        ('{"grader": "gsm8k", "reference": "1"}', 2, "prompt", "missing field"),
        ('{"prompt": "x", "grader": "gsm8k"}', 2, "reference", "missing field"),
        ('{"prompt": 5, "grader": "gsm8k", "reference": "1"}', 2, "prompt", "must be a string"),
        ('{"prompt": " ", "grader": "gsm8k", "reference": "1"}', 2, "prompt", "must not be empty"),
        ('{"prompt": "x", "grader": "gsm-8k", "reference": "1"}', 2, "grader", "unknown grader"),
        (
            '{"prompt": "x", "grader": "mbpp", "reference": ""}',
            2,
            "reference",
            "must not be empty",
        ),  # empty tests would pass any code
        (
            '{"prompt": "x", "grader": "gsm8k", "reference": "1", "id": "a"}',
            2,
            "id",
            "duplicate id 'a' \\(first on line 1\\)",
        ),
    ],
)
def test_malformed_user_jsonl_names_file_line_and_field(
    tmp_path: Path, second_line: str, row: int, field: str | None, message: str
) -> None:
    first = json.dumps({"prompt": "ok", "grader": "gsm8k", "reference": "1", "id": "a"})
    path = _write(tmp_path, first, second_line)
    with pytest.raises(InputError, match=message) as e:
        load_benchmark(str(path))
    assert (e.value.path, e.value.row, e.value.field) == (str(path), row, field)
    assert str(e.value).startswith(f"{path}:{row}")


def test_user_jsonl_empty_or_not_utf8(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no items"):
        load_benchmark(str(empty))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9", "grader": "gsm8k", "reference": "1"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_benchmark(str(latin))


def test_builtin_graders_cover_every_loader() -> None:
    assert set(bm.BENCHMARKS) == {"gsm8k", "triviaqa", "humaneval", "mbpp"}
    assert {load_benchmark(n, limit=1)[0].grader for n in bm.BENCHMARKS} <= set(GRADERS)


def test_default_data_dir_finds_the_repository_data_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from the module's own place in the source tree, not the working folder (the
    move to ``experiment/run.py`` had left it one level short, at ``src/data``)."""
    from firewall_routing.sampling.datasets import default_data_dir

    monkeypatch.delenv("FIREWALL_ROUTING_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == Path(__file__).resolve().parents[2] / "data"
