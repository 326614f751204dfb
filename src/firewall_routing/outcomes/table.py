"""The OutcomeTable: what every model did on each query (DESIGN.md §2, §9).

A table holds any number of models, each a :class:`ModelOutcomes` with arrays aligned with
the rows. The two-model table of the paper is a *view*: ``table.pair(weak, strong)`` names
the roles, and ``table.weak`` / ``table.strong`` read them, so every pair design, router and
metric runs unchanged on a 7- or 28-model table. Keeping all models in the view matters: a
router that learns from every model's answers (item response theory) gets them for free.

Missing outcomes are explicit and never failures: a model without an outcome on a row has
pass rate NaN and n = 0 there (an empty sample vector where samples are kept). A command
that needs complete rows for the models it uses calls :meth:`OutcomeTable.complete`, which
stops with one line naming the model and file, or drops those rows when the user asked for
it (``--drop-incomplete``) and says so in the notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from firewall_routing.errors import InputError

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

MAX_SAMPLES = 1_000_000_000
"""Upper bound on a sample count: larger counts are typos, and would overflow int64 arrays."""

DEFAULT_QUALITY_THRESHOLD = 0.5
"""When a row has quality scores but no correctness, a sample counts as correct when its
quality is ≥ this (token F1 ≥ 0.5 for TriviaQA-style answers; the judge's preference over the
reference ≥ 0.5 for AlpacaEval). Every table built this way says so in its notes;
``--quality-threshold`` changes it (e.g. −3.5 for BARTScore)."""

DROP_INCOMPLETE_HINT = "pass --drop-incomplete to leave those rows out"


@dataclass(frozen=True)
class ModelOutcomes:
    """One model's results on every query of a table (arrays aligned with the table rows).

    ``pass_rate`` is NaN where the model has no outcome (and ``n`` is 0 there). ``greedy``
    holds 0/1 correctness of the temperature-0 answer, NaN where unknown. ``samples`` holds
    per-sample 0/1 correctness vectors (lengths may differ per row, empty where missing) or
    is None when only pass rates are known. ``quality`` holds per-sample real-valued quality
    scores (None when the data has none) and ``greedy_quality`` the quality of the
    temperature-0 answer (None, or NaN where unknown): Hybrid LLM's labels compare these.
    ``margin`` is this model's first-token p(top1) − p(top2) (None, or NaN where unknown);
    the margin router reads the weak model's.
    """

    name: str
    pass_rate: FloatArray
    n: IntArray
    greedy: FloatArray
    samples: tuple[FloatArray, ...] | None = None
    quality: tuple[FloatArray, ...] | None = None
    greedy_quality: FloatArray | None = None
    margin: FloatArray | None = None

    def take(self, idx: IntArray) -> ModelOutcomes:
        samples = None if self.samples is None else tuple(self.samples[i] for i in idx)
        quality = None if self.quality is None else tuple(self.quality[i] for i in idx)
        gq = None if self.greedy_quality is None else self.greedy_quality[idx]
        margin = None if self.margin is None else self.margin[idx]
        return ModelOutcomes(
            self.name, self.pass_rate[idx], self.n[idx], self.greedy[idx], samples, quality, gq, margin
        )

    @property
    def missing(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Rows where this model has no outcome (not a failure: nothing is known there)."""
        return np.isnan(self.pass_rate)

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
        greedy answer's quality (the real-valued counterpart of the pass rate); NaN where the
        model has no outcome."""
        if self.quality is not None:
            return np.array([float(np.mean(q)) if len(q) else np.nan for q in self.quality])
        if self.has_greedy_quality:
            assert self.greedy_quality is not None
            return self.greedy_quality.astype(np.float64, copy=True)
        raise ValueError(f"model {self.name!r} has no quality scores")


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(m) for m in names)


@dataclass(frozen=True)
class OutcomeTable:
    """One row per query: prompt plus every model's outcomes, and optionally a chosen pair.

    ``models`` is ordered (the file's order) with unique names. ``roles`` is the (weak,
    strong) pair chosen by :meth:`pair`; a two-model table without roles reads its models in
    order as weak and strong.
    """

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    models: tuple[ModelOutcomes, ...]
    benchmark: tuple[str, ...]
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    roles: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise InputError("an outcome table needs at least one model", path=self.source or None)
        seen: set[str] = set()
        for m in self.models:
            if m.name in seen:
                raise InputError(
                    f"model {m.name!r} appears twice: a table holds each model once", path=self.source or None
                )
            seen.add(m.name)
        n = len(self.prompts)
        sizes = {len(self.ids), len(self.benchmark)} | {len(m.pass_rate) for m in self.models}
        if sizes != {n}:
            raise ValueError(f"OutcomeTable columns have different lengths: {sizes} vs {n}")
        if self.roles is not None and not set(self.roles) <= seen:
            raise ValueError(f"roles {self.roles} name models the table does not hold")

    @classmethod
    def from_pair(
        cls,
        ids: tuple[str, ...],
        prompts: tuple[str, ...],
        weak: ModelOutcomes,
        strong: ModelOutcomes,
        margin: FloatArray,
        benchmark: tuple[str, ...],
        source: str = "",
        notes: tuple[str, ...] = (),
    ) -> OutcomeTable:
        """The two-model table of a weak/strong pair; ``margin`` is the weak model's."""
        return cls(ids, prompts, (replace(weak, margin=margin), strong), benchmark, source, notes)

    def __len__(self) -> int:
        return len(self.prompts)

    # ------------------------------------------------------------------ models

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def model(self, name: str) -> ModelOutcomes:
        for m in self.models:
            if m.name == name:
                return m
        raise InputError(
            f"unknown model {name!r}; models in this file: {_names(self.model_names)}",
            path=self.source or None,
        )

    def select(self, names: Sequence[str]) -> OutcomeTable:
        """The table with only ``names`` (in that order); the pair stays if both are kept."""
        models = tuple(self.model(n) for n in names)
        roles = self.roles if self.roles is not None and set(self.roles) <= set(names) else None
        return replace(self, models=models, roles=roles)

    def pass_rate_matrix(self, names: Sequence[str] | None = None) -> FloatArray:
        """rows × models pass rates (``names`` order, default all), NaN where missing."""
        models = self.models if names is None else tuple(self.model(n) for n in names)
        return np.stack([m.pass_rate for m in models], axis=1).astype(np.float64, copy=False)

    def n_matrix(self, names: Sequence[str] | None = None) -> IntArray:
        """rows × models sample counts behind each pass rate, 0 where missing."""
        models = self.models if names is None else tuple(self.model(n) for n in names)
        return np.stack([m.n for m in models], axis=1).astype(np.int64, copy=False)

    def quality_matrix(self, names: Sequence[str] | None = None) -> FloatArray:
        """rows × models mean quality of one answer (:meth:`ModelOutcomes.mean_quality`), NaN
        where missing; a model without quality scores is a one-line error naming it."""
        models = self.models if names is None else tuple(self.model(n) for n in names)
        for m in models:
            if not m.has_quality and m.greedy_quality is None:
                raise InputError(f"model {m.name!r} has no quality scores", path=self.source or None)
        cols = [m.mean_quality() if m.has_quality else np.asarray(m.greedy_quality) for m in models]
        return np.stack(cols, axis=1).astype(np.float64, copy=False)

    def complete(self, names: Sequence[str] | None = None, drop: bool = False) -> OutcomeTable:
        """The table checked to have an outcome of every model in ``names`` (default: all) on
        every row; with ``drop`` the rows lacking one are left out and a note says how many."""
        wanted = list(dict.fromkeys(self.model_names if names is None else names))
        missing = np.zeros(len(self), dtype=bool)
        for name in wanted:
            m = self.model(name).missing
            if m.any() and not drop:
                first = int(np.argmax(m))
                raise InputError(
                    f"model {name!r} has no outcome on {int(m.sum())} of {len(self)} rows (first: row "
                    f"{first + 1}, id {self.ids[first]!r}); missing outcomes are not failures: "
                    f"{DROP_INCOMPLETE_HINT}",
                    path=self.source or None,
                )
            missing |= m
        if not missing.any():
            return self
        if missing.all():
            raise InputError(
                f"no row has an outcome of every model of {_names(wanted)}", path=self.source or None
            )
        kept = self.take(np.flatnonzero(~missing))
        note = (
            f"dropped {int(missing.sum())} of {len(self)} rows where {_names(wanted)} lack an outcome "
            "(--drop-incomplete)"
        )
        return replace(kept, notes=(*self.notes, note))

    # ------------------------------------------------------------------ the pair view

    def pair(self, weak: str, strong: str) -> OutcomeTable:
        """The same table with the weak and strong roles chosen (they may name one model)."""
        self.model(weak), self.model(strong)  # unknown names fail here, listing the known ones
        return replace(self, roles=(weak, strong))

    @property
    def has_pair(self) -> bool:
        return self.roles is not None or len(self.models) == 2

    @property
    def pair_names(self) -> tuple[str, str]:
        if self.roles is not None:
            return self.roles
        if len(self.models) == 2:
            return self.models[0].name, self.models[1].name
        raise InputError(
            f"this table holds {len(self.models)} model{'s' if len(self.models) != 1 else ''} "
            f"({_names(self.model_names)}): pass --weak and --strong to choose the pair",
            path=self.source or None,
        )

    @property
    def weak(self) -> ModelOutcomes:
        return self.model(self.pair_names[0])

    @property
    def strong(self) -> ModelOutcomes:
        return self.model(self.pair_names[1])

    @property
    def margin(self) -> FloatArray:
        """The weak model's first-token margin (NaN where unknown): what the margin router reads."""
        m = self.weak.margin
        return np.full(len(self), np.nan) if m is None else m

    @property
    def has_margin(self) -> bool:
        return bool(len(self.margin)) and not bool(np.isnan(self.margin).any())

    # ------------------------------------------------------------------ rows

    def take(self, idx: Sequence[int] | np.ndarray[Any, Any]) -> OutcomeTable:
        ix = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            ids=tuple(self.ids[i] for i in ix),
            prompts=tuple(self.prompts[i] for i in ix),
            models=tuple(m.take(ix) for m in self.models),
            benchmark=tuple(self.benchmark[i] for i in ix),
        )


def concat(tables: Sequence[OutcomeTable], source: str = "") -> OutcomeTable:
    """Stack tables of the same models (e.g. HumanEval train + test = all 164 problems)."""
    if not tables:
        raise ValueError("concat needs at least one table")
    first = tables[0]
    for t in tables[1:]:
        if t.model_names != first.model_names:
            raise ValueError(
                f"cannot concat tables of different models: {first.model_names} vs {t.model_names}"
            )
        if t.roles != first.roles:
            raise ValueError("cannot concat tables of different model pairs")
    models = tuple(_concat_model([t.models[k] for t in tables]) for k in range(len(first.models)))
    return OutcomeTable(
        ids=tuple(i for t in tables for i in t.ids),
        prompts=tuple(p for t in tables for p in t.prompts),
        models=models,
        benchmark=tuple(b for t in tables for b in t.benchmark),
        source=source or " + ".join(t.source for t in tables),
        notes=tuple(dict.fromkeys(n for t in tables for n in t.notes)),
        roles=first.roles,
    )


def _concat_model(parts: Sequence[ModelOutcomes]) -> ModelOutcomes:
    samples: tuple[FloatArray, ...] | None = None
    if all(p.samples is not None for p in parts):
        samples = tuple(s for p in parts for s in p.samples or ())
    quality: tuple[FloatArray, ...] | None = None
    if all(p.quality is not None for p in parts):
        quality = tuple(q for p in parts for q in p.quality or ())
    return ModelOutcomes(
        parts[0].name,
        np.concatenate([p.pass_rate for p in parts]),
        np.concatenate([p.n for p in parts]),
        np.concatenate([p.greedy for p in parts]),
        samples,
        quality,
        _concat_optional([p.greedy_quality for p in parts], [len(p.pass_rate) for p in parts]),
        _concat_optional([p.margin for p in parts], [len(p.pass_rate) for p in parts]),
    )


def _concat_optional(arrays: Sequence[FloatArray | None], sizes: Sequence[int]) -> FloatArray | None:
    """None if every part lacks the column, else the parts with NaN where one lacks it."""
    if all(a is None for a in arrays):
        return None
    return np.concatenate([nan_array(k) if a is None else a for a, k in zip(arrays, sizes, strict=True)])


def nan_array(n: int) -> FloatArray:
    return np.full(n, np.nan, dtype=np.float64)


def split_train_val(table: OutcomeTable, val_fraction: float, seed: int) -> tuple[OutcomeTable, OutcomeTable]:
    """A fixed, seeded split: the same seed gives the same rows whatever else runs."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(len(table))
    n_val = round(len(table) * val_fraction)
    return table.take(np.sort(perm[n_val:])), table.take(np.sort(perm[:n_val]))
