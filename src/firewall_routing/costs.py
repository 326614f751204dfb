"""What a query costs on each model: the cost table a user edits, and per-query costs.

N-model routing trades quality against cost, so every cost-aware number depends on a cost
table; a report must be able to say which one (:meth:`CostTable.describe`,
:meth:`CostTable.provenance`: file, sha256, sources, dates). The table is a CSV file, one
row per model, so it is edited in any spreadsheet and a model named twice is visible:

    model,relative_cost,input_per_1m,output_per_1m,source,date,note
    Llama-2-7b-hf,7,,,active parameters (billions; model name),2026-12-07,
    gpt-4o,,2.50,10.00,openai.com/api/pricing,2025-06-01,list price USD

Per model either ``relative_cost`` (one number per query, any unit, e.g. active parameters)
or ``input_per_1m`` and ``output_per_1m`` (price per million input and output tokens); one
kind per table, because the two are not comparable. ``source`` and ``date`` are required on
every row (where the number comes from, and when it was true); ``note`` is free text (the
shipped tables mark guesses there). Shipped defaults: ``data/costs/`` (data/README.md).

Bad input is one line naming the file, row and model: a missing, negative or non-finite
cost, both kinds on one row, a model named twice, and — when a table of outcomes is given —
a model the outcomes lack or an outcome model the cost table lacks.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firewall_routing.datadir import find_data_dir
from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import read_csv

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
CostKind = Literal["relative", "tokens"]

COLUMNS = ("model", "relative_cost", "input_per_1m", "output_per_1m", "source", "date", "note")
SHIPPED = {"mmlu-pro": "mmlu-pro.csv", "routerdc": "routerdc.csv", "alpacaeval": "alpacaeval.csv"}
"""The shipped cost tables in ``data/costs/``, by the outcome table they price."""


class ModelCost(BaseModel):
    """One model's cost: a relative cost per query, or prices per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    relative_cost: float | None = None
    input_per_1m: float | None = None
    output_per_1m: float | None = None
    source: str = Field(min_length=1)
    date: datetime.date
    note: str = ""

    @field_validator("relative_cost", "input_per_1m", "output_per_1m")
    @classmethod
    def _nonnegative(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"cost must be a finite number ≥ 0, got {v}")
        return v

    @field_validator("model", "source")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> ModelCost:
        tokens = (self.input_per_1m, self.output_per_1m)
        if self.relative_cost is not None and any(t is not None for t in tokens):
            raise ValueError("give relative_cost or input_per_1m/output_per_1m, not both")
        if self.relative_cost is None and None in tokens:
            raise ValueError("cost is missing: give relative_cost, or both input_per_1m and output_per_1m")
        return self

    @property
    def kind(self) -> CostKind:
        return "relative" if self.relative_cost is not None else "tokens"


@dataclass(frozen=True)
class CostTable:
    """Every model's cost, in file order, with where the table came from."""

    costs: tuple[ModelCost, ...]
    path: str
    sha256: str

    @property
    def kind(self) -> CostKind:
        return self.costs[0].kind

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(c.model for c in self.costs)

    def describe(self) -> str:
        """One line for a report: which costs were used."""
        unit = "relative cost per query" if self.kind == "relative" else "USD per 1M input/output tokens"
        return f"{Path(self.path).name} ({unit}; sha256 {self.sha256[:12]})"

    def provenance(self) -> dict[str, Any]:
        """What a results file records about the costs it used."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "kind": self.kind,
            "sources": sorted({c.source for c in self.costs}),
            "dates": sorted({c.date.isoformat() for c in self.costs}),
        }

    def check_models(self, models: Sequence[str], outcomes: str = "the outcome table") -> None:
        """The cost table prices exactly ``models`` (an outcome table's): one line naming the
        first model either side lacks."""
        extra = [m for m in self.model_names if m not in models]
        if extra:
            raise InputError(
                f"model {extra[0]!r} has a cost but is not in {outcomes} "
                f"(models there: {', '.join(map(repr, models))})",
                path=self.path,
                field="model",
            )
        self.require(models, outcomes)

    def require(self, models: Sequence[str], outcomes: str = "the outcome table") -> None:
        """Every model in ``models`` has a cost (a command that uses a subset calls this)."""
        lacking = [m for m in models if m not in self.model_names]
        if lacking:
            raise InputError(
                f"model {lacking[0]!r} of {outcomes} has no cost "
                f"({len(lacking)} model{'s' if len(lacking) > 1 else ''} lack one): add a row for it",
                path=self.path,
                field="model",
            )

    def query_costs(
        self,
        models: Sequence[str],
        rows: int,
        input_tokens: FloatArray | None = None,
        output_tokens: FloatArray | None = None,
    ) -> FloatArray:
        """rows × models cost of answering each query with each model.

        A relative table gives every query of a model its one cost (token counts, if given,
        are not used). A token-price table needs the token counts: arrays of shape (rows,)
        (the same count for every model, e.g. the prompt's tokens) or (rows, models); the cost
        is tokens × price / 10⁶, summed over input and output.
        """
        self.require(models)
        by_name = {c.model: c for c in self.costs}
        chosen = [by_name[m] for m in models]
        if self.kind == "relative":
            rel = np.array([c.relative_cost for c in chosen], dtype=np.float64)
            return np.broadcast_to(rel, (rows, len(chosen))).copy()
        if input_tokens is None or output_tokens is None:
            raise InputError(
                "this cost table prices tokens: per-query costs need input and output token counts",
                path=self.path,
            )
        price_in = np.array([c.input_per_1m for c in chosen], dtype=np.float64)
        price_out = np.array([c.output_per_1m for c in chosen], dtype=np.float64)
        return (
            _tokens(input_tokens, rows, len(chosen), "input") * price_in / 1e6
            + _tokens(output_tokens, rows, len(chosen), "output") * price_out / 1e6
        )


def _tokens(counts: FloatArray, rows: int, models: int, what: str) -> FloatArray:
    a = np.asarray(counts, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape not in ((rows, 1), (rows, models)):
        raise ValueError(
            f"{what} token counts have shape {a.shape}, expected ({rows},) or ({rows}, {models})"
        )
    if not np.isfinite(a).all() or (a < 0).any():
        raise InputError(f"{what} token counts must be finite and ≥ 0")
    return np.broadcast_to(a, (rows, models))


def cost_table_from_records(
    records: Iterable[tuple[int, dict[str, Any]]], path: str | Path, sha256: str
) -> CostTable:
    """Validate cost rows (line number, mapping): the one place cost rows are checked, so a
    cost table inside another config (e.g. serve's) fails with the same messages."""
    costs: list[ModelCost] = []
    lines: dict[str, int] = {}
    for line, rec in records:
        try:
            cost = ModelCost.model_validate(rec)
        except ValidationError as e:
            model = rec.get("model") if isinstance(rec, dict) else None
            err = input_error_from(e, path=path, row=line)
            if model:
                raise InputError(
                    f"model {model!r}: {err.message}", path=path, row=line, field=err.field
                ) from None
            raise err from None
        if cost.model in lines:
            raise InputError(
                f"model {cost.model!r} appears twice (first on line {lines[cost.model]})",
                path=path,
                row=line,
                field="model",
            )
        if costs and cost.kind != costs[0].kind:
            raise InputError(
                f"model {cost.model!r} has a {cost.kind} cost but {costs[0].model!r} a {costs[0].kind} one: "
                "relative costs and token prices do not compare, use one kind per table",
                path=path,
                row=line,
            )
        lines[cost.model] = line
        costs.append(cost)
    if not costs:
        raise InputError("cost table has no rows", path=path)
    return CostTable(tuple(costs), str(path), sha256)


def load_costs(path: str | Path) -> CostTable:
    """Read a cost table CSV (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory, expected a cost table (.csv)", path=p)
    if p.suffix.lower() != ".csv":
        raise InputError(f"a cost table is a .csv file, got '{p.suffix or '(none)'}'", path=p)
    header, rows = read_csv(p)  # a missing file, bad UTF-8, a column named twice: one line
    unknown = [h for h in header if h not in COLUMNS]
    if "model" not in header or unknown:
        raise InputError(
            f"columns must be {', '.join(COLUMNS)} (found: {', '.join(map(repr, header)) or 'none'})",
            path=p,
            row=1,
        )
    records = [
        (line, {k: v.strip() for k, v in r.items() if v and v.strip()})
        for line, r in rows
        if any((v or "").strip() for v in r.values())  # a row of empty cells is no row
    ]
    raw = p.read_bytes()
    return cost_table_from_records(records, p, hashlib.sha256(raw).hexdigest())


def shipped_costs(name: str) -> Path:
    """The shipped cost table for ``mmlu-pro``, ``routerdc`` or ``alpacaeval`` (data/costs/)."""
    if name not in SHIPPED:
        raise InputError(f"no shipped cost table for {name!r}; shipped: {', '.join(SHIPPED)}")
    return find_data_dir("costs") / "costs" / SHIPPED[name]
