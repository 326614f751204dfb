"""The ``reproduce`` experiment: the paper's Tables 1–3 on the shipped RouterDC data.

Train (RouterDC GSM8K train, fixed seeded 90/10 split) one router per label design and seed
on the main pair; evaluate in-distribution (GSM8K test) and out-of-distribution (HumanEval,
MBPP); evaluate the *same* routers, not retrained, on the generalization pair (Table 2).
Every number in the report is computed here from the data; nothing is typed in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.labels import DESIGNS, Approximations, compute_labels
from firewall_routing.outcomes import FloatArray, OutcomeTable, concat, load_routerdc

DATASET_FILES: dict[str, tuple[str, ...]] = {
    "gsm8k": ("gsm8k-test.json",),
    "humaneval": ("humaneval_train.json", "humaneval_test.json"),
    "mbpp": ("mbpp.json",),
}
"""Evaluation sets: HumanEval is RouterDC's train+test files together (all 164 problems)."""

TRAIN_FILE = "gsm8k-train.json"
MAIN, GEN = "main", "gen"


def default_data_dir() -> Path:
    """The repo's ``data/`` (editable install) or ``./data``; ``$FIREWALL_ROUTING_DATA`` wins."""
    import os

    env = os.environ.get("FIREWALL_ROUTING_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "data", Path.cwd() / "data"]
    for c in candidates:
        if (c / "routerdc").is_dir():
            return c
    raise InputError(
        "cannot find the shipped data (a folder with routerdc/): pass --data-dir or set FIREWALL_ROUTING_DATA"
    )


class ExperimentConfig(BaseModel):
    """Everything that defines a ``reproduce`` run (written into results.json)."""

    weak: str = "HuggingFaceH4/zephyr-7b-beta"
    strong: str = "cognitivecomputations/dolphin-2.9-llama3-8b"
    gen_weak: str | None = "mistralai/Mistral-7B-v0.1"
    datasets: list[str] = Field(default_factory=lambda: list(DATASET_FILES))
    designs: list[str] | str = "all"
    seeds: int = Field(default=3, ge=1)
    n_boot: int = Field(default=1000, ge=0)
    data_dir: Path | None = None
    greedy_approx: str = "majority"
    val_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = 0
    router: str = "embedding-head"
    router_options: dict[str, Any] = Field(default_factory=dict)
    plots: bool = True

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DATASET_FILES]
        if bad or not v:
            raise ValueError(f"unknown dataset(s) {bad}; choose from {', '.join(DATASET_FILES)}")
        return v

    def design_list(self) -> list[str]:
        if self.designs == "all":
            return list(DESIGNS)
        names = (
            [d.strip() for d in self.designs.split(",")]
            if isinstance(self.designs, str)
            else list(self.designs)
        )
        bad = [d for d in names if d not in DESIGNS]
        if bad:
            raise InputError(
                f"unknown label design(s) {bad}; choose from {', '.join(DESIGNS)}", field="designs"
            )
        return names


def split_train_val(table: OutcomeTable, val_fraction: float, seed: int) -> tuple[OutcomeTable, OutcomeTable]:
    """A fixed, seeded split: the same seed gives the same rows whatever else runs."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(len(table))
    n_val = round(len(table) * val_fraction)
    return table.take(np.sort(perm[n_val:])), table.take(np.sort(perm[:n_val]))


@dataclass
class RouterRun:
    """Scores of one router (all seeds) on every evaluation table."""

    name: str
    kind: str  # "design" | "baseline"
    scores: dict[str, list[FloatArray]] = field(default_factory=dict)  # table key → per seed
    training: list[dict[str, Any]] = field(default_factory=list)


def load_eval_tables(cfg: ExperimentConfig, data_dir: Path) -> dict[str, OutcomeTable]:
    """``"main/gsm8k"``-style keys → tables (the gen pair shares prompts, not outcomes)."""
    pairs = {MAIN: cfg.weak} | ({GEN: cfg.gen_weak} if cfg.gen_weak else {})
    out: dict[str, OutcomeTable] = {}
    for pair, weak in pairs.items():
        for ds in cfg.datasets:
            parts = [
                load_routerdc(data_dir / "routerdc" / f, weak, cfg.strong, ds) for f in DATASET_FILES[ds]
            ]
            out[f"{pair}/{ds}"] = parts[0] if len(parts) == 1 else concat(parts)
    return out


def _progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="router", dynamic_ncols=True)


def train_and_score(
    cfg: ExperimentConfig,
    train: OutcomeTable,
    val: OutcomeTable,
    tables: dict[str, OutcomeTable],
    approx: Approximations,
    save_dir: Path | None = None,
) -> tuple[list[RouterRun], dict[str, list[str]], dict[str, dict[str, float]]]:
    """Train every design × seed, score every table. Returns runs, notes and label params."""
    from firewall_routing.routers import Validation, make_router

    designs = cfg.design_list()
    notes: dict[str, list[str]] = {}
    params: dict[str, dict[str, float]] = {}
    runs: list[RouterRun] = []
    label_values: dict[str, FloatArray] = {}
    validation = Validation.from_table(val)
    with _progress(len(designs) * cfg.seeds, "training routers") as bar:
        for design in designs:
            lab = compute_labels(train, design, approx)
            notes[design], params[design] = list(lab.notes), lab.params
            same = [d for d, v in label_values.items() if np.array_equal(v, lab.values)]
            if same:
                notes[design].append(
                    f"labels identical to {', '.join(same)} on this training "
                    "data, so the routers are identical too"
                )
            label_values[design] = lab.values
            run = RouterRun(design, "design")
            for seed in range(cfg.seeds):
                router = make_router(cfg.router, seed=seed, label_design=design, **cfg.router_options)
                rep = router.fit(train.prompts, lab.values, val=validation)
                run.training.append(
                    {
                        "seed": seed,
                        "best_epoch": rep.best_epoch,
                        "best_val_apgr": rep.best_val_apgr,
                        "seconds": round(rep.seconds, 3),
                    }
                )
                for key, t in tables.items():
                    run.scores.setdefault(key, []).append(router.score_table(t))
                if save_dir is not None and seed == 0:
                    router.save(save_dir / design)
                bar.set_postfix_str(f"{design} seed {seed}")
                bar.update(1)
            runs.append(run)
    for name in ("random", "oracle"):
        run = RouterRun(name, "baseline")
        for seed in range(cfg.seeds if name == "random" else 1):
            r = make_router(name, **({"seed": seed} if name == "random" else {}))
            for key, t in tables.items():
                run.scores.setdefault(key, []).append(r.score_table(t))
        runs.append(run)
    return runs, notes, params


def evaluate_runs(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], n_boot: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Metrics per router × table: per-seed summaries, seed mean/std, paired bootstrap CIs."""
    rows: list[dict[str, Any]] = []
    for key, t in tables.items():
        pr_w, pr_s = t.weak.pass_rate, t.strong.pass_rate
        draws = metrics.bootstrap_draws(len(t), n_boot, seed) if n_boot else None
        for run in runs:
            score_sets = run.scores[key]
            per_seed = [metrics.summarize(s, pr_w, pr_s).as_dict() for s in score_sets]
            keys = per_seed[0].keys()
            mean = {k: float(np.mean([d[k] for d in per_seed])) for k in keys}
            std = {k: float(np.std([d[k] for d in per_seed])) for k in keys}
            ci: dict[str, tuple[float, float]] = {}
            if draws is not None:
                boot = metrics.bootstrap_metrics(score_sets, pr_w, pr_s, draws)
                ci = {k: metrics.ci95(v) for k, v in boot.items()}
            tax = {
                str(int(a * 100)): {
                    k: float(np.mean([metrics.taxonomy(s, pr_w, pr_s, a)[k] for s in score_sets]))
                    for k in metrics.TAXONOMY
                }
                for a in metrics.PASS_RATE_FRACTIONS
            }
            pair, dataset = key.split("/")
            rows.append(
                {
                    "router": run.name,
                    "kind": run.kind,
                    "pair": pair,
                    "dataset": dataset,
                    "n_seeds": len(score_sets),
                    "mean": mean,
                    "std": std,
                    "ci95": ci,
                    "per_seed": per_seed,
                    "taxonomy": tax,
                }
            )
    return rows


def run(cfg: ExperimentConfig, out: Path | None = None) -> Path:
    """Run the whole experiment; returns the output directory (printed as it starts)."""
    from firewall_routing import report
    from firewall_routing.embeddings import get_encoder

    start = time.perf_counter()
    if cfg.greedy_approx not in ("none", "majority"):
        raise InputError(f"--greedy-approx must be 'none' or 'majority', got '{cfg.greedy_approx}'")
    approx = Approximations(greedy=cfg.greedy_approx)  # type: ignore[arg-type]
    data_dir = cfg.data_dir or default_data_dir()
    out = out or Path("runs") / f"reproduce-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"firewall-routing reproduce → {out.resolve()}", flush=True)

    full_train = load_routerdc(data_dir / "routerdc" / TRAIN_FILE, cfg.weak, cfg.strong, "gsm8k-train")
    train, val = split_train_val(full_train, cfg.val_fraction, cfg.split_seed)
    tables = load_eval_tables(cfg, data_dir)

    if cfg.router in ("embedding-head",):
        prompts = list(
            dict.fromkeys(list(full_train.prompts) + [p for t in tables.values() for p in t.prompts])
        )
        print(f"embedding {len(prompts)} distinct prompts (cached on disk after the first run)", flush=True)
        get_encoder(cfg.router_options.get("encoder", "all-MiniLM-L6-v2")).encode(prompts, progress=True)

    runs, notes, params = train_and_score(cfg, train, val, tables, approx, out / "routers")
    print("computing metrics and bootstrap CIs", flush=True)
    rows = evaluate_runs(runs, tables, cfg.n_boot)
    wall = time.perf_counter() - start
    results = {
        "config": json.loads(cfg.model_dump_json()),
        "data_dir": str(data_dir),
        "pairs": {MAIN: {"weak": cfg.weak, "strong": cfg.strong}}
        | ({GEN: {"weak": cfg.gen_weak, "strong": cfg.strong}} if cfg.gen_weak else {}),
        "train": {"rows": len(train), "val_rows": len(val), "source": full_train.source},
        "tables": {
            k: {
                "n": len(t),
                "weak_pass_rate": float(t.weak.pass_rate.mean()),
                "strong_pass_rate": float(t.strong.pass_rate.mean()),
                "source": t.source,
            }
            for k, t in tables.items()
        },
        "label_notes": notes,
        "label_params": params,
        "training": {r.name: r.training for r in runs if r.training},
        "results": rows,
        "wall_seconds_before_report": round(wall, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if cfg.plots:
        report.write_plots(runs, tables, out)
    wall = time.perf_counter() - start
    report.write_markdown(results, out / "report.md", wall_seconds=wall)
    print(report.console_summary(results))
    print(f"wrote {out / 'report.md'}, {out / 'results.json'}" + (", plots/*.png" if cfg.plots else ""))
    print(f"wall time: {wall:.1f} s")
    return out
