"""The generic weak_/strong_ pair format: a two-model table, built by the N-model builder.

The format users fill from their own logs and the one ``firewall-routing sample`` writes:
one row per query, each field prefixed by the model's role (see :class:`GenericRow`). Each
row is checked here with the pair's field names, then each side becomes a
:class:`~firewall_routing.outcomes.multi.ModelEntry` and goes through the same
:func:`~firewall_routing.outcomes.multi.build_model` as every N-model file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import read_csv
from firewall_routing.outcomes.multi import (
    Binary,
    Count,
    Finite,
    ModelEntry,
    Qualities,
    Unit,
    build_model,
    check_consistent,
    check_quality_threshold,
    row_ids,
)
from firewall_routing.outcomes.readers import missing_column, read_jsonl
from firewall_routing.outcomes.table import DEFAULT_QUALITY_THRESHOLD, OutcomeTable

Side = Literal["weak", "strong"]


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
    weak_pass_rate: Unit = None
    strong_pass_rate: Unit = None
    id: str | None = None
    benchmark: str | None = None
    weak_n: Count = None
    strong_n: Count = None
    weak_greedy: bool | None = None
    strong_greedy: bool | None = None
    margin: Unit = None
    weak_samples: Binary = None
    strong_samples: Binary = None
    weak_model: str | None = None
    strong_model: str | None = None
    weak_quality: Qualities = None
    strong_quality: Qualities = None
    weak_greedy_quality: Finite = None
    strong_greedy_quality: Finite = None

    @field_validator("prompt")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GenericRow:
        for side in ("weak", "strong"):
            check_consistent(
                f"{side}_",
                getattr(self, f"{side}_pass_rate"),
                getattr(self, f"{side}_samples"),
                getattr(self, f"{side}_quality"),
                getattr(self, f"{side}_n"),
            )
        return self

    def entry(self, side: Side) -> ModelEntry:
        """This row's outcome of one side, already checked (the margin is the weak model's)."""
        return ModelEntry.model_construct(
            pass_rate=getattr(self, f"{side}_pass_rate"),
            n=getattr(self, f"{side}_n"),
            greedy=getattr(self, f"{side}_greedy"),
            samples=getattr(self, f"{side}_samples"),
            quality=getattr(self, f"{side}_quality"),
            greedy_quality=getattr(self, f"{side}_greedy_quality"),
            margin=self.margin if side == "weak" else None,
        )


_CSV_LIST_FIELDS = ("weak_samples", "strong_samples", "weak_quality", "strong_quality")
SIDE_COLUMNS = ("pass_rate", "samples", "quality")


def _iter_generic_records(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if p.suffix.lower() == ".csv":
        header, rows = read_csv(p)
        if "prompt" not in header:
            raise InputError(missing_column(header), path=p, row=1, field="prompt")
        for side in ("weak", "strong"):
            if not any(f"{side}_{c}" in header for c in SIDE_COLUMNS):
                raise InputError(missing_column(header), path=p, row=1, field=f"{side}_pass_rate")
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
    yield from read_jsonl(p)


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


def _field_of(side: str) -> Callable[[str], str]:
    return lambda f: f"{side}_{f}"


def table_from_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    p: Path,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
) -> OutcomeTable:
    """Validate generic-format records (line number, object) into a table: the one place
    pair rows are checked, so converters of other formats (MixInstruct) get the same errors."""
    threshold = check_quality_threshold(quality_threshold)
    rows: list[GenericRow] = []
    lines: list[int] = []
    for line, rec in records:
        for who in ("weak", "strong") if isinstance(rec, dict) else ():
            if all(rec.get(f"{who}_{c}") is None for c in SIDE_COLUMNS):
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
    ids = row_ids([r.id for r in rows], bench, p)
    notes: list[str] = []
    built = {}
    side: Side
    for side in ("weak", "strong"):
        names = {getattr(r, f"{side}_model") for r in rows} - {None}
        if len(names) > 1:
            raise InputError(f"rows name different models: {sorted(names)}", path=p, field=f"{side}_model")
        b = build_model(
            names.pop() if names else side,
            [r.entry(side) for r in rows],
            lines,
            p,
            threshold,
            _field_of(side),
        )
        if b.rates_from_quality:
            notes.append(
                f"{side} pass rate from quality ≥ {threshold:g} on {b.rates_from_quality} of {len(rows)} rows "
                f"(no {side}_pass_rate or {side}_samples there)"
            )
        if b.greedy_from_quality:
            notes.append(
                f"{side} greedy correctness from greedy quality ≥ {threshold:g} on {b.greedy_from_quality} rows"
            )
        built[side] = b.outcomes
    weak, strong = built["weak"], built["strong"]
    if weak.has_quality != strong.has_quality:
        have, lack = ("weak", "strong") if weak.has_quality else ("strong", "weak")
        raise InputError(
            f"{have}_quality is given but {lack}_quality is not: quality compares the two models, "
            "so give both or neither",
            path=p,
            field=f"{lack}_quality",
        )
    if weak.name == strong.name:
        raise InputError(
            f"weak_model and strong_model are both {weak.name!r}: a table holds each model once",
            path=p,
            field="strong_model",
        )
    return OutcomeTable(
        ids=ids,
        prompts=tuple(r.prompt for r in rows),
        models=(weak, strong),
        benchmark=tuple(r.benchmark or bench for r in rows),
        source=str(p),
        notes=tuple(notes),
    )


def generic_records(table: OutcomeTable) -> Iterable[dict[str, Any]]:
    """Rows of the pair of ``table`` in the generic format (what ``write_generic`` writes)."""
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
    """Write the pair of ``table`` as generic JSONL (or CSV when the suffix is ``.csv``)."""
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
