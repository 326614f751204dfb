"""The N-model outcome format, and the one builder every format's rows go through.

A row is ``{"prompt", "id"?, "benchmark"?, "models": {name: entry or null}}``; an entry is
one model's outcome on the row (:class:`ModelEntry`: ``pass_rate``, ``samples``,
``quality``, ``greedy``, ``greedy_quality``, ``n``, ``margin``). A model absent from a row,
or given as ``null``, has no outcome there: NaN, never a failure. In CSV every model field is
a column named ``<field>:<model>`` (e.g. ``pass_rate:meta-llama/Llama-3.1-8B``): the field
comes first and the model is everything after the first ``:``, so names with ``/``, ``.``,
``-`` or ``:`` survive; list fields are ``;``-joined (``1;0;1``); a row whose cells of a model
are all empty has no outcome of that model.

:func:`build_model` turns one model's validated entries into :class:`ModelOutcomes` — pass
rates from correctness, else from quality ≥ the threshold (counted, for the notes) — for
this format, the weak_/strong_ pair format and every converted release (RouterDC, RouteLLM,
MMLU-Pro, AlpacaEval), so all of them derive and check outcomes the same way.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import read_csv
from firewall_routing.outcomes.readers import missing_column, read_jsonl
from firewall_routing.outcomes.table import (
    DEFAULT_QUALITY_THRESHOLD,
    MAX_SAMPLES,
    FloatArray,
    ModelOutcomes,
    OutcomeTable,
)

MULTI_FIELDS = ("pass_rate", "n", "greedy", "samples", "quality", "greedy_quality", "margin")
"""The fields of one model's entry, in the order the writer puts them."""

OUTCOME_FIELDS = ("pass_rate", "samples", "quality")
"""An entry needs at least one of these (the rest only add to it)."""

LIST_FIELDS = ("samples", "quality")

# ----------------------------------------------------------------------------- field checks
# Plain functions, so the pair format's weak_/strong_ fields are checked by the same code.


def check_unit(v: float | None) -> float | None:
    if v is not None and (math.isnan(v) or not 0.0 <= v <= 1.0):
        raise ValueError(f"{v} is outside [0, 1]")
    return v


def check_count(v: int | None) -> int | None:
    if v is not None and not 1 <= v <= MAX_SAMPLES:
        raise ValueError(f"must be between 1 and {MAX_SAMPLES:,}, got {v}")
    return v


def check_binary(v: list[float] | None) -> list[float] | None:
    if v is not None:
        if not v:
            raise ValueError("sample list is empty")
        if not set(v) <= {0.0, 1.0}:
            raise ValueError("samples must be 0/1 correctness values")
    return v


def check_finite_list(v: list[float] | None) -> list[float] | None:
    if v is not None:
        if not v:
            raise ValueError("quality list is empty")
        bad = next((x for x in v if not math.isfinite(x)), None)
        if bad is not None:
            raise ValueError(f"quality scores must be finite numbers, got {bad}")
    return v


def check_finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"quality must be a finite number, got {v}")
    return v


def check_consistent(
    prefix: str,
    rate: float | None,
    samples: list[float] | None,
    quality: list[float] | None,
    n: int | None,
) -> None:
    """One model's fields agree with each other (``prefix`` = ``weak_`` in the pair format)."""
    if rate is None and samples is None and quality is None:
        raise ValueError(f"{prefix}pass_rate is missing: give it, {prefix}samples or {prefix}quality")
    if samples is not None and rate is not None and abs(sum(samples) / len(samples) - rate) > 1e-6:
        raise ValueError(
            f"{prefix}pass_rate {rate} ≠ mean of {prefix}samples ({sum(samples)}/{len(samples)})"
        )
    if samples is not None and n is not None and n != len(samples):
        raise ValueError(f"{prefix}n={n} but {len(samples)} {prefix}samples")
    if quality is not None and samples is not None and len(quality) != len(samples):
        raise ValueError(f"{len(quality)} {prefix}quality scores but {len(samples)} {prefix}samples")
    if quality is not None and n is not None and n != len(quality):
        raise ValueError(f"{prefix}n={n} but {len(quality)} {prefix}quality scores")


Unit = Annotated[float | None, AfterValidator(check_unit)]
Count = Annotated[int | None, AfterValidator(check_count)]
Binary = Annotated[list[float] | None, AfterValidator(check_binary)]
Qualities = Annotated[list[float] | None, AfterValidator(check_finite_list)]
Finite = Annotated[float | None, AfterValidator(check_finite)]


def check_quality_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not math.isfinite(float(threshold)):
        raise InputError(f"--quality-threshold must be a finite number, got {threshold!r}")
    return float(threshold)


class ModelEntry(BaseModel):
    """One model's outcome on one row (see the module docstring). Other keys are ignored,
    so an export may carry e.g. the answer text beside the outcome."""

    model_config = ConfigDict(extra="ignore")

    pass_rate: Unit = None
    n: Count = None
    greedy: bool | None = None
    samples: Binary = None
    quality: Qualities = None
    greedy_quality: Finite = None
    margin: Unit = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        check_consistent("", self.pass_rate, self.samples, self.quality, self.n)
        return self


class MultiRow(BaseModel):
    """One query of the N-model format."""

    model_config = ConfigDict(extra="ignore")

    prompt: str
    id: str | None = None
    benchmark: str | None = None
    models: dict[str, ModelEntry | None]

    @field_validator("prompt")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty")
        return v

    @field_validator("models")
    @classmethod
    def _named(cls, v: dict[str, ModelEntry | None]) -> dict[str, ModelEntry | None]:
        if not v:
            raise ValueError("no models on this row")
        if any(not name.strip() for name in v):
            raise ValueError("a model name is empty")
        return v


# ----------------------------------------------------------------------------- the builder


@dataclass(frozen=True)
class Built:
    """One model's outcomes plus what was derived, for the table's notes."""

    outcomes: ModelOutcomes
    rates_from_quality: int
    greedy_from_quality: int
    rows: int


def _all_or_none(
    entries: Sequence[ModelEntry | None], lines: Sequence[int], attr: str, fld: str, p: Path
) -> bool:
    """True if every entry has ``attr``, False if none does; a mix is a one-line error.

    A quality column present on some rows only is almost always a broken export; filling the
    gaps (or silently dropping the column) would change which labels can be computed.
    Rows without an outcome of the model do not count.
    """
    have = [
        (getattr(e, attr) is not None, line) for e, line in zip(entries, lines, strict=True) if e is not None
    ]
    flags = [h for h, _ in have]
    if all(flags) or not any(flags):
        return bool(flags) and all(flags)
    first = next(line for h, line in have if h)
    missing = next(line for h, line in have if not h)
    raise InputError(
        f"{fld} is missing here but given on line {first}: give it on every row or on none",
        path=p,
        row=missing,
        field=fld,
    )


def build_model(
    name: str,
    entries: Sequence[ModelEntry | None],
    lines: Sequence[int],
    p: Path,
    threshold: float,
    fld: Callable[[str], str],
) -> Built:
    """One model's outcomes from its entries (None = no outcome on that row).

    Pass rates come from correctness (``pass_rate``, else the mean of ``samples``); an entry
    with quality only counts a sample as correct when its quality is ≥ ``threshold`` (greedy
    correctness likewise from greedy quality). ``fld`` names a field for messages.
    """
    has_quality = _all_or_none(entries, lines, "quality", fld("quality"), p)
    # greedy quality may be missing on some rows (NaN there), like greedy correctness
    has_gq = any(e is not None and e.greedy_quality is not None for e in entries)
    has_margin = any(e is not None and e.margin is not None for e in entries)
    rates: list[float] = []
    samples_list: list[list[float] | None] = []
    greedy: list[float] = []
    counts: list[int] = []
    derived_rate = derived_greedy = 0
    for e in entries:
        if e is None:
            rates.append(math.nan)
            samples_list.append([])
            greedy.append(math.nan)
            counts.append(0)
            continue
        rate, samples = e.pass_rate, e.samples
        if samples is None and rate is None and e.quality is not None:
            samples = [float(q >= threshold) for q in e.quality]
            derived_rate += 1
        if rate is None:
            assert samples is not None  # an entry has a pass rate, samples or quality
            rate = sum(samples) / len(samples)
        rates.append(rate)
        samples_list.append(samples)
        g = e.greedy
        if g is None and e.greedy_quality is not None:
            g = e.greedy_quality >= threshold
            derived_greedy += 1
        greedy.append(math.nan if g is None else float(g))
        counts.append(e.n or (len(samples) if samples is not None else 0) or len(e.quality or []))
    samples_t = None
    if any(e is not None for e in entries) and all(s is not None for s in samples_list):
        samples_t = tuple(np.asarray(s, dtype=np.float64) for s in samples_list)

    def column(attr: str) -> FloatArray:
        return np.array(
            [math.nan if e is None or getattr(e, attr) is None else getattr(e, attr) for e in entries],
            dtype=np.float64,
        )

    quality_t = (
        tuple(np.asarray([] if e is None else e.quality, dtype=np.float64) for e in entries)
        if has_quality
        else None
    )
    outcomes = ModelOutcomes(
        name,
        np.array(rates, dtype=np.float64),
        np.array(counts, dtype=np.int64),
        np.array(greedy, dtype=np.float64),
        samples_t,
        quality_t,
        column("greedy_quality") if has_gq else None,
        column("margin") if has_margin else None,
    )
    rows = sum(e is not None for e in entries)
    return Built(outcomes, derived_rate, derived_greedy, rows)


def row_ids(given: Sequence[str | None], bench: str, p: Path) -> tuple[str, ...]:
    """Each row's id (``<benchmark>/<index>`` where none is given); duplicates are an error."""
    ids = tuple(i if i is not None else f"{bench}/{k}" for k, i in enumerate(given))
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"duplicate id '{dup}'", path=p, field="id")
    return ids


def _field_of(model: str) -> Callable[[str], str]:
    return lambda f: f"models.{model}.{f}"


def table_from_multi_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    p: Path,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
    notes: Sequence[str] = (),
) -> OutcomeTable:
    """Validate N-model records (line number, object) into a table: the one place rows of
    this format, and of every release converted to it, are checked."""
    threshold = check_quality_threshold(quality_threshold)
    rows: list[MultiRow] = []
    lines: list[int] = []
    for line, rec in records:
        try:
            rows.append(MultiRow.model_validate(rec))
        except ValidationError as e:
            raise input_error_from(e, path=p, row=line) from None
        lines.append(line)
    if not rows:
        raise InputError("file has no rows", path=p)
    bench = benchmark or p.stem
    names = list(dict.fromkeys(name for r in rows for name in r.models))
    built = [
        build_model(name, [r.models.get(name) for r in rows], lines, p, threshold, _field_of(name))
        for name in names
    ]
    all_notes = list(notes)
    for what, counts in (
        ("pass rates", [b.rates_from_quality for b in built]),
        ("greedy correctness", [b.greedy_from_quality for b in built]),
    ):
        if any(counts):
            models = sum(1 for c in counts if c)
            all_notes.append(
                f"{what} from quality ≥ {threshold:g} for {models} of {len(built)} models "
                f"({sum(counts)} outcomes without {'pass_rate or samples' if what == 'pass rates' else 'greedy'})"
            )
    return OutcomeTable(
        ids=row_ids([r.id for r in rows], bench, p),
        prompts=tuple(r.prompt for r in rows),
        models=tuple(b.outcomes for b in built),
        benchmark=tuple(r.benchmark or bench for r in rows),
        source=str(p),
        notes=tuple(all_notes),
    )


# ----------------------------------------------------------------------------- files


def _split_column(col: str) -> tuple[str, str] | None:
    """``pass_rate:org/model-1.5`` → (``pass_rate``, ``org/model-1.5``); None for other columns."""
    fld, sep, model = col.partition(":")
    return (fld, model) if sep and fld in MULTI_FIELDS and model else None


def is_multi_csv_header(header: Sequence[str]) -> bool:
    return any((s := _split_column(c)) is not None and s[0] in OUTCOME_FIELDS for c in header)


def _iter_multi_csv(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    header, rows = read_csv(p)
    if "prompt" not in header:
        raise InputError(missing_column(header), path=p, row=1, field="prompt")
    columns = {c: s for c in header if (s := _split_column(c)) is not None}
    models = list(dict.fromkeys(m for _, m in columns.values()))
    for line, r in rows:
        given: dict[str, dict[str, Any]] = {m: {} for m in models}
        for col, (fld, model) in columns.items():
            v = r.get(col)
            if v:
                given[model][fld] = (
                    [x for x in v.replace(",", ";").split(";") if x.strip()] if fld in LIST_FIELDS else v
                )
        entries = {m: e or None for m, e in given.items()}  # no cell of a model: no outcome there
        rec: dict[str, Any] = {"prompt": r.get("prompt", ""), "models": entries}
        rec |= {k: r[k] for k in ("id", "benchmark") if r.get(k)}
        yield line, rec


def load_multi(
    path: str | Path, benchmark: str = "", quality_threshold: float = DEFAULT_QUALITY_THRESHOLD
) -> OutcomeTable:
    """Read the N-model JSONL/CSV format (see the module docstring)."""
    p = Path(path)
    records = _iter_multi_csv(p) if p.suffix.lower() == ".csv" else read_jsonl(p)
    return table_from_multi_records(records, p, benchmark, quality_threshold)


def multi_records(table: OutcomeTable) -> Iterator[dict[str, Any]]:
    """Rows of ``table`` in the N-model format (what :func:`write_multi` writes); a model
    without an outcome on a row is ``null`` there, so the model list survives a round trip."""
    for i in range(len(table)):
        models: dict[str, dict[str, Any] | None] = {}
        for m in table.models:
            if m.missing[i]:
                models[m.name] = None
                continue
            e: dict[str, Any] = {"pass_rate": float(m.pass_rate[i])}
            if m.n[i] > 0:
                e["n"] = int(m.n[i])
            if not np.isnan(m.greedy[i]):
                e["greedy"] = bool(m.greedy[i])
            if m.samples is not None:
                e["samples"] = [int(x) for x in m.samples[i]]
            if m.quality is not None:
                e["quality"] = [float(x) for x in m.quality[i]]
            for attr in ("greedy_quality", "margin"):
                col = getattr(m, attr)
                if col is not None and not np.isnan(col[i]):
                    e[attr] = float(col[i])
            models[m.name] = e
        yield {
            "id": table.ids[i],
            "benchmark": table.benchmark[i],
            "prompt": table.prompts[i],
            "models": models,
        }


def write_multi(table: OutcomeTable, path: str | Path) -> None:
    """Write ``table`` (every model) as N-model JSONL, or CSV when the suffix is ``.csv``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    recs = list(multi_records(table))
    tmp = p.with_name(p.name + ".tmp")
    if p.suffix.lower() == ".csv":
        used = {(f, name) for r in recs for name, e in r["models"].items() if e for f in e}
        cols = ["id", "benchmark", "prompt"]
        for m in table.models:  # every model keeps its pass_rate column, even if never present
            cols += [f"{f}:{m.name}" for f in MULTI_FIELDS if f == "pass_rate" or (f, m.name) in used]
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in recs:
                row: dict[str, Any] = {k: r[k] for k in ("id", "benchmark", "prompt")}
                for name, e in r["models"].items():
                    for fld, v in (e or {}).items():
                        row[f"{fld}:{name}"] = ";".join(map(str, v)) if isinstance(v, list) else v
                w.writerow(row)
    else:
        with tmp.open("w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(p)
