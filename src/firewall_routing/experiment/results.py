"""The typed results of ``evaluate`` and ``reproduce``, and their one JSON form.

Why: results used to travel between the experiment, the report and the command line as
``dict[str, Any]`` whose keys (``"pass_rate@20"``) were built in one module and parsed in
another, so a misspelt key failed at run time, in the report. Here every result is a frozen
dataclass; the metric-name keys of ``results.json`` exist only in the ``to_json`` methods
below, which define that file's schema (``tests/experiment/test_results.py`` pins it).

Nothing here computes a metric: :mod:`~firewall_routing.experiment.evaluation` fills these,
:mod:`~firewall_routing.experiment.report` renders them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from firewall_routing.experiment.conclusion import Difference
from firewall_routing.experiment.config import ExperimentConfig
from firewall_routing.metrics import BootstrapMetrics, Summary, ci95
from firewall_routing.outcomes import FloatArray

Interval = tuple[float, float]
"""A 95 % interval (lo, hi)."""

RouterKind = Literal["design", "baseline", "ceiling"]
"""Why a router is in a run: trained on a label design, a baseline, or (``sweep``) a
ceiling row that reads the test outcomes."""


def percent(fraction: float) -> int:
    """0.2 → 20: how fractions appear in ``results.json`` keys and in the report."""
    return int(fraction * 100)


def summary_json(s: Summary) -> dict[str, float]:
    """A :class:`~firewall_routing.metrics.Summary` as results.json writes it (flat keys)."""
    d = {
        "apgr": s.apgr,
        "apgr_area": s.apgr_area,
        "weak_pass_rate": s.weak_pass_rate,
        "strong_pass_rate": s.strong_pass_rate,
    }
    d |= {f"pass_rate@{percent(a)}": v for a, v in s.pass_rate_at.items()}
    d |= {f"cpt{percent(t)}": v for t, v in s.cpt.items()}
    d |= {f"quality_drop@cost_adv{percent(c)}": v for c, v in s.quality_drop.items()}
    return d


@dataclass
class RouterRun:
    """Scores of one router (all seeds) on every evaluation table: what evaluation reads."""

    name: str
    kind: RouterKind
    scores: dict[str, list[FloatArray]] = field(default_factory=dict)  # table key → per seed
    training: list[FitRecord] = field(default_factory=list)


@dataclass(frozen=True)
class FitRecord:
    """What training one router (one seed) did; ``seconds`` is wall time."""

    seed: int
    best_epoch: int | None
    best_val_apgr: float | None
    seconds: float
    epochs: list[dict[str, float]] = field(default_factory=list)
    label: str | None = None
    """``sweep``: the label a label-trained baseline (kNN) was fitted on."""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "seed": self.seed,
            "best_epoch": self.best_epoch,
            "best_val_apgr": self.best_val_apgr,
            "seconds": self.seconds,
            "epochs": self.epochs,
        }
        return d | ({"label": self.label} if self.label is not None else {})

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FitRecord:
        return cls(
            d["seed"], d["best_epoch"], d["best_val_apgr"], d["seconds"], d.get("epochs", []), d.get("label")
        )


@dataclass(frozen=True)
class BootstrapCI:
    """95 % bootstrap intervals of the metrics that have one."""

    apgr: Interval
    pass_rate_at: dict[float, Interval]

    @classmethod
    def from_boot(cls, boot: BootstrapMetrics) -> BootstrapCI:
        return cls(ci95(boot.apgr), {a: ci95(v) for a, v in boot.pass_rate_at.items()})

    def to_json(self) -> dict[str, list[float]]:
        return {"apgr": list(self.apgr)} | {
            f"pass_rate@{percent(a)}": list(v) for a, v in self.pass_rate_at.items()
        }


def ci_json(ci: BootstrapCI | None) -> dict[str, list[float]]:
    """``{}`` when no bootstrap was run (``--bootstrap 0``)."""
    return {} if ci is None else ci.to_json()


Taxonomy = dict[float, dict[str, float]]
"""Strong fraction α → expected share of the strong calls by outcome
(:data:`firewall_routing.metrics.TAXONOMY` names)."""


def taxonomy_json(tax: Taxonomy) -> dict[str, dict[str, float]]:
    return {str(percent(a)): shares for a, shares in tax.items()}


@dataclass(frozen=True)
class RouterEvaluation:
    """Every metric of one router (all its seeds) on one table: the one evaluation result."""

    per_seed: list[Summary]
    mean: Summary
    std: Summary
    ci95: BootstrapCI | None
    taxonomy: Taxonomy

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)


@dataclass(frozen=True)
class Evaluation:
    """``firewall-routing evaluate``: one router on one outcome table."""

    router: str
    table: str
    n: int
    weak: str
    strong: str
    ev: RouterEvaluation
    router_metadata: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d = {
            "router": self.router,
            "table": self.table,
            "n": self.n,
            "weak": self.weak,
            "strong": self.strong,
            "metrics": summary_json(self.ev.mean),
            "ci95": ci_json(self.ev.ci95),
            "taxonomy": taxonomy_json(self.ev.taxonomy),
        }
        return d | ({"router_metadata": self.router_metadata} if self.router_metadata is not None else {})


@dataclass(frozen=True)
class ResultRow:
    """One router on one table of a ``reproduce`` run."""

    router: str
    kind: RouterKind
    pair: str
    dataset: str
    ev: RouterEvaluation

    def to_json(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "kind": self.kind,
            "pair": self.pair,
            "dataset": self.dataset,
            "n_seeds": self.ev.n_seeds,
            "mean": summary_json(self.ev.mean),
            "std": summary_json(self.ev.std),
            "ci95": ci_json(self.ev.ci95),
            "per_seed": [summary_json(s) for s in self.ev.per_seed],
            "taxonomy": taxonomy_json(self.ev.taxonomy),
        }


@dataclass(frozen=True)
class Comparison:
    """Which routers are separable on one table (identical routers merged into one name)."""

    n_boot: int
    n_seeds: int
    groups: list[list[str]]
    apgr: dict[str, float]
    differences: list[Difference]

    def to_json(self) -> dict[str, Any]:
        return {
            "n_boot": self.n_boot,
            "n_seeds": self.n_seeds,
            "groups": self.groups,
            "apgr": self.apgr,
            "differences": [d.as_dict() for d in self.differences],
        }


@dataclass(frozen=True)
class ModelPair:
    weak: str
    strong: str


@dataclass(frozen=True)
class TableInfo:
    """An evaluation table: size and the two all-one-model pass rates."""

    n: int
    weak_pass_rate: float
    strong_pass_rate: float
    source: str


@dataclass(frozen=True)
class TrainInfo:
    rows: int
    val_rows: int
    source: str


@dataclass
class ExperimentResults:
    """Everything a ``reproduce`` run found; ``results.json`` is :meth:`to_json`."""

    config: ExperimentConfig
    data_dir: Path
    pairs: dict[str, ModelPair]
    router_seeds: int
    router_seeded: bool
    train: TrainInfo
    tables: dict[str, TableInfo]
    label_notes: dict[str, list[str]]
    label_params: dict[str, dict[str, float]]
    training: dict[str, list[FitRecord]]
    results: list[ResultRow]
    comparisons: dict[str, Comparison]
    wall_seconds_before_report: float

    def row(self, router: str, pair: str, dataset: str) -> ResultRow | None:
        for r in self.results:
            if (r.router, r.pair, r.dataset) == (router, pair, dataset):
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "config": json.loads(self.config.model_dump_json()),
            "data_dir": str(self.data_dir),
            "pairs": {k: {"weak": p.weak, "strong": p.strong} for k, p in self.pairs.items()},
            "router_seeds": self.router_seeds,
            "router_seeded": self.router_seeded,
            "train": {"rows": self.train.rows, "val_rows": self.train.val_rows, "source": self.train.source},
            "tables": {
                k: {
                    "n": t.n,
                    "weak_pass_rate": t.weak_pass_rate,
                    "strong_pass_rate": t.strong_pass_rate,
                    "source": t.source,
                }
                for k, t in self.tables.items()
            },
            "label_notes": self.label_notes,
            "label_params": self.label_params,
            "training": {k: [r.to_json() for r in rs] for k, rs in self.training.items()},
            "results": [r.to_json() for r in self.results],
            "comparisons": {k: c.to_json() for k, c in self.comparisons.items()},
            "wall_seconds_before_report": self.wall_seconds_before_report,
        }
