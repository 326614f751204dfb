"""The ``sweep`` experiment: every label design on every RouterDC model pair with a real gap.

One pair (``reproduce``) cannot say whether a label design beats another: differences are
1–3 APGR points and one pair's bootstrap CIs overlap. The sweep repeats ``reproduce``'s
training (RouterDC GSM8K train, the same seeded split, the same router per design) for every
ordered pair of RouterDC models whose GSM8K-train pass rates differ by at least ``min_gap``,
evaluates in distribution (GSM8K test) and out of distribution (HumanEval, MBPP), and then
asks two questions:

* per pair: is design a's APGR above b's? — a paired bootstrap over queries (the same
  resampled queries for both routers, :func:`metrics.paired_apgr_difference`);
* across pairs: does a beat b in more pairs than chance? — a sign test and a Wilcoxon
  signed-rank test over the per-pair differences.

Ceiling rows put each router on a scale: the true *test* weak pass rate as the score (a
perfect difficulty predictor), the true test label of each design as the score (a perfect
predictor of what that router was trained to predict), and the oracle. Random routing is
its expected straight line (APGR exactly 50: a constant score), never one random draw.

Everything reused from ``reproduce`` (loading, split, label designs, training with identical
labels trained once, baselines) comes from :mod:`firewall_routing.experiment.run`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from firewall_routing import metrics
from firewall_routing.designs import DesignName, GreedyApprox, as_design, is_design
from firewall_routing.errors import InputError
from firewall_routing.experiment.config import (
    CEILING_PREFIX,
    CEILING_PW,
    DATASET_FILES,
    ORACLE,
    RANDOM,
    TRAIN_FILE,
    ExperimentConfig,
    check_datasets,
)
from firewall_routing.experiment.report import short
from firewall_routing.experiment.results import FitRecord, RouterKind, RouterRun
from firewall_routing.experiment.run import (
    embed_up_front,
    embedding_encoders,
    load_eval_tables,
    score_tables,
    train_and_score,
)
from firewall_routing.labels import DESIGNS, Approximations, compute_labels
from firewall_routing.outcomes import (
    FloatArray,
    OutcomeTable,
    load_routerdc,
    routerdc_models,
    split_train_val,
)
from firewall_routing.routers import DEFAULT_ROUTER
from firewall_routing.sampling.datasets import default_data_dir

DEFAULT_BASELINES: tuple[str, ...] = ("mf", "knn")
"""Trained baselines beside the designs (random is always added as its expected line)."""

LABEL_BASELINES: tuple[str, ...] = ("knn",)
"""Baselines trained with ``fit`` on a target label (``--knn-label``) rather than by
``reproduce``'s baseline path (``mf`` trains on the outcome table itself, ``margin`` on nothing)."""

GAIN = "gain"
"""RouterBench-style target: a router that predicts each model's quality and routes by the
predicted difference orders queries by E[pr_s − pr_w]; as a label in [0, 1] with high = weak
is enough, (1 − (pr_s − pr_w)) / 2 (the oracle's score, predicted). kNN averages labels
linearly, so kNN on this label *is* kNN predicting both models' pass rates."""


class SweepConfig(BaseModel):
    """Everything that defines a sweep (written into results.json)."""

    min_gap: float = Field(default=0.10, ge=0.0, le=1.0)
    min_test_gap: float = Field(default=0.05, ge=-1.0, le=1.0)
    datasets: list[str] = Field(default_factory=lambda: list(DATASET_FILES))
    designs: list[str] | str = "all"
    router: str = DEFAULT_ROUTER
    router_options: dict[str, Any] = Field(default_factory=dict)
    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    baseline_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    knn_label: str = GAIN
    seeds: int = Field(default=1, ge=1)
    n_boot: int = Field(default=1000, ge=0)
    boot_seed: int = 0
    val_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = 0
    greedy_approx: GreedyApprox = "majority"
    max_pairs: int | None = Field(default=None, ge=1)
    data_dir: Path | None = None
    plots: bool = True

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, v: list[str]) -> list[str]:
        return check_datasets(v)

    @field_validator("knn_label")
    @classmethod
    def _known_label(cls, v: str) -> str:
        if v != GAIN and not is_design(v):
            raise ValueError(f"'{v}' is neither '{GAIN}' nor a label design ({', '.join(DESIGNS)})")
        return v

    @model_validator(mode="after")
    def _check_names(self) -> SweepConfig:
        from firewall_routing.routers import router_class

        self.experiment(weak="w", strong="s")  # unknown designs fail here, before any work
        for name in [self.router, *self.table_baselines(), *self.label_baselines()]:
            router_class(name)  # unknown router: one clear InputError
        return self

    def _baselines(self) -> list[str]:
        return [b for b in dict.fromkeys(self.baselines) if b not in (RANDOM, ORACLE)]

    def table_baselines(self) -> list[str]:
        """Baselines that ``train_and_score`` runs (random is the expected line, added here)."""
        return [b for b in self._baselines() if b not in LABEL_BASELINES]

    def label_baselines(self) -> list[str]:
        return [b for b in self._baselines() if b in LABEL_BASELINES]

    def experiment(self, weak: str, strong: str) -> ExperimentConfig:
        """The ``reproduce`` config that trains one pair exactly as the sweep means it (without
        the label-trained baselines: ``reproduce`` runs only table-trained or train-free ones)."""
        return ExperimentConfig(
            weak=weak,
            strong=strong,
            gen_weak=None,
            datasets=self.datasets,
            designs=self.designs,
            seeds=self.seeds,
            n_boot=self.n_boot,
            data_dir=self.data_dir,
            greedy_approx=self.greedy_approx,
            val_fraction=self.val_fraction,
            split_seed=self.split_seed,
            router=self.router,
            router_options=self.router_options,
            baselines=self.table_baselines(),
            baseline_options=self.baseline_options,
            plots=False,
        )


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    weak: str
    strong: str
    train_weak_pass_rate: float
    train_strong_pass_rate: float

    @property
    def gap(self) -> float:
        return self.train_strong_pass_rate - self.train_weak_pass_rate

    @property
    def label(self) -> str:
        return f"{short(self.weak)} → {short(self.strong)}"


def select_pairs(train_file: Path, min_gap: float) -> list[Pair]:
    """Every ordered (weak, strong) model pair whose train pass-rate gap is ≥ ``min_gap``,
    largest gap first (ties by name, so the order never depends on the file's key order)."""
    models = routerdc_models(train_file)
    if len(models) < 2:
        raise InputError("needs at least two models in the scores", path=train_file)
    rate = {m: float(load_routerdc(train_file, m, m, "gsm8k-train").weak.pass_rate.mean()) for m in models}
    pairs = [
        Pair(w, s, rate[w], rate[s])
        for w, s in itertools.permutations(models, 2)
        if rate[s] - rate[w] >= min_gap - 1e-12
    ]
    return sorted(pairs, key=lambda p: (-round(p.gap, 9), p.weak, p.strong))


# --------------------------------------------------------------------------- one pair


def _run(name: str, kind: RouterKind, scores: dict[str, FloatArray]) -> RouterRun:
    return RouterRun(name, kind, {k: [v] for k, v in scores.items()})


def extra_runs(
    tables: dict[str, OutcomeTable],
    designs: Sequence[DesignName],
    approx: Approximations,
    label_params: dict[str, dict[str, float]],
) -> list[RouterRun]:
    """Random (expected line) and the ceiling rows, computed from the test tables themselves.

    A design's ceiling uses the parameters fitted on the training labels (hybrid-trans's t*),
    so it is exactly the quantity that design's router was trained to predict.
    """
    from firewall_routing.routers import make_router

    oracle = make_router(ORACLE)
    runs = [
        _run(RANDOM, "baseline", {k: np.full(len(t), 0.5) for k, t in tables.items()}),
        _run(ORACLE, "ceiling", {k: oracle.score_table(t) for k, t in tables.items()}),
        _run(CEILING_PW, "ceiling", {k: t.weak.pass_rate.copy() for k, t in tables.items()}),
    ]
    for d in designs:
        if d == "weak-pass-rate":
            continue  # the same row as CEILING_PW
        labels = {k: compute_labels(t, d, approx, label_params.get(d)).values for k, t in tables.items()}
        runs.append(_run(CEILING_PREFIX + d, "ceiling", labels))
    return runs


def target_labels(table: OutcomeTable, target: str, approx: Approximations) -> FloatArray:
    """Training labels of a label-trained baseline: ``gain`` or any label design."""
    if target == GAIN:
        return (1.0 - (table.strong.pass_rate - table.weak.pass_rate)) / 2.0
    return compute_labels(table, as_design(target, field="knn_label"), approx).values


def label_baseline_runs(
    cfg: SweepConfig,
    train: OutcomeTable,
    val: OutcomeTable,
    tables: dict[str, OutcomeTable],
    approx: Approximations,
) -> list[RouterRun]:
    """``knn`` and the like: fit on ``cfg.knn_label`` (they take no seed: one run each)."""
    from firewall_routing.routers import Validation, make_router

    runs = []
    y = target_labels(train, cfg.knn_label, approx)
    for name in cfg.label_baselines():
        router = make_router(name, **cfg.baseline_options.get(name, {}))
        rep = router.fit(train.prompts, y, val=Validation.from_table(val))
        run = _run(name, "baseline", score_tables(router, tables))
        run.training.append(FitRecord(0, None, None, round(rep.seconds, 3), label=cfg.knn_label))
        runs.append(run)
    return runs


def own_ceiling(name: str, kind: str) -> str:
    """Ceiling a router is read against: its own label's for a design, else the difficulty one."""
    if kind == "design" and name != "weak-pass-rate":
        return CEILING_PREFIX + name
    return CEILING_PW


def ceiling_fraction(apgr: float, ceiling: float) -> float:
    """(APGR − 50) / (ceiling − 50): 0 = random, 1 = as good as the ceiling score."""
    return (apgr - 50.0) / (ceiling - 50.0) if abs(ceiling - 50.0) > 1e-9 else float("nan")


def evaluate_pair(
    runs: list[RouterRun],
    tables: dict[str, OutcomeTable],
    n_boot: int,
    boot_seed: int,
    min_test_gap: float = 0.0,
) -> dict[str, Any]:
    """Per dataset: every router's APGR with CI and ceiling fractions, and paired differences
    between every two non-ceiling routers (one shared bootstrap draw per dataset).

    A dataset on which this pair's strong model is not at least ``min_test_gap`` better than
    its weak model is recorded but marked excluded: APGR divides by that gap, so near 0 it is
    noise and below 0 its sign flips (e.g. a math model as the "strong" model on MBPP).
    """
    out: dict[str, Any] = {}
    for key, t in tables.items():
        ds = key.split("/", 1)[1]
        pr_w, pr_s = t.weak.pass_rate, t.strong.pass_rate
        gap = float(pr_s.mean() - pr_w.mean())
        head = {
            "n": len(t),
            "weak_pass_rate": float(pr_w.mean()),
            "strong_pass_rate": float(pr_s.mean()),
            "gap": gap,
        }
        if gap < min_test_gap or abs(gap) < 1e-9:
            out[ds] = head | {"excluded": f"test gap {gap:+.3f} < --min-test-gap {min_test_gap}"}
            continue
        draws = metrics.bootstrap_draws(len(t), n_boot, boot_seed) if n_boot else None
        point: dict[str, float] = {}
        boot: dict[str, FloatArray] = {}
        rows: dict[str, dict[str, Any]] = {}
        for r in runs:
            sets = r.scores[key]
            per_seed = [metrics.mean_apgr(s, pr_w, pr_s) for s in sets]
            point[r.name] = float(np.mean(per_seed))
            ci: list[float] | None = None
            if draws is not None:
                boot[r.name] = metrics.bootstrap_apgr(sets, pr_w, pr_s, draws)
                ci = list(metrics.ci95(boot[r.name]))
            rows[r.name] = {
                "kind": r.kind,
                "apgr": point[r.name],
                "ci95": ci,
                "per_seed": per_seed,
            }
        for r in runs:
            if r.kind == "ceiling":
                continue
            own = own_ceiling(r.name, r.kind)
            rows[r.name]["ceiling"] = own
            rows[r.name]["of_ceiling"] = ceiling_fraction(point[r.name], point[own])
            rows[r.name]["of_pw_ceiling"] = ceiling_fraction(point[r.name], point[CEILING_PW])
        names = [r.name for r in runs if r.kind != "ceiling"]
        paired = []
        for a, b in itertools.combinations(names, 2):
            d = point[a] - point[b]
            if draws is None:
                res = metrics.PairedDifference(d, float("nan"), float("nan"), float("nan"))
            else:
                res = metrics.paired_from_boot(d, boot[a] - boot[b])
            paired.append({"a": a, "b": b} | res.as_dict())
        out[ds] = head | {"routers": rows, "paired": paired}
    return out


# --------------------------------------------------------------------------- across pairs


def _paired_lookup(res: dict[str, Any], a: str, b: str) -> dict[str, float]:
    for p in res["paired"]:
        if (p["a"], p["b"]) == (a, b):
            return dict(p)
        if (p["a"], p["b"]) == (b, a):
            return {"diff": -p["diff"], "lo": -p["hi"], "hi": -p["lo"], "p": p["p"]}
    raise KeyError((a, b))


def across(pairs: list[dict[str, Any]], datasets: Sequence[str], contenders: Sequence[str]) -> dict[str, Any]:
    """Mean over pairs per router and win counts / tests for every ordered router pair."""
    out: dict[str, Any] = {}
    for ds in datasets:
        per = [p["datasets"][ds] for p in pairs if "excluded" not in p["datasets"][ds]]
        excluded = [p["label"] for p in pairs if "excluded" in p["datasets"][ds]]
        if not per:
            out[ds] = {"n_pairs": 0, "excluded": excluded, "mean": {}, "wins": {}}
            continue
        names = list(per[0]["routers"])
        mean: dict[str, dict[str, float]] = {}
        for n in names:
            vals = np.array([r["routers"][n]["apgr"] for r in per])
            row = {"apgr": float(vals.mean()), "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
            if "of_ceiling" in per[0]["routers"][n]:
                own = per[0]["routers"][n]["ceiling"]
                ceil = np.array([r["routers"][own]["apgr"] for r in per])
                pw = np.array([r["routers"][CEILING_PW]["apgr"] for r in per])
                row["of_ceiling"] = ceiling_fraction(float(vals.mean()), float(ceil.mean()))
                row["of_pw_ceiling"] = ceiling_fraction(float(vals.mean()), float(pw.mean()))
            mean[n] = row
        wins: dict[str, dict[str, Any]] = {}
        for a, b in itertools.permutations(contenders, 2):
            diffs = [_paired_lookup(r, a, b) for r in per]
            d = np.array([x["diff"] for x in diffs])
            row = metrics.across_pairs(d).as_dict()
            row["significant_wins"] = sum(1 for x in diffs if x["lo"] > 0)
            row["significant_losses"] = sum(1 for x in diffs if x["hi"] < 0)
            wins.setdefault(a, {})[b] = row
        out[ds] = {"n_pairs": len(per), "excluded": excluded, "mean": mean, "wins": wins}
    return out


# --------------------------------------------------------------------------- driver


def _progress_note(i: int, n: int, pair: Pair) -> str:
    return f"[{i}/{n}] {pair.label} (GSM8K-train gap {pair.gap:.3f})"


def identical_designs(
    train: OutcomeTable,
    designs: Sequence[DesignName],
    approx: Approximations,
    params: dict[str, dict[str, float]],
) -> dict[str, str]:
    """Design → the first earlier design with the same training labels (so the same router),
    the rule ``train_and_score`` uses to train once; tables list such designs once."""
    from firewall_routing.experiment.run import same_labels

    seen: dict[str, FloatArray] = {}
    out: dict[str, str] = {}
    for d in designs:
        v = compute_labels(train, d, approx, params.get(d)).values
        first = next((e for e, w in seen.items() if same_labels(v, w)), None)
        if first is not None:
            out[d] = first
        else:
            seen[d] = v
    return out


PREFERRED_NAMES: tuple[str, ...] = ("soft-block",)
"""When designs are one router, the name tables show: the paper's design rather than the
first in :data:`DESIGNS` order (win-rate equals soft-block on pass-rate data)."""


def aliases(pairs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Designs identical to another design in *every* pair (e.g. hybrid-prob and soft-block on
    pass-rate data), mapped to the one name the console and summary print for the group."""
    if not pairs:
        return {}
    common = dict(pairs[0]["same_as"])
    for p in pairs[1:]:
        common = {d: f for d, f in common.items() if p["same_as"].get(d) == f}
    groups: dict[str, list[str]] = {}
    for d, first in common.items():
        groups.setdefault(first, [first]).append(d)
    out: dict[str, str] = {}
    for members in groups.values():
        shown = next((n for n in PREFERRED_NAMES if n in members), members[0])
        out |= {m: shown for m in members if m != shown}
    return out


def sweep_pair(
    cfg: SweepConfig, pair: Pair, data_dir: Path, approx: Approximations
) -> tuple[dict[str, Any], list[str]]:
    """Train and evaluate one pair; returns its results and the names of its routers."""
    ecfg = cfg.experiment(pair.weak, pair.strong)
    full = load_routerdc(data_dir / "routerdc" / TRAIN_FILE, pair.weak, pair.strong, "gsm8k-train")
    train, val = split_train_val(full, cfg.val_fraction, cfg.split_seed)
    tables = load_eval_tables(ecfg, data_dir)
    runs, notes, params = train_and_score(ecfg, train, val, tables, approx)
    runs += label_baseline_runs(cfg, train, val, tables, approx)
    runs += extra_runs(tables, ecfg.design_list(), approx, params)
    identical = {d: n for d, ns in notes.items() for n in ns if "identical" in n}
    same_as = identical_designs(train, ecfg.design_list(), approx, params)
    result = {
        "weak": pair.weak,
        "strong": pair.strong,
        "label": pair.label,
        "train_weak_pass_rate": pair.train_weak_pass_rate,
        "train_strong_pass_rate": pair.train_strong_pass_rate,
        "train_gap": pair.gap,
        "identical_labels": identical,
        "same_as": same_as,
        "label_params": params,
        "training_seconds": {
            r.name: round(sum(x.seconds for x in r.training), 3) for r in runs if r.training
        },
        "datasets": evaluate_pair(runs, tables, cfg.n_boot, cfg.boot_seed, cfg.min_test_gap),
    }
    return result, [r.name for r in runs if r.kind != "ceiling"]


def run(cfg: SweepConfig, out: Path) -> dict[str, Any]:
    """Run the sweep; writes results.json, summary.md and plots/ into ``out``."""
    from firewall_routing.experiment import sweep_report

    start = time.perf_counter()
    data_dir = cfg.data_dir or default_data_dir()
    train_file = data_dir / "routerdc" / TRAIN_FILE
    pairs = select_pairs(train_file, cfg.min_gap)
    if not pairs:
        raise InputError(f"no model pair has a GSM8K-train gap ≥ {cfg.min_gap}", path=train_file)
    if cfg.max_pairs is not None:
        pairs = pairs[: cfg.max_pairs]
    out.mkdir(parents=True, exist_ok=True)
    print(f"firewall-routing sweep → {out.resolve()}", flush=True)
    print(
        f"{len(pairs)} ordered pairs with GSM8K-train gap ≥ {cfg.min_gap}; router {cfg.router}, "
        f"{cfg.seeds} seed(s), {cfg.n_boot} bootstrap draws",
        flush=True,
    )
    approx = Approximations(greedy=cfg.greedy_approx)
    first = cfg.experiment(pairs[0].weak, pairs[0].strong)
    label_baselines = {n: cfg.baseline_options.get(n, {}) for n in cfg.label_baselines()}
    encoders = embedding_encoders(first, label_baselines)
    if encoders:
        full = load_routerdc(train_file, pairs[0].weak, pairs[0].strong, "gsm8k-train")
        embed_up_front(encoders, full, load_eval_tables(first, data_dir))

    results: list[dict[str, Any]] = []
    contenders: list[str] = []
    for i, pair in enumerate(pairs, start=1):
        print(_progress_note(i, len(pairs), pair), flush=True)
        res, names = sweep_pair(cfg, pair, data_dir, approx)
        results.append(res)
        contenders = names
    summary = across(results, cfg.datasets, contenders)
    wall = time.perf_counter() - start
    payload: dict[str, Any] = {
        "config": json.loads(cfg.model_dump_json()),
        "data_dir": str(data_dir),
        "n_pairs": len(results),
        "designs": cfg.experiment("w", "s").design_list(),
        "contenders": contenders,
        "aliases": aliases(results),
        "notes": [
            "random = the expected APGR of random routing (a constant score): exactly 50, CI [50, 50]",
            f"{CEILING_PW}: the true test weak pass rate as the score (a perfect difficulty predictor)",
            f"{CEILING_PREFIX}<design>: the true test label of that design as the score",
            "of_ceiling = (APGR − 50) / (ceiling − 50): designs against their own label's ceiling, "
            f"baselines against {CEILING_PW}",
            f"knn (k nearest training prompts, cosine) is trained on the '{cfg.knn_label}' label"
            + (
                " = (1 − (pr_s − pr_w))/2, i.e. it predicts both models' pass rates"
                if cfg.knn_label == GAIN
                else ""
            ),
            f"a pair × dataset whose test gap (strong − weak pass rate) is below {cfg.min_test_gap} is "
            "excluded from means and tests (APGR divides by that gap)",
            "paired: bootstrap over queries with the same resampled queries for both routers; "
            "p two-sided; across pairs: sign test (ties dropped) and Wilcoxon signed-rank",
        ],
        "pairs": results,
        "summary": summary,
        "wall_seconds": round(wall, 1),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    if cfg.plots:
        sweep_report.write_plot(payload, out / "plots" / "sweep-apgr.png")
    wall = time.perf_counter() - start
    payload["wall_seconds"] = round(wall, 1)
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "summary.md").write_text(sweep_report.markdown(payload))
    print(sweep_report.console(payload))
    print(
        f"wrote {out / 'summary.md'}, {out / 'results.json'}"
        + (", plots/sweep-apgr.png" if cfg.plots else "")
    )
    print(f"wall time: {wall:.1f} s")
    return payload
