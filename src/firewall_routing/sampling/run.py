"""One sampling run: benchmark items → weak and strong samples → graded OutcomeTable.

For every item and each model the run asks for ``n`` samples at the run's temperature and
one greedy answer (temperature 0); the weak model's greedy request also asks for the first
token's top-2 log-probabilities, which give the ``margin`` (DESIGN.md §2). Everything
goes through the :class:`~firewall_routing.sampling.client.Sampler` and its store, so a
rerun of the same command after a crash requests only what is missing and, given the same
store, writes an identical table.

Items are submitted in benchmark order and the sampler's semaphores are FIFO, so an
interrupted run has finished (mostly) a prefix of the items; ``offline=True`` writes the
table of the items the store already completes without sending any request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firewall_routing.configfiles import read_mapping
from firewall_routing.errors import InputError, input_error_from
from firewall_routing.upstreams import UpstreamConfig, resolve_api_key, warn_literal_keys

if TYPE_CHECKING:
    from firewall_routing.outcomes import OutcomeTable
    from firewall_routing.sampling.client import Sampler, SamplingParams, Upstream
    from firewall_routing.sampling.datasets import BenchmarkItem
    from firewall_routing.sampling.scorers import Score, Scorer
    from firewall_routing.sampling.scorers.cache import ScoreStats
    from firewall_routing.sampling.store import SampleStore, StoredSample

MARGIN_TOP_LOGPROBS = 2


class RunConfig(BaseModel):
    """Everything a ``sample`` run needs (CLI options or a YAML/TOML file, same fields)."""

    model_config = ConfigDict(extra="forbid")

    weak: UpstreamConfig
    strong: UpstreamConfig
    dataset: list[str] = Field(default_factory=lambda: ["gsm8k"], min_length=1)
    split: str = "test"
    limit: int | None = Field(default=None, ge=1, description="Items per dataset.")
    n: int = Field(default=10, ge=1, le=1000)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1)
    template: Literal["chat", "completion"] = "chat"
    stop: list[str] = Field(
        default_factory=list, max_length=4, description="Stop sequences (OpenAI allows up to 4)."
    )
    grader: str | None = Field(
        default=None, description="Grade every item with this grader instead of its dataset's default."
    )
    scorer: str = Field(
        default="exact",
        description="Scorer of every completion (`firewall-routing scorers` lists them): exact = "
        "each item's answer-key grader; reference, judge, reward, bartscore need no answer key.",
    )
    scorer_options: dict[str, Any] = Field(default_factory=dict, description="The scorer's options.")
    table_prompt: Literal["prompt", "question"] = Field(
        default="prompt",
        description="What the table's prompt column holds: the text sent, or the item's question "
        "(for few-shot prompts, whose shared shots would swamp a router's embedding).",
    )
    concurrency: int = Field(default=4, ge=1, le=1024, description="Per upstream.")
    timeout: float = Field(default=600.0, gt=0.0, description="Seconds per request.")
    store: Path = Path("samples.sqlite")
    output: Path = Path("outcomes.jsonl")

    @field_validator("dataset", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("weak", "strong")
    @classmethod
    def _openai_only(cls, v: UpstreamConfig) -> UpstreamConfig:
        """The sampler speaks the OpenAI HTTP API itself (n, logprobs, retries), and the
        upstream's serve-only settings would be silently ignored here."""
        if v.provider != "openai":
            raise ValueError("sample needs an OpenAI-compatible base_url (provider 'openai')")
        ignored = sorted({"timeout", "keepalive_expiry"} & v.model_fields_set)
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: serve-only settings (sample's is the run's 'timeout')")
        return v


def load_config_file(path: Path) -> dict[str, Any]:
    """Raw mapping from a ``.yaml``/``.yml``/``.toml`` file (validated later, merged with
    CLI options first so either can supply any field)."""
    return read_mapping(path)


def make_config(
    file_values: dict[str, Any], overrides: dict[str, Any], path: Path | None = None
) -> RunConfig:
    """Validate the config file's values with CLI overrides applied (nested for upstreams)."""
    merged: dict[str, Any] = dict(file_values)
    for k, v in overrides.items():
        if v is None:
            continue
        if isinstance(v, dict):
            base = merged.get(k)
            merged[k] = {
                **(base if isinstance(base, dict) else {}),
                **{kk: vv for kk, vv in v.items() if vv is not None},
            }
        else:
            merged[k] = v
    try:
        cfg = RunConfig.model_validate(merged)
    except ValidationError as e:
        raise input_error_from(
            e, path=path, missing="required (in the config file or as an option)"
        ) from None
    if path is not None:
        warn_literal_keys(merged, str(path))
    return cfg


def upstream_of(cfg: UpstreamConfig, side: str) -> Upstream:
    """The client's Upstream, with the API key read from the environment now (the rule of
    :mod:`firewall_routing.upstreams`)."""
    from firewall_routing.sampling.client import Upstream

    assert cfg.base_url is not None  # RunConfig admits provider 'openai' only, which requires it
    return Upstream(cfg.base_url, cfg.model, resolve_api_key(cfg, side))


# ----------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class SideResult:
    """One model on one item: the n samples and the greedy answer (with first-token logprobs
    for the weak model)."""

    samples: tuple[StoredSample, ...]
    greedy: StoredSample


@dataclass(frozen=True)
class ItemResult:
    item: BenchmarkItem
    weak: SideResult
    strong: SideResult


@dataclass
class RunStats:
    """What a run did: for the summary line and the benchmark script."""

    items: int = 0
    complete_items: int = 0
    samples_total: int = 0
    samples_cached: int = 0
    samples_new: int = 0
    tokens_new: int = 0
    requests: int = 0
    seconds: float = 0.0


def run_params(cfg: RunConfig) -> SamplingParams:
    from firewall_routing.sampling.client import SamplingParams

    return SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.template, stop=tuple(cfg.stop))


def load_items(cfg: RunConfig) -> list[BenchmarkItem]:
    from firewall_routing.sampling.datasets import load_benchmark

    items = [it for d in cfg.dataset for it in load_benchmark(d, cfg.split, cfg.limit)]
    if not items:
        raise InputError("the datasets have no items", field="dataset")
    if cfg.grader is not None:
        from dataclasses import replace

        from firewall_routing.sampling.graders import get_grader

        get_grader(cfg.grader)  # an unknown name fails here, listing the known ones
        items = [replace(it, grader=cfg.grader) for it in items]
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise InputError("the same item appears twice: list each dataset once", field="dataset")
    sc = make_run_scorer(cfg)  # a bad scorer name or option fails before paying for samples
    if sc.name == "exact":
        from firewall_routing.sampling.graders import check_references

        check_references((it.id, it.grader, it.reference) for it in items)  # before paying for samples
    elif sc.wants_reference() and sc.reference_from == "dataset":
        for it in items:
            if not it.reference.strip():
                raise InputError(
                    f"item '{it.id}': scorer '{sc.name}' needs a reference answer (field 'reference', "
                    "or scorer option reference_from: strong-greedy)"
                )
    return items


def make_run_scorer(cfg: RunConfig) -> Scorer:
    """The run's scorer from ``scorer`` and ``scorer_options`` (one line on a bad one)."""
    from firewall_routing.sampling.scorers import make_scorer

    return make_scorer(cfg.scorer, cfg.scorer_options)


def _side_requests(
    params: SamplingParams, n: int, top_logprobs: int
) -> tuple[tuple[SamplingParams, int], tuple[SamplingParams, int]]:
    """One model's two sample sets per item: n at the run's temperature, 1 greedy."""
    return (params, n), (params.greedy(top_logprobs), 1)


async def _side(
    sampler: Sampler, up: Upstream, prompt: str, params: SamplingParams, n: int, top_logprobs: int
) -> SideResult:
    (p, k), (pg, kg) = _side_requests(params, n, top_logprobs)
    samples, greedy = await asyncio.gather(
        sampler.sample(up, prompt, p, k), sampler.sample(up, prompt, pg, kg)
    )
    return SideResult(tuple(samples), greedy[0])


async def _item(
    sampler: Sampler, item: BenchmarkItem, weak: Upstream, strong: Upstream, params: SamplingParams, n: int
) -> ItemResult | None:
    from firewall_routing.sampling.client import MissingSamples

    try:
        w, s = await asyncio.gather(
            _side(sampler, weak, item.prompt, params, n, MARGIN_TOP_LOGPROBS),
            _side(sampler, strong, item.prompt, params, n, 0),
        )
    except MissingSamples:
        return None
    return ItemResult(item, w, s)


def count_cached(
    store: SampleStore,
    items: Sequence[BenchmarkItem],
    weak: Upstream,
    strong: Upstream,
    params: SamplingParams,
    n: int,
) -> int:
    """Samples of this run the store already holds (progress starts there)."""
    from firewall_routing.sampling.store import SampleKey

    total = 0
    for it in items:
        for up, lp in ((weak, MARGIN_TOP_LOGPROBS), (strong, 0)):
            for p, k in _side_requests(params, n, lp):
                have = store.get(SampleKey.make(up.base_url, up.model, it.prompt, p.key()))
                total += sum(1 for i in have if i < k)
    return total


async def sample_run(
    cfg: RunConfig,
    items: Sequence[BenchmarkItem],
    store: SampleStore,
    *,
    offline: bool = False,
    progress: bool = True,
    sampler_kwargs: dict[str, Any] | None = None,
) -> tuple[list[ItemResult], RunStats]:
    """Sample every item (or, offline, collect what the store has); results in item order."""
    from tqdm import tqdm

    from firewall_routing.sampling.client import Sampler

    weak, strong = upstream_of(cfg.weak, "weak"), upstream_of(cfg.strong, "strong")
    params = run_params(cfg)
    stats = RunStats(items=len(items), samples_total=len(items) * 2 * (cfg.n + 1))
    stats.samples_cached = count_cached(store, items, weak, strong, params, cfg.n)
    bar = tqdm(
        total=stats.samples_total,
        initial=stats.samples_cached,
        unit="sample",
        disable=not progress,
        dynamic_ncols=True,
        smoothing=0.05,
        mininterval=1.0 if _tty() else 30.0,
        desc="sampling",
    )
    start = time.monotonic()

    def on_sample(s: StoredSample) -> None:
        stats.samples_new += 1
        stats.tokens_new += s.tokens
        bar.update(1)
        elapsed = max(time.monotonic() - start, 1e-9)
        bar.set_postfix_str(f"{stats.tokens_new / elapsed:.1f} tok/s", refresh=False)

    try:
        async with Sampler(
            store,
            concurrency=cfg.concurrency,
            timeout=cfg.timeout,
            on_sample=on_sample,
            offline=offline,
            **(sampler_kwargs or {}),
        ) as sampler:
            results = await asyncio.gather(*(_item(sampler, it, weak, strong, params, cfg.n) for it in items))
            stats.requests = sampler.requests_sent
    finally:
        bar.close()
        stats.seconds = time.monotonic() - start
    done = [r for r in results if r is not None]
    stats.complete_items = len(done)
    return done, stats


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


# ------------------------------------------------------------------------------ grading


@dataclass(frozen=True)
class ScoredSide:
    """One model's scores on one item: each sample's, then the greedy answer's."""

    samples: tuple[Score, ...]
    greedy: Score


@dataclass(frozen=True)
class Scored:
    """Every completion of a run, scored by one scorer (the one path from samples to outcomes).

    ``quality_columns`` says whether the table gets ``*_quality`` columns: always for the
    answer-key-free scorers, for the exact graders only where every item's grader has a
    real-valued quality (TriviaQA's token F1; GSM8K/code stay 0/1 only).
    """

    scorer: Scorer
    items: tuple[tuple[ScoredSide, ScoredSide], ...]
    stats: ScoreStats
    quality_columns: bool

    def complete(self, k: int) -> bool:
        """Item ``k`` has a verdict for its greedy answers and at least one sample per side."""
        return all(
            side.greedy.quality is not None and any(x.quality is not None for x in side.samples)
            for side in self.items[k]
        )


def score_results(
    results: Sequence[ItemResult],
    scorer: Scorer | None = None,
    store: SampleStore | None = None,
    progress: bool = False,
) -> Scored:
    """Score every stored completion of ``results`` (cached in ``store`` for model scorers).

    The reference of an item is its dataset answer, or the strong model's greedy answer
    (``reference_from: strong-greedy``); a scorer that needs one and finds it empty is one
    line naming the item.
    """
    from firewall_routing.sampling.graders import QUALITIES
    from firewall_routing.sampling.scorers import ExactScorer, ScoreJob
    from firewall_routing.sampling.scorers.cache import score_cached

    sc = scorer if scorer is not None else ExactScorer()
    jobs: list[ScoreJob] = []
    for r in results:
        ref: str | None = None
        if sc.wants_reference() or sc.name == "exact":
            ref = r.strong.greedy.completion if sc.reference_from == "strong-greedy" else r.item.reference
            if sc.wants_reference() and not (ref or "").strip():
                what = "strong greedy answer" if sc.reference_from == "strong-greedy" else "reference"
                raise InputError(
                    f"item '{r.item.id}': scorer '{sc.name}' needs a reference answer and its {what} is empty"
                )
        for side in (r.weak, r.strong):
            for s in (*side.samples, side.greedy):
                jobs.append(ScoreJob(r.item.id, r.item.prompt, s.completion, ref, r.item.grader))
    scores, stats = score_cached(sc, jobs, store, progress=progress)
    it = iter(scores)
    items = []
    for r in results:
        pair = []
        for side in (r.weak, r.strong):
            samples = tuple(next(it) for _ in side.samples)
            pair.append(ScoredSide(samples, next(it)))
        items.append((pair[0], pair[1]))
    qcols = sc.name != "exact" or (bool(results) and all(r.item.grader in QUALITIES for r in results))
    return Scored(sc, tuple(items), stats, qcols)


def build_table(
    results: Sequence[ItemResult],
    weak_name: str,
    strong_name: str,
    source: str = "",
    table_prompt: Literal["prompt", "question"] = "prompt",
    scored: Scored | None = None,
) -> OutcomeTable:
    """Assemble the OutcomeTable from the scored completions (generic-format ready).

    A sample whose verdict is missing is left out of its row (fewer samples, never a 0); an
    item with no verdict for a greedy answer or for all samples of a side is left out of the
    table (:func:`kept_items` says which).
    """
    from firewall_routing.outcomes import ModelOutcomes, OutcomeTable
    from firewall_routing.sampling.client import margin

    sc = scored if scored is not None else score_results(results)
    keep = kept_items(sc)
    if not keep:
        raise InputError("no item has all its samples (and their scores) yet: nothing to write")
    kept = [results[k] for k in keep]

    def side(name: str, pos: int) -> ModelOutcomes:
        vectors, greedy = [], []
        for k in keep:
            ss = sc.items[k][pos]
            vectors.append(np.array([float(bool(x.passed)) for x in ss.samples if x.quality is not None]))
            greedy.append(float(bool(ss.greedy.passed)))
        return ModelOutcomes(
            name,
            np.array([v.mean() for v in vectors]),
            np.array([len(v) for v in vectors], dtype=np.int64),
            np.array(greedy),
            tuple(vectors),
        )

    margins = [margin(r.weak.greedy.top_logprobs) for r in kept]
    return OutcomeTable.from_pair(
        ids=tuple(r.item.id for r in kept),
        prompts=tuple(getattr(r.item, table_prompt) for r in kept),
        weak=side(weak_name, 0),
        strong=side(strong_name, 1),
        margin=np.array([np.nan if m is None else m for m in margins]),
        benchmark=tuple(r.item.benchmark for r in kept),
        source=source,
    )


def kept_items(scored: Scored) -> list[int]:
    """Indices of the items that go into the table (see :func:`build_table`)."""
    return [k for k in range(len(scored.items)) if scored.complete(k)]


# ------------------------------------------------------------------------------ quality

QUALITY_FIELDS = ("weak_quality", "strong_quality", "weak_greedy_quality", "strong_greedy_quality")


def build_quality(results: Sequence[ItemResult], scored: Scored | None = None) -> list[dict[str, Any]] | None:
    """Real-valued quality of every kept item's completions, one dict of ``QUALITY_FIELDS``
    per table row (same order as :func:`build_table`), or None when the scorer has none for
    these items (the exact graders of GSM8K and code). Computed from the stored completions
    (and cached verdicts), so rerunning the command re-scores without requesting anything.
    """
    from firewall_routing.sampling.graders import QUALITIES

    if not results or (scored is None and any(r.item.grader not in QUALITIES for r in results)):
        return None  # the exact graders have no real-valued quality for these items
    sc = scored if scored is not None else score_results(results)
    if not sc.quality_columns:
        return None
    rows = []
    for k in kept_items(sc):
        row: dict[str, Any] = {}
        for name, ss in zip(("weak", "strong"), sc.items[k], strict=True):
            row[f"{name}_quality"] = [x.quality for x in ss.samples if x.quality is not None]
            row[f"{name}_greedy_quality"] = ss.greedy.quality
        rows.append(row)
    return rows


def write_table(table: OutcomeTable, quality: Sequence[dict[str, Any]] | None, path: Path) -> None:
    """``write_generic`` plus the per-row quality columns (same row order) when there are any.

    JSONL rows get the lists as JSON arrays; CSV rows get them ``;``-joined like the 0/1
    sample columns.
    """
    import csv
    import json

    from firewall_routing.outcomes import write_generic

    write_generic(table, path)
    if quality is None:
        return
    if len(quality) != len(table):
        raise ValueError("one quality row per table row")
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        cols = list(rows[0]) + list(QUALITY_FIELDS)
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for row, qual in zip(rows, quality, strict=True):
                w.writerow(
                    {
                        **row,
                        **{k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in qual.items()},
                    }
                )
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        with tmp.open("w", encoding="utf-8") as f:
            for line, qual in zip(lines, quality, strict=True):
                f.write(json.dumps({**json.loads(line), **qual}, ensure_ascii=False) + "\n")
    tmp.replace(path)
