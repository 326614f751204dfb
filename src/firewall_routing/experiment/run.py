"""The ``reproduce`` experiment: the paper's Tables 1–3 on the shipped RouterDC data.

Train (RouterDC GSM8K train, fixed seeded 90/10 split) one router per label design and seed
on the main pair; evaluate in-distribution (GSM8K test) and out-of-distribution (HumanEval,
MBPP); evaluate the *same* routers, not retrained, on the generalization pair (Table 2).
Every number in the report is computed here from the data; nothing is typed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from firewall_routing import metrics
from firewall_routing.datadir import find_data_dir
from firewall_routing.errors import InputError
from firewall_routing.experiment import conclusion
from firewall_routing.labels import DESIGNS, Approximations, compute_labels
from firewall_routing.outcomes import FloatArray, OutcomeTable, concat, load_routerdc
from firewall_routing.routers import DEFAULT_ROUTER

if TYPE_CHECKING:
    from firewall_routing.routers import FitReport, Router, Validation

DATASET_FILES: dict[str, tuple[str, ...]] = {
    "gsm8k": ("gsm8k-test.json",),
    "humaneval": ("humaneval_train.json", "humaneval_test.json"),
    "mbpp": ("mbpp.json",),
}
"""Evaluation sets: HumanEval is RouterDC's train+test files together (all 164 problems)."""

TRAIN_FILE = "gsm8k-train.json"
MAIN, GEN = "main", "gen"

DEFAULT_BASELINES: tuple[str, ...] = ("random", "mf", "oracle")
"""Baseline routers every run adds beside the label designs (any registry name works: a
router with ``fit_table`` is trained on the outcome table itself, e.g. ``mf`` on RouteLLM
battles; others are train-free and read prompts or the table, e.g. ``margin``)."""

PAPER_ROUTER_OPTIONS: dict[str, Any] = {
    "epochs": 3,
    "max_length": 256,
    "batch_size": 16,
    "lr": 5e-5,
    "threads": 1,
}
"""``reproduce --paper`` defaults for the fine-tuned ``encoder`` router (MiniLM backbone).
The paper trains DeBERTa-v3-large for 10 epochs on 8 A100s; 3 epochs of MiniLM is what a
shared 2-core CPU can afford (docs/routers.md has the measured time per epoch). One torch
thread: on a busy 2-core machine two threads made each step ~3× slower (measured 15 s vs
5 s per batch of 16), because every parallel region waits for a descheduled thread."""


def default_data_dir() -> Path:
    """The shipped data folder with its ``routerdc/`` tables (:mod:`firewall_routing.datadir`)."""
    return find_data_dir("routerdc")


def check_datasets(v: list[str]) -> list[str]:
    """Evaluation dataset names must be ones we ship (shared by reproduce and sweep configs)."""
    bad = [d for d in v if d not in DATASET_FILES]
    if bad or not v:
        raise ValueError(f"unknown dataset(s) {bad}; choose from {', '.join(DATASET_FILES)}")
    return v


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
    router: str = DEFAULT_ROUTER
    router_options: dict[str, Any] = Field(default_factory=dict)
    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    baseline_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    paper: bool = False
    resume: bool = False
    plots: bool = True

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, v: list[str]) -> list[str]:
        return check_datasets(v)

    @model_validator(mode="after")
    def _known_designs(self) -> ExperimentConfig:
        self.design_list()  # fail before any embedding or training starts
        return self

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


def score_tables(router: Router, tables: dict[str, OutcomeTable]) -> dict[str, FloatArray]:
    """Scores on every table; a prompt-only router scores each distinct prompt once.

    The main and generalization pairs share prompts, so this halves scoring time for the
    fine-tuned encoder. Routers that read the table (oracle, margin) get each table.
    """
    if router.needs_table:
        return {k: router.score_table(t) for k, t in tables.items()}
    prompts = list(dict.fromkeys(p for t in tables.values() for p in t.prompts))
    by_prompt = dict(zip(prompts, router.score(prompts), strict=True))
    return {k: np.array([by_prompt[p] for p in t.prompts]) for k, t in tables.items()}


class ScoreStore:
    """Per-router-and-seed scores on disk, so an interrupted run resumes where it stopped.

    A file is reused only if it was written under the same run fingerprint (config minus
    presentation options), so changing epochs or designs never mixes old scores in.
    """

    def __init__(
        self, directory: Path | None, fingerprint: str, enabled: bool, tables: Sequence[str]
    ) -> None:
        self.dir = directory
        self.tables = list(tables)
        self.fingerprint = fingerprint
        self.enabled = enabled and directory is not None

    def _path(self, name: str, seed: int) -> Path:
        assert self.dir is not None
        return self.dir / f"{name}-seed{seed}.json"

    def load(self, name: str, seed: int) -> tuple[dict[str, FloatArray], dict[str, Any]] | None:
        if not self.enabled or not self._path(name, seed).exists():
            return None
        d = json.loads(self._path(name, seed).read_text())
        if d.get("fingerprint") != self.fingerprint or not set(self.tables) <= set(d["scores"]):
            return None
        return {k: np.array(v) for k, v in d["scores"].items()}, d["training"]

    def save(self, name: str, seed: int, scores: dict[str, FloatArray], training: dict[str, Any]) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "fingerprint": self.fingerprint,
            "training": training,
            "scores": {k: v.tolist() for k, v in scores.items()},
        }
        self._path(name, seed).write_text(json.dumps(payload) + "\n")


def fingerprint(cfg: ExperimentConfig) -> str:
    import hashlib

    keep = cfg.model_dump(exclude={"n_boot", "plots", "resume", "datasets", "designs", "seeds"})
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fit_record(seed: int, rep: FitReport) -> dict[str, Any]:
    return {
        "seed": seed,
        "best_epoch": rep.best_epoch,
        "best_val_apgr": rep.best_val_apgr,
        "seconds": round(rep.seconds, 3),
        "epochs": rep.epochs,
    }


def _link_saved(save_dir: Path, design: str, same_as: str) -> None:
    """A design whose labels equal an earlier one's points to that router (no second copy)."""
    target, link = save_dir / same_as, save_dir / design
    if not target.exists() or link.exists():
        return
    try:
        link.symlink_to(same_as, target_is_directory=True)
    except OSError:
        import shutil

        shutil.copytree(target, link)


def design_seeds(cfg: ExperimentConfig) -> int:
    """Routers trained per label design: ``cfg.seeds`` for a seeded router, 1 for a
    deterministic one (e.g. ``ridge``): more fits would repeat the same scores and report a
    seed std of 0 that measures nothing."""
    from firewall_routing.routers import router_class

    return cfg.seeds if router_class(cfg.router).seeded() else 1


def _train_design(
    cfg: ExperimentConfig,
    design: str,
    labels: FloatArray,
    ctx: _Context,
) -> RouterRun:
    """All seeds of one label design (each seed resumed from disk when possible)."""
    from firewall_routing.routers import RouterMetadata, make_router, router_class

    run = RouterRun(design, "design")
    seeded = router_class(cfg.router).seeded()
    meta = RouterMetadata.for_training(
        ctx.train.prompts,
        labels,
        label_design=design,
        weak=ctx.train.weak.name,
        strong=ctx.train.strong.name,
    )
    for seed in range(design_seeds(cfg)):
        cached = ctx.store.load(design, seed)
        if cached is None:
            router = make_router(cfg.router, **({"seed": seed} if seeded else {}) | cfg.router_options)
            rep = router.fit(ctx.train.prompts, labels, val=ctx.validation)
            scores, record = score_tables(router, ctx.tables), _fit_record(seed, rep)
            ctx.store.save(design, seed, scores, record)
            if ctx.save_dir is not None and seed == 0:
                router.save(ctx.save_dir / design, meta)
        else:
            scores, record = cached
        run.training.append(record)
        for key in ctx.tables:
            run.scores.setdefault(key, []).append(scores[key])
        ctx.bar.set_postfix_str(f"{design} seed {seed}")
        ctx.bar.update(1)
    return run


@dataclass
class _Context:
    train: OutcomeTable
    validation: Validation
    tables: dict[str, OutcomeTable]
    store: ScoreStore
    save_dir: Path | None
    bar: Any


def same_labels(a: FloatArray, b: FloatArray) -> bool:
    """Equal up to float rounding (1e-9): e.g. hybrid-prob sums products that soft-block
    computes in one expression, so the two differ in the last bits only."""
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=1e-9))


def _copy_run(run: RouterRun, name: str) -> RouterRun:
    return RouterRun(name, run.kind, dict(run.scores), list(run.training))


def train_and_score(
    cfg: ExperimentConfig,
    train: OutcomeTable,
    val: OutcomeTable,
    tables: dict[str, OutcomeTable],
    approx: Approximations,
    save_dir: Path | None = None,
    score_dir: Path | None = None,
) -> tuple[list[RouterRun], dict[str, list[str]], dict[str, dict[str, float]]]:
    """Train every design × seed, score every table. Returns runs, notes and label params.

    Designs whose labels are identical to an earlier design's (e.g. hybrid-prob and
    soft-block on 0/1 correctness) train identical routers under the same seeds, so they are
    trained once and their scores reused; the label note says so.
    """
    from firewall_routing.routers import Validation

    designs = cfg.design_list()
    for name in cfg.baselines:
        check_baseline(name)  # before any training
    notes: dict[str, list[str]] = {}
    params: dict[str, dict[str, float]] = {}
    runs: list[RouterRun] = []
    label_values: dict[str, FloatArray] = {}
    trained: dict[str, RouterRun] = {}
    store = ScoreStore(score_dir, fingerprint(cfg), cfg.resume, list(tables))
    n_seeds = design_seeds(cfg)
    with _progress(len(designs) * n_seeds, "training routers") as bar:
        ctx = _Context(train, Validation.from_table(val), tables, store, save_dir, bar)
        for design in designs:
            lab = compute_labels(train, design, approx)
            notes[design], params[design] = list(lab.notes), lab.params
            same = [d for d, v in label_values.items() if same_labels(v, lab.values)]
            label_values[design] = lab.values
            if same:
                notes[design].append(
                    f"labels identical (to 1e-9) to {', '.join(same)} on this training data, so the "
                    f"routers are identical too (trained once, scores reused from {same[0]})"
                )
                runs.append(_copy_run(trained[same[0]], design))
                if save_dir is not None:
                    _link_saved(save_dir, design, same[0])
                bar.update(n_seeds)
                continue
            trained[design] = _train_design(cfg, design, lab.values, ctx)
            runs.append(trained[design])
    runs += [_baseline_run(cfg, name, ctx) for name in cfg.baselines]
    return runs, notes, params


def check_baseline(name: str) -> type[Router]:
    """A baseline trains on the outcome table with its own target (``fits_table``) or not
    at all; one that needs label-design labels is a ``router``, not a baseline."""
    from firewall_routing.routers import router_class

    cls = router_class(name)
    if cls.trains and not cls.fits_table:
        raise InputError(
            f"baseline '{name}' trains on label-design labels, so it cannot run as a baseline: "
            "use it as the router (--router) instead",
            field="baselines",
        )
    return cls


def _baseline_run(cfg: ExperimentConfig, name: str, ctx: _Context) -> RouterRun:
    """One baseline router per seed (one run if it takes no seed), trained if it can be.

    A baseline trains on the outcome table with its own target (``fits_table``, e.g. ``mf``)
    or not at all; a router that needs a label design belongs in ``router``, not here.
    """
    from firewall_routing.routers import make_router

    cls = check_baseline(name)
    run = RouterRun(name, "baseline")
    for seed in range(cfg.seeds if cls.seeded() else 1):
        opts = dict(cfg.baseline_options.get(name, {})) | ({"seed": seed} if cls.seeded() else {})
        cached = ctx.store.load(name, seed)
        if cached is None:
            router = make_router(name, **opts)
            if cls.fits_table:
                run.training.append(_fit_record(seed, router.fit_table(ctx.train, val=ctx.validation)))
            scores = score_tables(router, ctx.tables)
            ctx.store.save(name, seed, scores, run.training[-1] if run.training else {})
        else:
            scores, record = cached
            if record:
                run.training.append(record)
        for key in ctx.tables:
            run.scores.setdefault(key, []).append(scores[key])
    return run


def evaluate_runs(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], n_boot: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Metrics per router × table: per-seed summaries, seed mean/std, paired bootstrap CIs."""
    return evaluate_and_compare(runs, tables, n_boot, seed)[0]


def evaluate_and_compare(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], n_boot: int, seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`evaluate_runs` plus, per table, which routers are separable (``comparisons``).

    The comparisons reuse the per-resample APGRs behind the CIs, so they cost nothing extra
    and test exactly the number in the tables: the seed-mean APGR. With several seeds each
    resample re-scores every seed and averages, so the test covers which queries were
    sampled, given these trained routers — not seed-to-seed training variance (the ± std).
    Empty when ``n_boot`` is 0.
    """
    rows: list[dict[str, Any]] = []
    comparisons: dict[str, Any] = {}
    for key, t in tables.items():
        pr_w, pr_s = t.weak.pass_rate, t.strong.pass_rate
        draws = metrics.bootstrap_draws(len(t), n_boot, seed) if n_boot else None
        points: dict[str, float] = {}
        boots: dict[str, FloatArray] = {}
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
                points[run.name], boots[run.name] = mean["apgr"], boot["apgr"]
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
        if draws is not None:
            comparisons[key] = _compare_table(runs, key, points, boots, n_boot)
    return rows, comparisons


def _compare_table(
    runs: list[RouterRun], key: str, points: dict[str, float], boots: dict[str, FloatArray], n_boot: int
) -> dict[str, Any]:
    """Paired differences on one table, identical routers merged into one entry."""
    groups = conclusion.identical_groups({r.name: r.scores[key] for r in runs})
    name = {g[0]: conclusion.group_name(g) for g in groups}
    diffs = conclusion.compare(
        {name[g[0]]: points[g[0]] for g in groups}, {name[g[0]]: boots[g[0]] for g in groups}
    )
    return {
        "n_boot": n_boot,
        "n_seeds": max(len(r.scores[key]) for r in runs),
        "groups": [g for g in groups if len(g) > 1],
        "apgr": {name[g[0]]: points[g[0]] for g in groups},
        "differences": [d.as_dict() for d in diffs],
    }


def embedding_encoders(cfg: ExperimentConfig, extra: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The sentence encoders this run's embedding routers (``scores_embeddings``) use, so
    ``run`` embeds every prompt once up front (and fills the cache); ``extra`` adds routers
    (name → options) trained outside ``cfg``, such as the sweep's label-trained baselines."""
    from firewall_routing.routers import make_router, router_class

    opts = {cfg.router: cfg.router_options} | {b: cfg.baseline_options.get(b, {}) for b in cfg.baselines}
    opts |= extra or {}
    found = [make_router(n, **o).encoder for n, o in opts.items() if router_class(n).scores_embeddings]
    return list(dict.fromkeys(found))


def embed_up_front(encoders: list[str], train: OutcomeTable, tables: dict[str, OutcomeTable]) -> None:
    """Embed every distinct prompt once with each encoder, with one progress bar, before any
    router trains: later fits and scores then read the cache."""
    from firewall_routing.embeddings import get_encoder

    if not encoders:
        return
    prompts = list(dict.fromkeys(list(train.prompts) + [p for t in tables.values() for p in t.prompts]))
    print(f"embedding {len(prompts)} distinct prompts (cached on disk after the first run)", flush=True)
    for enc in encoders:
        get_encoder(enc).encode(prompts, progress=True)


def paper_config(router_options: dict[str, Any] | None = None, **fields: Any) -> ExperimentConfig:
    """``reproduce --paper``: the fine-tuned ``encoder`` router (the paper's router type) for
    every label design, one seed by default, beside the same baselines (random, MF, oracle)."""
    fields.setdefault("seeds", 1)
    opts = PAPER_ROUTER_OPTIONS | {"progress": True} | (router_options or {})
    return ExperimentConfig(router="encoder", router_options=opts, paper=True, **fields)


def run(cfg: ExperimentConfig, out: Path | None = None, shown: Path | None = None) -> Path:
    """Run the whole experiment; returns the output directory (printed as it starts).

    ``shown`` is the folder named to the user when ``out`` is a staging folder that is moved
    there on success (see :mod:`firewall_routing.experiment.rundir`)."""
    from firewall_routing.experiment import report
    from firewall_routing.routers import router_class

    start = time.perf_counter()
    if cfg.greedy_approx not in ("none", "majority"):
        raise InputError(f"--greedy-approx must be 'none' or 'majority', got '{cfg.greedy_approx}'")
    approx = Approximations(greedy=cfg.greedy_approx)  # type: ignore[arg-type]
    data_dir = cfg.data_dir or default_data_dir()
    out = out or Path("runs") / f"reproduce-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"firewall-routing reproduce → {(shown or out).resolve()}", flush=True)

    full_train = load_routerdc(data_dir / "routerdc" / TRAIN_FILE, cfg.weak, cfg.strong, "gsm8k-train")
    train, val = split_train_val(full_train, cfg.val_fraction, cfg.split_seed)
    tables = load_eval_tables(cfg, data_dir)

    embed_up_front(embedding_encoders(cfg), full_train, tables)

    runs, notes, params = train_and_score(
        cfg, train, val, tables, approx, out / "routers", score_dir=out / "scores"
    )
    print("computing metrics" + (" and bootstrap CIs" if cfg.n_boot else ""), flush=True)
    rows, comparisons = evaluate_and_compare(runs, tables, cfg.n_boot)
    wall = time.perf_counter() - start
    results = {
        "config": json.loads(cfg.model_dump_json()),
        "data_dir": str(data_dir),
        "pairs": {MAIN: {"weak": cfg.weak, "strong": cfg.strong}}
        | ({GEN: {"weak": cfg.gen_weak, "strong": cfg.strong}} if cfg.gen_weak else {}),
        "router_seeds": design_seeds(cfg),
        "router_seeded": router_class(cfg.router).seeded(),
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
        "comparisons": comparisons,
        "wall_seconds_before_report": round(wall, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if cfg.plots:
        report.write_plots(runs, tables, out, n_boot=cfg.n_boot)
    wall = time.perf_counter() - start
    report.write_markdown(results, out / "report.md", wall_seconds=wall)
    print(report.console_summary(results))
    final = shown or out
    print(f"wrote {final / 'report.md'}, {final / 'results.json'}" + (", plots/*.png" if cfg.plots else ""))
    print(f"wall time: {wall:.1f} s")
    return out
