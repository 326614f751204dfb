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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.experiment.config import DATASET_FILES, GEN, MAIN, TRAIN_FILE, ExperimentConfig
from firewall_routing.experiment.evaluation import evaluate_and_compare
from firewall_routing.experiment.results import (
    ExperimentResults,
    FitRecord,
    ModelPair,
    RouterRun,
    TableInfo,
    TrainInfo,
)
from firewall_routing.labels import Approximations, compute_labels
from firewall_routing.outcomes import FloatArray, OutcomeTable, concat, load_routerdc, split_train_val
from firewall_routing.sampling.datasets import default_data_dir

if TYPE_CHECKING:
    from firewall_routing.routers import FitReport, Router, Validation


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

    def load(self, name: str, seed: int) -> tuple[dict[str, FloatArray], FitRecord | None] | None:
        if not self.enabled or not self._path(name, seed).exists():
            return None
        d = json.loads(self._path(name, seed).read_text())
        if d.get("fingerprint") != self.fingerprint or not set(self.tables) <= set(d["scores"]):
            return None
        record = FitRecord.from_json(d["training"]) if d["training"] else None
        return {k: np.array(v) for k, v in d["scores"].items()}, record

    def save(self, name: str, seed: int, scores: dict[str, FloatArray], training: FitRecord | None) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "fingerprint": self.fingerprint,
            "training": training.to_json() if training is not None else {},
            "scores": {k: v.tolist() for k, v in scores.items()},
        }
        self._path(name, seed).write_text(json.dumps(payload) + "\n")


def fingerprint(cfg: ExperimentConfig) -> str:
    import hashlib

    keep = cfg.model_dump(exclude={"n_boot", "plots", "resume", "datasets", "designs", "seeds"})
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fit_record(seed: int, rep: FitReport) -> FitRecord:
    return FitRecord(seed, rep.best_epoch, rep.best_val_apgr, round(rep.seconds, 3), rep.epochs)


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
            scores, loaded = cached
            assert loaded is not None, "a trained design's scores are saved with its fit record"
            record = loaded
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
            ctx.store.save(name, seed, scores, run.training[-1] if run.training else None)
        else:
            scores, record = cached
            if record:
                run.training.append(record)
        for key in ctx.tables:
            run.scores.setdefault(key, []).append(scores[key])
    return run


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


def _triviaqa_table(data_dir: Path) -> Path | None:
    """Our sampled TriviaQA table, or None (and a line saying the section is skipped)."""
    from firewall_routing.experiment.triviaqa import TABLE_GLOB, find_table

    path = find_table(data_dir)
    if path is None:
        print(f"no {TABLE_GLOB} in {data_dir / 'local'}: TriviaQA section skipped", flush=True)
    return path


def run(cfg: ExperimentConfig, out: Path | None = None, shown: Path | None = None) -> Path:
    """Run the whole experiment; returns the output directory (printed as it starts).

    ``shown`` is the folder named to the user when ``out`` is a staging folder that is moved
    there on success (see :mod:`firewall_routing.experiment.rundir`)."""
    from firewall_routing.experiment import report
    from firewall_routing.routers import router_class

    start = time.perf_counter()
    approx = Approximations(greedy=cfg.greedy_approx)
    data_dir = cfg.data_dir or default_data_dir()
    out = out or Path("runs") / f"reproduce-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"firewall-routing reproduce → {(shown or out).resolve()}", flush=True)

    tq_path = _triviaqa_table(data_dir) if cfg.triviaqa else None
    full_train = load_routerdc(data_dir / "routerdc" / TRAIN_FILE, cfg.weak, cfg.strong, "gsm8k-train")
    train, val = split_train_val(full_train, cfg.val_fraction, cfg.split_seed)
    tables = load_eval_tables(cfg, data_dir)

    embed_up_front(embedding_encoders(cfg), full_train, tables)

    runs, notes, params = train_and_score(
        cfg, train, val, tables, approx, out / "routers", score_dir=out / "scores"
    )
    print("computing metrics" + (" and bootstrap CIs" if cfg.n_boot else ""), flush=True)
    rows, comparisons = evaluate_and_compare(runs, tables, cfg.n_boot)
    tq = None
    if tq_path is not None:
        from firewall_routing.experiment.triviaqa import run_triviaqa

        print(f"TriviaQA section: {tq_path.name}", flush=True)
        tq = run_triviaqa(
            tq_path,
            cfg.design_list(),
            cfg.baselines,
            router=cfg.router,
            router_options=cfg.router_options,
            seeds=cfg.seeds,
            n_boot=cfg.n_boot,
            approx=approx,
            progress=lambda msg: print(f"  {msg}", flush=True),
        )
    wall = time.perf_counter() - start
    results = ExperimentResults(
        config=cfg,
        data_dir=data_dir,
        pairs={MAIN: ModelPair(cfg.weak, cfg.strong)}
        | ({GEN: ModelPair(cfg.gen_weak, cfg.strong)} if cfg.gen_weak else {}),
        router_seeds=design_seeds(cfg),
        router_seeded=router_class(cfg.router).seeded(),
        train=TrainInfo(len(train), len(val), full_train.source),
        tables={
            k: TableInfo(len(t), float(t.weak.pass_rate.mean()), float(t.strong.pass_rate.mean()), t.source)
            for k, t in tables.items()
        },
        label_notes=notes,
        label_params=params,
        training={r.name: r.training for r in runs if r.training},
        results=rows,
        comparisons=comparisons,
        wall_seconds_before_report=round(wall, 1),
    )
    results_json = results.to_json()
    if tq is not None and tq_path is not None:
        from firewall_routing.experiment.triviaqa import triviaqa_json

        results_json["triviaqa"] = triviaqa_json(tq, tq_path)
    (out / "results.json").write_text(json.dumps(results_json, indent=2) + "\n")
    if cfg.plots:
        report.write_plots(runs, tables, out, n_boot=cfg.n_boot)
    wall = time.perf_counter() - start
    report.write_markdown(results, out / "report.md", wall_seconds=wall)
    if tq is not None and tq_path is not None:
        from firewall_routing.experiment.triviaqa import triviaqa_markdown

        with (out / "report.md").open("a", encoding="utf-8") as f:
            f.write("\n## TriviaQA (our sampled table)\n\n" + triviaqa_markdown(tq, tq_path))
    print(report.console_summary(results))
    if tq is not None:
        from firewall_routing.experiment.verdict import winner_line

        verdict = (
            report._plain(winner_line(f"TriviaQA ({tq.n_test} test queries)", tq.comparison)).removeprefix(
                "* "
            )
            if tq.comparison is not None
            else f"TriviaQA ({tq.n_test} test queries): no bootstrap, no verdict"
        )
        print(
            verdict
            + (f" Hybrid LLM t* on F1 = {tq.t_star:g}." if tq.t_star is not None else "")
            + " Table: report.md."
        )
    final = shown or out
    print(f"wrote {final / 'report.md'}, {final / 'results.json'}" + (", plots/*.png" if cfg.plots else ""))
    print(f"wall time: {wall:.1f} s")
    return out
