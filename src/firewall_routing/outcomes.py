"""OutcomeTable: what the weak and the strong model did on each query (DESIGN.md §2).

Everything downstream (labels, routers, metrics) reads only this table, so every input
format is converted here, once, and validated here, once. Missing information stays
missing (NaN / None): a label design that needs a field the data lacks must fail loudly
or use an explicit, reported approximation (see ``labels.Approximations``), never invent it.

Formats:

* **RouterDC JSON** – ``[{"question": str, "scores": {model_name: pass_rate}}]``, 10 samples
  per model (the RouterDC release); pick the weak and strong model by name.
* **RouteLLM response CSV** – ``prompt,<model_a>,<model_b>,...`` with greedy True/False.
* **Generic** JSONL or CSV (the format users fill from their own logs and the one
  ``firewall-routing sample`` writes), one row per query – see :class:`GenericRow`. Beside
  0/1 correctness it may carry real-valued per-sample quality (F1, BARTScore, a judge score),
  which Hybrid LLM's labels compare directly.
* **MixInstruct** JSON/JSONL (LLM-Blender's release, the data set of Hybrid LLM) – see
  :func:`load_mixinstruct`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import iter_jsonl, read_text

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

ROUTERDC_SAMPLES = 10
"""RouterDC's release scores each model with 10 samples at temperature 0.2 (data/README.md)."""

MAX_SAMPLES = 1_000_000_000
"""Upper bound on weak_n/strong_n: larger counts are typos, and would overflow int64 arrays."""

DEFAULT_QUALITY_THRESHOLD = 0.5
"""When a generic row has quality scores but no correctness, a sample counts as correct when
its quality is ≥ this (token F1 ≥ 0.5 for TriviaQA-style answers). Every table built this way
says so in its notes; ``--quality-threshold`` changes it (e.g. −3.5 for BARTScore)."""

ROUTELLM_DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_DEFAULT_STRONG = "gpt-4-1106-preview"


@dataclass(frozen=True)
class ModelOutcomes:
    """One model's results on every query of a table (arrays aligned with the table rows).

    ``greedy`` holds 0/1 correctness of the temperature-0 answer, NaN where unknown.
    ``samples`` holds per-sample 0/1 correctness vectors (may differ in length per row) or
    is None when only pass rates are known. ``quality`` holds per-sample real-valued quality
    scores (None when the data has none) and ``greedy_quality`` the quality of the
    temperature-0 answer (None, or NaN where unknown): Hybrid LLM's labels compare these.
    """

    name: str
    pass_rate: FloatArray
    n: np.ndarray[Any, np.dtype[np.int64]]
    greedy: FloatArray
    samples: tuple[FloatArray, ...] | None = None
    quality: tuple[FloatArray, ...] | None = None
    greedy_quality: FloatArray | None = None

    def take(self, idx: np.ndarray[Any, np.dtype[np.int64]]) -> ModelOutcomes:
        samples = None if self.samples is None else tuple(self.samples[i] for i in idx)
        quality = None if self.quality is None else tuple(self.quality[i] for i in idx)
        gq = None if self.greedy_quality is None else self.greedy_quality[idx]
        return ModelOutcomes(
            self.name, self.pass_rate[idx], self.n[idx], self.greedy[idx], samples, quality, gq
        )

    @property
    def has_greedy(self) -> bool:
        return bool(len(self.greedy)) and not bool(np.isnan(self.greedy).any())

    @property
    def has_quality(self) -> bool:
        """Per-sample real-valued quality on every row (what r_prob / r_trans need)."""
        return self.quality is not None

    @property
    def has_greedy_quality(self) -> bool:
        gq = self.greedy_quality
        return gq is not None and bool(len(gq)) and not bool(np.isnan(gq).any())

    def mean_quality(self) -> FloatArray:
        """Expected quality of one answer per row: the mean of the sampled qualities, else the
        greedy answer's quality (the real-valued counterpart of the pass rate)."""
        if self.quality is not None:
            return np.array([float(np.mean(q)) for q in self.quality])
        if self.has_greedy_quality:
            assert self.greedy_quality is not None
            return self.greedy_quality.astype(np.float64, copy=True)
        raise ValueError(f"model {self.name!r} has no quality scores")


@dataclass(frozen=True)
class OutcomeTable:
    """One row per query: prompt plus the weak and strong model's outcomes."""

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    weak: ModelOutcomes
    strong: ModelOutcomes
    margin: FloatArray
    benchmark: tuple[str, ...]
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.prompts)
        sizes = {
            len(self.ids),
            len(self.weak.pass_rate),
            len(self.strong.pass_rate),
            len(self.margin),
            len(self.benchmark),
        }
        if sizes != {n}:
            raise ValueError(f"OutcomeTable columns have different lengths: {sizes} vs {n}")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def has_margin(self) -> bool:
        return bool(len(self.margin)) and not bool(np.isnan(self.margin).any())

    def take(self, idx: Sequence[int] | np.ndarray[Any, Any]) -> OutcomeTable:
        ix = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            ids=tuple(self.ids[i] for i in ix),
            prompts=tuple(self.prompts[i] for i in ix),
            weak=self.weak.take(ix),
            strong=self.strong.take(ix),
            margin=self.margin[ix],
            benchmark=tuple(self.benchmark[i] for i in ix),
        )

    def with_weak(self, weak: ModelOutcomes) -> OutcomeTable:
        return replace(self, weak=weak)


def concat(tables: Sequence[OutcomeTable], source: str = "") -> OutcomeTable:
    """Stack tables of the same model pair (e.g. HumanEval train + test = all 164 problems)."""
    if not tables:
        raise ValueError("concat needs at least one table")
    first = tables[0]
    for t in tables[1:]:
        if (t.weak.name, t.strong.name) != (first.weak.name, first.strong.name):
            raise ValueError("cannot concat tables of different model pairs")

    def model(get: str) -> ModelOutcomes:
        parts = [getattr(t, get) for t in tables]
        samples: tuple[FloatArray, ...] | None = None
        if all(p.samples is not None for p in parts):
            samples = tuple(s for p in parts for s in p.samples)
        quality: tuple[FloatArray, ...] | None = None
        if all(p.quality is not None for p in parts):
            quality = tuple(q for p in parts for q in p.quality)
        gq = None
        if any(p.greedy_quality is not None for p in parts):
            gq = np.concatenate(
                [_nan(len(p.pass_rate)) if p.greedy_quality is None else p.greedy_quality for p in parts]
            )
        return ModelOutcomes(
            parts[0].name,
            np.concatenate([p.pass_rate for p in parts]),
            np.concatenate([p.n for p in parts]),
            np.concatenate([p.greedy for p in parts]),
            samples,
            quality,
            gq,
        )

    return OutcomeTable(
        ids=tuple(i for t in tables for i in t.ids),
        prompts=tuple(p for t in tables for p in t.prompts),
        weak=model("weak"),
        strong=model("strong"),
        margin=np.concatenate([t.margin for t in tables]),
        benchmark=tuple(b for t in tables for b in t.benchmark),
        source=source or " + ".join(t.source for t in tables),
        notes=tuple(dict.fromkeys(n for t in tables for n in t.notes)),
    )


def _or_nan(v: float | None) -> float:
    return np.nan if v is None else float(v)


def _nan(n: int) -> FloatArray:
    return np.full(n, np.nan, dtype=np.float64)


# --------------------------------------------------------------------------- RouterDC JSON


def load_routerdc(path: str | Path, weak: str, strong: str, benchmark: str = "") -> OutcomeTable:
    """Read a RouterDC ``[{question, scores}]`` file for one weak/strong pair."""
    p = Path(path)
    data = _read_json(p)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of {question, scores} objects", path=p)
    if not data:
        raise InputError("file has no rows", path=p)
    prompts: list[str] = []
    prw: list[float] = []
    prs: list[float] = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InputError("row is not a JSON object", path=p, row=i)
        q = item.get("question")
        if not isinstance(q, str) or not q.strip():
            raise InputError("missing or empty question", path=p, row=i, field="question")
        scores = item.get("scores")
        if not isinstance(scores, dict):
            raise InputError("missing scores object", path=p, row=i, field="scores")
        for name in (weak, strong):
            if name not in scores:
                avail = ", ".join(repr(m) for m in sorted(scores))
                raise InputError(
                    f"unknown model {name!r}; models in this file: {avail}",
                    path=p,
                    row=i,
                    field="scores",
                )
        prompts.append(q)
        prw.append(_rate(scores[weak], p, i, f"scores.{weak}"))
        prs.append(_rate(scores[strong], p, i, f"scores.{strong}"))
    n = len(prompts)
    bench = benchmark or p.stem
    counts = np.full(n, ROUTERDC_SAMPLES, dtype=np.int64)
    return OutcomeTable(
        ids=tuple(f"{bench}/{i}" for i in range(n)),
        prompts=tuple(prompts),
        weak=ModelOutcomes(weak, np.array(prw), counts, _nan(n)),
        strong=ModelOutcomes(strong, np.array(prs), counts.copy(), _nan(n)),
        margin=_nan(n),
        benchmark=(bench,) * n,
        source=str(p),
    )


def routerdc_models(path: str | Path) -> list[str]:
    """Model names present in a RouterDC file (for ``--help`` texts and error messages)."""
    data = _read_json(Path(path))
    if isinstance(data, list) and data and isinstance(data[0], dict):
        scores = data[0].get("scores")
        return sorted(scores) if isinstance(scores, dict) else []
    return []


def _read_json(p: Path) -> Any:
    text = read_text(p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at column {e.colno}: {e.msg}", path=p, row=e.lineno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", path=p) from None


def _rate(v: Any, p: Path, row: int, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(float(v)):
        raise InputError(f"pass rate must be a number, got {v!r}", path=p, row=row, field=fld)
    if not 0.0 <= float(v) <= 1.0:
        raise InputError(f"pass rate {v} is outside [0, 1]", path=p, row=row, field=fld)
    return float(v)


# --------------------------------------------------------------------------- RouteLLM CSV

_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def _parse_bool(v: str, p: Path, row: int, fld: str) -> float:
    s = v.strip().lower()
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    raise InputError(f"expected True/False, got {v!r}", path=p, row=row, field=fld)


def load_routellm_csv(
    path: str | Path,
    weak: str = ROUTELLM_DEFAULT_WEAK,
    strong: str = ROUTELLM_DEFAULT_STRONG,
    benchmark: str = "",
) -> OutcomeTable:
    """Read RouteLLM's ``<benchmark>_responses.csv``: one greedy answer per model (n = 1)."""
    p = Path(path)
    header, rows = _read_csv(p)
    if "prompt" not in header:
        raise InputError(_missing_column(header), path=p, row=1, field="prompt")
    for name in (weak, strong):
        if name not in header:
            models = [h for h in header if h != "prompt" and not h.endswith("_response")]
            raise InputError(
                f"unknown model {name!r}; models in this file: {', '.join(map(repr, models))}",
                path=p,
                row=1,
                field=name,
            )
    prompts, gw, gs = [], [], []
    for line, r in rows:
        if not (r.get("prompt") or "").strip():
            raise InputError("empty prompt", path=p, row=line, field="prompt")
        prompts.append(r["prompt"])
        gw.append(_parse_bool(r[weak] or "", p, line, weak))
        gs.append(_parse_bool(r[strong] or "", p, line, strong))
    n = len(prompts)
    bench = benchmark or p.stem.removesuffix("_responses")
    ones = np.ones(n, dtype=np.int64)
    w, s = np.array(gw), np.array(gs)
    return OutcomeTable(
        ids=tuple(f"{bench}/{i}" for i in range(n)),
        prompts=tuple(prompts),
        weak=ModelOutcomes(weak, w, ones, w.copy(), tuple(np.array([x]) for x in gw)),
        strong=ModelOutcomes(strong, s, ones.copy(), s.copy(), tuple(np.array([x]) for x in gs)),
        margin=_nan(n),
        benchmark=(bench,) * n,
        source=str(p),
    )


def _missing_column(header: Sequence[str]) -> str:
    """'missing column' plus the columns the file does have, so a misspelling is visible."""
    found = ", ".join(repr(h) for h in header) if header else "none"
    return f"missing column; columns found: {found}"


def _read_csv(p: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows with the physical line number each starts on (so errors point at the file)."""
    text = read_text(p)
    lines = text.splitlines(keepends=True)
    reader = csv.DictReader(lines)
    header = list(reader.fieldnames or [])
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        start = reader.line_num + 1
        for r in reader:
            if None in r:
                raise InputError("row has more cells than the header", path=p, row=start)
            rows.append((start, r))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"malformed CSV: {e}", path=p, row=reader.line_num) from None
    if not rows:
        raise InputError("file has a header but no rows", path=p)
    return header, rows


# --------------------------------------------------------------------------- generic format


class GenericRow(BaseModel):
    """One query of the generic outcome format (JSONL object or CSV row).

    Required: ``prompt`` and, for each model, its correctness or its quality: ``weak_pass_rate``/
    ``strong_pass_rate`` (in [0, 1]), or ``*_samples``, or ``*_quality``.
    Optional: ``id``, ``benchmark``, ``weak_n``/``strong_n`` (samples behind each pass rate),
    ``weak_greedy``/``strong_greedy`` (0/1 correctness of the temperature-0 answer),
    ``margin`` (weak model, first token, p(top1) − p(top2)), ``weak_samples``/
    ``strong_samples`` (per-sample 0/1 correctness; in CSV as ``1;0;1``), ``weak_model``/
    ``strong_model`` (names), ``weak_quality``/``strong_quality`` (per-sample real-valued
    quality, any finite scale, same length as ``*_samples`` when both are given; CSV
    ``0.5;0.25``) and ``weak_greedy_quality``/``strong_greedy_quality`` (quality of the
    temperature-0 answer). Without correctness, pass rates come from quality ≥ a threshold
    (:func:`load_generic`). Other columns are ignored so logs can carry extra metadata.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    prompt: str
    weak_pass_rate: float | None = None
    strong_pass_rate: float | None = None
    id: str | None = None
    benchmark: str | None = None
    weak_n: int | None = None
    strong_n: int | None = None
    weak_greedy: bool | None = None
    strong_greedy: bool | None = None
    margin: float | None = None
    weak_samples: list[float] | None = None
    strong_samples: list[float] | None = None
    weak_model: str | None = None
    strong_model: str | None = None
    weak_quality: list[float] | None = None
    strong_quality: list[float] | None = None
    weak_greedy_quality: float | None = None
    strong_greedy_quality: float | None = None

    @field_validator("prompt")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty")
        return v

    @field_validator("weak_pass_rate", "strong_pass_rate", "margin")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and (math.isnan(v) or not 0.0 <= v <= 1.0):
            raise ValueError(f"{v} is outside [0, 1]")
        return v

    @field_validator("weak_n", "strong_n")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_SAMPLES:
            raise ValueError(f"must be between 1 and {MAX_SAMPLES:,}, got {v}")
        return v

    @field_validator("weak_samples", "strong_samples")
    @classmethod
    def _binary(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if not v:
                raise ValueError("sample list is empty")
            if any(x not in (0.0, 1.0) for x in v):
                raise ValueError("samples must be 0/1 correctness values")
        return v

    @field_validator("weak_quality", "strong_quality")
    @classmethod
    def _finite_list(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if not v:
                raise ValueError("quality list is empty")
            bad = next((x for x in v if not math.isfinite(x)), None)
            if bad is not None:
                raise ValueError(f"quality scores must be finite numbers, got {bad}")
        return v

    @field_validator("weak_greedy_quality", "strong_greedy_quality")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"quality must be a finite number, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GenericRow:
        for side in ("weak", "strong"):
            samples = getattr(self, f"{side}_samples")
            quality = getattr(self, f"{side}_quality")
            rate = getattr(self, f"{side}_pass_rate")
            n = getattr(self, f"{side}_n")
            if rate is None and samples is None and quality is None:
                raise ValueError(f"{side}_pass_rate is missing: give it, {side}_samples or {side}_quality")
            if samples is not None and rate is not None and abs(sum(samples) / len(samples) - rate) > 1e-6:
                raise ValueError(
                    f"{side}_pass_rate {rate} ≠ mean of {side}_samples ({sum(samples)}/{len(samples)})"
                )
            if samples is not None and n is not None and n != len(samples):
                raise ValueError(f"{side}_n={n} but {len(samples)} {side}_samples")
            if quality is not None and samples is not None and len(quality) != len(samples):
                raise ValueError(f"{len(quality)} {side}_quality scores but {len(samples)} {side}_samples")
            if quality is not None and n is not None and n != len(quality):
                raise ValueError(f"{side}_n={n} but {len(quality)} {side}_quality scores")
        return self


_CSV_LIST_FIELDS = ("weak_samples", "strong_samples", "weak_quality", "strong_quality")
_SIDE_COLUMNS = ("pass_rate", "samples", "quality")


def _iter_generic_records(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if p.suffix.lower() == ".csv":
        header, rows = _read_csv(p)
        if "prompt" not in header:
            raise InputError(_missing_column(header), path=p, row=1, field="prompt")
        for side in ("weak", "strong"):
            if not any(f"{side}_{c}" in header for c in _SIDE_COLUMNS):
                raise InputError(_missing_column(header), path=p, row=1, field=f"{side}_pass_rate")
        for line, r in rows:
            rec: dict[str, Any] = {}
            for k, v in r.items():
                if v is None or v == "":
                    continue
                if k in _CSV_LIST_FIELDS:
                    rec[k] = [x for x in v.replace(",", ";").split(";") if x.strip()]
                else:
                    rec[k] = v
            yield line, rec
        return
    yield from iter_jsonl(p)


def _check_quality_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not math.isfinite(float(threshold)):
        raise InputError(f"--quality-threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def _all_or_none(rows: Sequence[GenericRow], lines: Sequence[int], fld: str, p: Path) -> bool:
    """True if every row has ``fld``, False if none does; a mix is a one-line error.

    A quality column present on some rows only is almost always a broken export; filling the
    gaps (or silently dropping the column) would change which labels can be computed.
    """
    have = [getattr(r, fld) is not None for r in rows]
    if all(have) or not any(have):
        return all(have)
    first = have.index(True)
    missing = have.index(False)
    raise InputError(
        f"{fld} is missing here but given on line {lines[first]}: give it on every row or on none",
        path=p,
        row=lines[missing],
        field=fld,
    )


def load_generic(
    path: str | Path, benchmark: str = "", quality_threshold: float = DEFAULT_QUALITY_THRESHOLD
) -> OutcomeTable:
    """Read the generic JSONL/CSV format (see :class:`GenericRow`).

    Pass rates come from correctness (``*_pass_rate``, else the mean of ``*_samples``); a row
    with quality only counts a sample as correct when its quality is ≥ ``quality_threshold``
    (greedy correctness likewise from greedy quality). The table's notes say which was used.
    """
    p = Path(path)
    return table_from_records(_iter_generic_records(p), p, benchmark, quality_threshold)


def table_from_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    p: Path,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
) -> OutcomeTable:
    """Validate generic-format records (line number, object) into a table: the one place
    rows are checked, so converters of other formats (MixInstruct) get the same errors."""
    threshold = _check_quality_threshold(quality_threshold)
    rows: list[GenericRow] = []
    lines: list[int] = []
    for line, rec in records:
        for who in ("weak", "strong") if isinstance(rec, dict) else ():
            if all(rec.get(f"{who}_{c}") is None for c in _SIDE_COLUMNS):
                raise InputError(
                    f"required field is missing (or give {who}_samples or {who}_quality)",
                    path=p,
                    row=line,
                    field=f"{who}_pass_rate",
                )
        try:
            rows.append(GenericRow.model_validate(rec))
        except ValidationError as e:
            raise input_error_from(e, path=p, row=line) from None
        lines.append(line)
    if not rows:
        raise InputError("file has no rows", path=p)
    bench = benchmark or p.stem
    ids = tuple(r.id if r.id is not None else f"{bench}/{i}" for i, r in enumerate(rows))
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"duplicate id '{dup}'", path=p, field="id")
    notes: list[str] = []

    def side(name: Literal["weak", "strong"]) -> ModelOutcomes:
        names = {getattr(r, f"{name}_model") for r in rows} - {None}
        if len(names) > 1:
            raise InputError(f"rows name different models: {sorted(names)}", path=p, field=f"{name}_model")
        has_quality = _all_or_none(rows, lines, f"{name}_quality", p)
        # greedy quality may be missing on some rows (NaN there), like greedy correctness
        has_gq = any(getattr(r, f"{name}_greedy_quality") is not None for r in rows)
        rates: list[float] = []
        samples_list: list[list[float] | None] = []
        greedy: list[float] = []
        derived_rate = derived_greedy = 0
        for r in rows:
            rate, samples = getattr(r, f"{name}_pass_rate"), getattr(r, f"{name}_samples")
            quality = getattr(r, f"{name}_quality")
            if samples is None and rate is None and quality is not None:
                samples = [float(q >= threshold) for q in quality]
                derived_rate += 1
            if rate is None:
                assert samples is not None  # GenericRow requires rate, samples or quality
                rate = sum(samples) / len(samples)
            rates.append(rate)
            samples_list.append(samples)
            g, gq = getattr(r, f"{name}_greedy"), getattr(r, f"{name}_greedy_quality")
            if g is None and gq is not None:
                g = gq >= threshold
                derived_greedy += 1
            greedy.append(np.nan if g is None else float(g))
        if derived_rate:
            notes.append(
                f"{name} pass rate from quality ≥ {threshold:g} on {derived_rate} of {len(rows)} rows "
                f"(no {name}_pass_rate or {name}_samples there)"
            )
        if derived_greedy:
            notes.append(
                f"{name} greedy correctness from greedy quality ≥ {threshold:g} on {derived_greedy} rows"
            )
        samples = None
        if all(s is not None for s in samples_list):
            samples = tuple(np.asarray(s, dtype=np.float64) for s in samples_list)
        n = np.array(
            [
                getattr(r, f"{name}_n")
                or (len(s) if s is not None else 0)
                or len(getattr(r, f"{name}_quality") or [])
                for r, s in zip(rows, samples_list, strict=True)
            ],
            dtype=np.int64,
        )
        quality_t = (
            tuple(np.asarray(getattr(r, f"{name}_quality"), dtype=np.float64) for r in rows)
            if has_quality
            else None
        )
        gq_arr = (
            np.array([_or_nan(getattr(r, f"{name}_greedy_quality")) for r in rows], dtype=np.float64)
            if has_gq
            else None
        )
        return ModelOutcomes(
            names.pop() if names else name, np.array(rates), n, np.array(greedy), samples, quality_t, gq_arr
        )

    weak, strong = side("weak"), side("strong")
    if weak.has_quality != strong.has_quality:
        have, lack = ("weak", "strong") if weak.has_quality else ("strong", "weak")
        raise InputError(
            f"{have}_quality is given but {lack}_quality is not: quality compares the two models, "
            "so give both or neither",
            path=p,
            field=f"{lack}_quality",
        )
    return OutcomeTable(
        ids=ids,
        prompts=tuple(r.prompt for r in rows),
        weak=weak,
        strong=strong,
        margin=np.array([np.nan if r.margin is None else r.margin for r in rows]),
        benchmark=tuple(r.benchmark or bench for r in rows),
        source=str(p),
        notes=tuple(notes),
    )


def generic_records(table: OutcomeTable) -> Iterable[dict[str, Any]]:
    """Rows of ``table`` in the generic format (what ``write_generic`` writes)."""
    for i in range(len(table)):
        rec: dict[str, Any] = {
            "id": table.ids[i],
            "benchmark": table.benchmark[i],
            "prompt": table.prompts[i],
        }
        for side, m in (("weak", table.weak), ("strong", table.strong)):
            rec[f"{side}_model"] = m.name
            rec[f"{side}_pass_rate"] = float(m.pass_rate[i])
            if m.n[i] > 0:
                rec[f"{side}_n"] = int(m.n[i])
            if not np.isnan(m.greedy[i]):
                rec[f"{side}_greedy"] = bool(m.greedy[i])
            if m.samples is not None:
                rec[f"{side}_samples"] = [int(x) for x in m.samples[i]]
            if m.quality is not None:
                rec[f"{side}_quality"] = [float(x) for x in m.quality[i]]
            if m.greedy_quality is not None and not np.isnan(m.greedy_quality[i]):
                rec[f"{side}_greedy_quality"] = float(m.greedy_quality[i])
        if not np.isnan(table.margin[i]):
            rec["margin"] = float(table.margin[i])
        yield rec


def write_generic(table: OutcomeTable, path: str | Path) -> None:
    """Write ``table`` as generic JSONL (or CSV when the suffix is ``.csv``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    recs = list(generic_records(table))
    tmp = p.with_name(p.name + ".tmp")
    if p.suffix.lower() == ".csv":
        cols = list(dict.fromkeys(k for r in recs for k in r))
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in recs:
                w.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})
    else:
        with tmp.open("w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(p)


# --------------------------------------------------------------------------- MixInstruct

# MixInstruct-shaped data (LLM-Blender's release; the data set of Hybrid LLM, Ding et al. 2024).
#
# Each item is ``{"id", "instruction", "input", "output", "candidates": [{"model",
# "decoding_method", "text", "scores": {"bartscore": ..., "bertscore": ..., "rouge1": ...}}]}``
# (a JSON list in ``.json`` files, one item per line in ``.jsonl``). A pair of models and one
# metric turn it into an :class:`OutcomeTable` with real-valued
# quality, so Hybrid LLM's labels (r_det, r_prob, r_trans) compare exactly what the paper
# compared: the metric of each model's responses.
#
# * prompt = ``instruction`` and ``input`` joined by a newline (the empty one left out);
# * a model's sampled qualities = the metric of its candidates whose ``decoding_method`` is not
#   ``greedy`` (the release has one ``top_p_sampling`` candidate per model; Hybrid LLM sampled
#   10 — both load); its greedy quality = its first ``greedy`` candidate, if any (when it has
#   only greedy candidates, those are its samples too);
# * correctness (for the pass-rate designs and APGR) = metric ≥ ``quality_threshold``, as for
#   any generic file with quality only; the table's notes say so.
#
# The conversion produces generic-format records, so every row is validated by the same code
# (:func:`table_from_records`) and fails with the same one-line errors.

MIXINSTRUCT_METRIC = "bartscore"
"""Hybrid LLM trains and evaluates on BARTScore (its §4)."""


def _mixinstruct_items(p: Path) -> Iterator[tuple[int, Any]]:
    """(row, item): line numbers for JSONL, 1-based item positions for a JSON list."""
    if p.suffix.lower() == ".jsonl":
        yield from iter_jsonl(p)
        return
    data = _read_json(p)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of MixInstruct items (or a .jsonl file)", path=p)
    yield from enumerate(data, start=1)


def _finite_score(v: Any, p: Path, row: int, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        raise InputError(f"score must be a finite number, got {v!r}", path=p, row=row, field=fld)
    return float(v)


def mixinstruct_records(
    path: str | Path, weak: str, strong: str, metric: str = MIXINSTRUCT_METRIC
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Generic-format records (weak/strong quality = ``metric`` of each model's candidates)."""
    p = Path(path)
    for row, item in _mixinstruct_items(p):
        if not isinstance(item, dict):
            raise InputError("item is not a JSON object", path=p, row=row)
        parts = [item.get("instruction"), item.get("input")]
        if any(x is not None and not isinstance(x, str) for x in parts):
            raise InputError("instruction and input must be strings", path=p, row=row, field="input")
        prompt = "\n".join(x for x in parts if isinstance(x, str) and x.strip())
        cands = item.get("candidates")
        if not isinstance(cands, list):
            raise InputError("missing candidates list", path=p, row=row, field="candidates")
        rec: dict[str, Any] = {"prompt": prompt, "weak_model": weak, "strong_model": strong}
        if item.get("id") is not None:
            rec["id"] = str(item["id"])
        for side, model in (("weak", weak), ("strong", strong)):
            sampled: list[float] = []
            greedy: list[float] = []
            for k, c in enumerate(cands):
                if not isinstance(c, dict):
                    raise InputError("candidate is not an object", path=p, row=row, field=f"candidates[{k}]")
                if c.get("model") != model:
                    continue
                scores = c.get("scores")
                if not isinstance(scores, dict) or metric not in scores:
                    keys = ", ".join(map(repr, sorted(scores))) if isinstance(scores, dict) else "none"
                    raise InputError(
                        f"no score {metric!r} for model {model!r}; scores here: {keys} (choose with --metric)",
                        path=p,
                        row=row,
                        field=f"candidates[{k}].scores.{metric}",
                    )
                q = _finite_score(scores[metric], p, row, f"candidates[{k}].scores.{metric}")
                (greedy if c.get("decoding_method") == "greedy" else sampled).append(q)
            if not sampled and not greedy:
                models = sorted({c.get("model") for c in cands if isinstance(c, dict)} - {None}, key=str)
                raise InputError(
                    f"no candidate of model {model!r}; models here: {', '.join(map(repr, models))}",
                    path=p,
                    row=row,
                    field="candidates",
                )
            rec[f"{side}_quality"] = sampled or greedy
            if greedy:
                rec[f"{side}_greedy_quality"] = greedy[0]
        yield row, rec


def mixinstruct_models(path: str | Path) -> list[str]:
    """Model names of the first item (for error messages)."""
    for _, item in _mixinstruct_items(Path(path)):
        if isinstance(item, dict) and isinstance(item.get("candidates"), list):
            return sorted({str(c.get("model")) for c in item["candidates"] if isinstance(c, dict)})
        break
    return []


def load_mixinstruct(
    path: str | Path,
    weak: str,
    strong: str,
    metric: str = MIXINSTRUCT_METRIC,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
) -> OutcomeTable:
    """A MixInstruct file as an outcome table for one weak/strong pair and one metric."""
    p = Path(path)
    return table_from_records(
        mixinstruct_records(p, weak, strong, metric), p, benchmark or p.stem, quality_threshold
    )


# --------------------------------------------------------------------------- dispatch

Format = Literal["auto", "routerdc", "routellm", "generic", "mixinstruct"]
FORMATS: tuple[str, ...] = ("auto", "routerdc", "routellm", "generic", "mixinstruct")


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "routerdc"
    if suffix == ".jsonl":
        return "generic"
    if suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace") as f:
            header = next(csv.reader([f.readline()]), [])
        generic = {f"weak_{c}" for c in _SIDE_COLUMNS}
        return "generic" if generic & set(header) else "routellm"
    raise InputError(
        f"cannot tell the format from suffix '{suffix or '(none)'}': outcome files must be .json "
        "(RouterDC), .jsonl or .csv (generic), or .csv (RouteLLM); convert the file (e.g. a "
        ".tsv to comma-separated .csv) or rename it",
        path=path,
    )


def load_table(
    path: str | Path,
    weak: str | None = None,
    strong: str | None = None,
    fmt: Format = "auto",
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
    metric: str | None = None,
) -> OutcomeTable:
    """Load any supported outcome file; ``weak``/``strong`` pick models where a file has many.

    ``quality_threshold`` turns quality into correctness where a file has no correctness
    (generic rows with quality only, MixInstruct); ``metric`` picks MixInstruct's score.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected an outcome file", path=p)
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}", field="format")
    kind = detect_format(p) if fmt == "auto" else fmt
    if metric is not None and kind != "mixinstruct":
        raise InputError("--metric picks a MixInstruct score: it needs --format mixinstruct", path=p)
    if kind == "mixinstruct":
        if weak is None or strong is None:
            models = ", ".join(repr(m) for m in mixinstruct_models(p))
            raise InputError(
                f"MixInstruct files hold several models: pass --weak and --strong (one of: {models})", path=p
            )
        return load_mixinstruct(p, weak, strong, metric or MIXINSTRUCT_METRIC, benchmark, quality_threshold)
    if kind == "routerdc":
        if weak is None or strong is None:
            models = ", ".join(repr(m) for m in routerdc_models(p))
            raise InputError(
                f"RouterDC files hold several models: pass --weak and --strong (one of: {models})", path=p
            )
        return load_routerdc(p, weak, strong, benchmark)
    if kind == "routellm":
        return load_routellm_csv(
            p, weak or ROUTELLM_DEFAULT_WEAK, strong or ROUTELLM_DEFAULT_STRONG, benchmark
        )
    return _check_named_pair(load_generic(p, benchmark, quality_threshold), weak, strong)


def _check_named_pair(table: OutcomeTable, weak: str | None, strong: str | None) -> OutcomeTable:
    """``--weak``/``--strong`` on a generic file: they must match the models it names.

    A generic file holds one pair, so the options cannot select anything; silently ignoring
    them printed "weak weak, strong strong" for ``--weak gpt-4o-mini --strong foo``.
    """
    if weak is None and strong is None:
        return table
    named = (table.weak.name, table.strong.name) != ("weak", "strong")
    if not named:
        raise InputError(
            "--weak/--strong select models in RouterDC/RouteLLM files, and this file does not name "
            "its models (no weak_model/strong_model fields): leave the options out, or add the fields",
            path=table.source,
        )
    for side, asked, found in (("weak", weak, table.weak.name), ("strong", strong, table.strong.name)):
        if asked is not None and asked != found:
            raise InputError(
                f"--{side} '{asked}' does not match this file's models: "
                f"weak_model '{table.weak.name}', strong_model '{table.strong.name}'",
                path=table.source,
                field=f"{side}_model",
            )
    return table


def split_train_val(table: OutcomeTable, val_fraction: float, seed: int) -> tuple[OutcomeTable, OutcomeTable]:
    """A fixed, seeded split: the same seed gives the same rows whatever else runs."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(len(table))
    n_val = round(len(table) * val_fraction)
    return table.take(np.sort(perm[n_val:])), table.take(np.sort(perm[:n_val]))
