"""Published outcome releases, each loaded with all its models (data/README.md has provenance).

Every loader converts the release's rows into N-model records and builds the table with
:func:`~firewall_routing.outcomes.multi.table_from_multi_records`, so a release is checked
and derived exactly like a user's N-model file. A weak/strong pair is then a view
(``table.pair(weak, strong)``), never a second loader.

* **RouterDC JSON** – ``[{"question", "scores": {model: pass_rate}}]``, 10 samples per
  model at temperature 0.2 (the RouterDC release); a missing or ``null`` score is a missing
  outcome.
* **RouteLLM response CSV** – ``prompt,<model_a>,<model_b>,...`` with one greedy answer per
  model graded True/False (n = 1); an empty cell is a missing outcome.
* **MMLU-Pro** (TIGER-Lab's released model outputs) – see :func:`load_mmlu_pro`.
* **AlpacaEval judged** – see :func:`load_alpacaeval` and :func:`load_alpacaeval_answers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import read_csv
from firewall_routing.outcomes.multi import table_from_multi_records
from firewall_routing.outcomes.readers import missing_column, parse_bool, read_json, read_jsonl
from firewall_routing.outcomes.table import DEFAULT_QUALITY_THRESHOLD, OutcomeTable

ROUTERDC_SAMPLES = 10
"""RouterDC's release scores each model with 10 samples at temperature 0.2 (data/README.md)."""

ROUTELLM_DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_DEFAULT_STRONG = "gpt-4-1106-preview"


def pick_pair(
    table: OutcomeTable, weak: str | None, strong: str | None, drop_incomplete: bool = False
) -> OutcomeTable:
    """The pair view when both names are given, else the table. The pair's rows must be
    complete (:meth:`OutcomeTable.complete`), or are dropped with ``drop_incomplete``."""
    if weak is None and strong is None:
        return table
    if weak is None or strong is None:
        raise InputError(
            f"pass both --weak and --strong (models in this file: {', '.join(map(repr, table.model_names))})",
            path=table.source,
        )
    return table.pair(weak, strong).complete((weak, strong), drop=drop_incomplete)


# --------------------------------------------------------------------------- RouterDC JSON


def load_routerdc(
    path: str | Path, weak: str | None = None, strong: str | None = None, benchmark: str = ""
) -> OutcomeTable:
    """Read a RouterDC ``[{question, scores}]`` file: all its models, as the ``weak``/
    ``strong`` pair view when both are given."""
    p = Path(path)
    data = read_json(p)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of {question, scores} objects", path=p)
    if not data:
        raise InputError("file has no rows", path=p)
    bench = benchmark or p.stem
    records: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InputError("row is not a JSON object", path=p, row=i)
        q = item.get("question")
        if not isinstance(q, str) or not q.strip():
            raise InputError("missing or empty question", path=p, row=i, field="question")
        scores = item.get("scores")
        if not isinstance(scores, dict):
            raise InputError("missing scores object", path=p, row=i, field="scores")
        models = {
            name: None
            if v is None
            else {"pass_rate": _rate(v, p, i, f"scores.{name}"), "n": ROUTERDC_SAMPLES}
            for name, v in scores.items()
        }
        records.append((i, {"prompt": q, "id": f"{bench}/{i - 1}", "benchmark": bench, "models": models}))
    return pick_pair(table_from_multi_records(records, p, bench), weak, strong)


def routerdc_models(path: str | Path) -> list[str]:
    """Model names present in a RouterDC file (for ``--help`` texts and error messages)."""
    data = read_json(Path(path))
    if isinstance(data, list) and data and isinstance(data[0], dict):
        scores = data[0].get("scores")
        return sorted(scores) if isinstance(scores, dict) else []
    return []


def _rate(v: Any, p: Path, row: int, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(float(v)):
        raise InputError(f"pass rate must be a number, got {v!r}", path=p, row=row, field=fld)
    if not 0.0 <= float(v) <= 1.0:
        raise InputError(f"pass rate {v} is outside [0, 1]", path=p, row=row, field=fld)
    return float(v)


# --------------------------------------------------------------------------- RouteLLM CSV


def load_routellm_csv(
    path: str | Path,
    weak: str | None = ROUTELLM_DEFAULT_WEAK,
    strong: str | None = ROUTELLM_DEFAULT_STRONG,
    benchmark: str = "",
) -> OutcomeTable:
    """Read RouteLLM's ``<benchmark>_responses.csv``: one greedy answer per model (n = 1).
    Pass ``weak=None, strong=None`` for the table of all its models without a pair."""
    p = Path(path)
    header, rows = read_csv(p)
    if "prompt" not in header:
        raise InputError(missing_column(header), path=p, row=1, field="prompt")
    models = [h for h in header if h != "prompt" and not h.endswith("_response")]
    bench = benchmark or p.stem.removesuffix("_responses")
    records: list[tuple[int, dict[str, Any]]] = []
    for k, (line, r) in enumerate(rows):
        if not (r.get("prompt") or "").strip():
            raise InputError("empty prompt", path=p, row=line, field="prompt")
        entries: dict[str, dict[str, Any] | None] = {}
        for m in models:
            cell = r.get(m) or ""
            if not cell.strip():
                entries[m] = None
                continue
            x = parse_bool(cell, p, line, m)
            entries[m] = {"pass_rate": x, "n": 1, "greedy": bool(x), "samples": [x]}
        records.append(
            (line, {"prompt": r["prompt"], "id": f"{bench}/{k}", "benchmark": bench, "models": entries})
        )
    return pick_pair(table_from_multi_records(records, p, bench), weak, strong)


# --------------------------------------------------------------------------- MMLU-Pro

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def mmlu_pro_prompt(question: str, options: list[str]) -> str:
    """The prompt a router sees for an MMLU-Pro question: the question, then one line per
    option lettered as TIGER-Lab's evaluation letters them (``A. …`` to ``J. …``), without
    their "Question:"/"Options:" headers, few-shot examples and chain-of-thought cue — those
    are the same for every question, so they tell a router nothing."""
    return question + "\n" + "\n".join(f"{OPTION_LETTERS[i]}. {o}" for i, o in enumerate(options))


class _MmluProAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pred: str | None = None
    correct: bool


class _MmluProRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question_id: int
    category: str
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=1, max_length=len(OPTION_LETTERS))
    models: dict[str, _MmluProAnswer | None]


def load_mmlu_pro(
    path: str | Path, weak: str | None = None, strong: str | None = None, benchmark: str = ""
) -> OutcomeTable:
    """MMLU-Pro outcomes: ``{"question_id", "category", "question", "options", "answer",
    "models": {model: {"pred", "correct"} or null}}`` per line (data/mmlu-pro/).

    Each model answered once, 5-shot chain of thought at temperature 0 (TIGER-Lab's
    ``evaluate_from_local.py`` samples with ``temperature=0``; we assume their API runs did
    the same), so n = 1 and the answer's correctness is both the pass rate and the greedy
    correctness. An answer from which no letter was extracted (``pred`` null) counts as
    wrong, as it does in the file (TIGER-Lab's own score guesses a random letter there).
    The prompt is :func:`mmlu_pro_prompt`; the category is the row's benchmark.
    """
    p = Path(path)
    records: list[tuple[int, dict[str, Any]]] = []
    for line, rec in read_jsonl(p):
        try:
            row = _MmluProRow.model_validate(rec)
        except ValidationError as e:
            raise input_error_from(e, path=p, row=line) from None
        models = {
            name: None
            if a is None
            else {"pass_rate": float(a.correct), "n": 1, "greedy": a.correct, "samples": [float(a.correct)]}
            for name, a in row.models.items()
        }
        prompt = mmlu_pro_prompt(row.question, row.options)
        records.append(
            (
                line,
                {
                    "prompt": prompt,
                    "id": f"mmlu-pro/{row.question_id}",
                    "benchmark": row.category,
                    "models": models,
                },
            )
        )
    return pick_pair(table_from_multi_records(records, p, benchmark or "mmlu-pro"), weak, strong)


# --------------------------------------------------------------------------- AlpacaEval judged


class _JudgedAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    output: str | None = None
    quality: float | None = None

    @field_validator("quality")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:  # NaN fails the comparison too
            raise ValueError(f"{v} is outside [0, 1]")
        return v


class _JudgedRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instruction: str = Field(min_length=1)
    dataset: str | None = None
    reference: str | None = None
    reference_model: str | None = None
    models: dict[str, _JudgedAnswer | None]


@dataclass(frozen=True)
class JudgedAnswers:
    """The texts behind a judged table, row for row with :func:`load_alpacaeval`'s table
    (same ``ids``), for scorers that re-score the answers themselves (issue 21).

    ``outputs[model][i]`` is the model's answer to ``prompts[i]`` (None where the file has
    none); ``reference[i]`` is the reference answer the judge compared it with.
    """

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    reference: tuple[str | None, ...]
    reference_model: str | None
    outputs: dict[str, tuple[str | None, ...]]


def _judged_rows(p: Path) -> list[tuple[int, _JudgedRow]]:
    rows = []
    for line, rec in read_jsonl(p):
        try:
            rows.append((line, _JudgedRow.model_validate(rec)))
        except ValidationError as e:
            raise input_error_from(e, path=p, row=line) from None
    if not rows:
        raise InputError("file has no rows", path=p)
    return rows


def load_alpacaeval(
    path: str | Path,
    weak: str | None = None,
    strong: str | None = None,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
) -> OutcomeTable:
    """AlpacaEval judged outcomes: ``{"instruction", "dataset", "reference",
    "reference_model", "models": {model: {"output", "quality"}}}`` per line (data/alpacaeval/).

    ``quality`` is GPT-4-turbo's probability that the model's answer beats the reference
    (AlpacaEval's weighted annotator, in [0, 1]). Each model has one sample per instruction
    whose real-valued quality is ``quality`` and whose correctness is quality ≥
    ``quality_threshold`` (the notes say so); its decoding settings vary by model, so no
    greedy correctness is claimed. A null quality is a missing outcome. The prompt is the
    instruction, the benchmark AlpacaEval's source data set (koala, oasst, …). The answer
    texts: :func:`load_alpacaeval_answers`.
    """
    p = Path(path)
    bench = benchmark or "alpacaeval"
    records = [
        (
            line,
            {
                "prompt": row.instruction,
                "id": f"alpacaeval/{k}",
                "benchmark": row.dataset or bench,
                "models": {
                    name: None if a is None or a.quality is None else {"quality": [a.quality], "n": 1}
                    for name, a in row.models.items()
                },
            },
        )
        for k, (line, row) in enumerate(_judged_rows(p))
    ]
    return pick_pair(table_from_multi_records(records, p, bench, quality_threshold), weak, strong)


def load_alpacaeval_answers(path: str | Path) -> JudgedAnswers:
    """The instructions, reference answers and every model's answer of an AlpacaEval judged
    file, aligned with :func:`load_alpacaeval` (row ``k`` has id ``alpacaeval/k``)."""
    p = Path(path)
    rows = [row for _, row in _judged_rows(p)]
    names = list(dict.fromkeys(name for r in rows for name in r.models))
    refs = {r.reference_model for r in rows} - {None}
    return JudgedAnswers(
        ids=tuple(f"alpacaeval/{k}" for k in range(len(rows))),
        prompts=tuple(r.instruction for r in rows),
        reference=tuple(r.reference for r in rows),
        reference_model=refs.pop() if len(refs) == 1 else None,
        outputs={
            name: tuple((a.output if (a := r.models.get(name)) is not None else None) for r in rows)
            for name in names
        },
    )
