"""What defines a ``reproduce`` run: the evaluation sets, the baselines and the config model.

Kept apart from :mod:`firewall_routing.experiment.run` so the typed results
(:mod:`~firewall_routing.experiment.results`) and the report can name the config without
importing the code that trains routers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from firewall_routing.designs import DESIGN_NAMES, DesignName, GreedyApprox, is_design
from firewall_routing.errors import InputError
from firewall_routing.routers import DEFAULT_ROUTER

DATASET_FILES: dict[str, tuple[str, ...]] = {
    "gsm8k": ("gsm8k-test.json",),
    "humaneval": ("humaneval_train.json", "humaneval_test.json"),
    "mbpp": ("mbpp.json",),
}
"""Evaluation sets: HumanEval is RouterDC's train+test files together (all 164 problems)."""

TRAIN_FILE = "gsm8k-train.json"
MAIN, GEN = "main", "gen"

# Row names the sweep computes and its report shows (here so neither imports the other).
RANDOM = "random"
ORACLE = "oracle"
CEILING_PW = "ceiling:weak-pass-rate"
CEILING_PREFIX = "ceiling:"
PLOT_ROUTERS: tuple[str, ...] = ("soft-block", "weak-pass-rate", "mf", "knn")

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
    greedy_approx: GreedyApprox = "majority"
    val_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = 0
    router: str = DEFAULT_ROUTER
    router_options: dict[str, Any] = Field(default_factory=dict)
    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    baseline_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    paper: bool = False
    resume: bool = False
    plots: bool = True
    triviaqa: bool = True
    """The TriviaQA section, when our sampled table is in ``<data dir>/local/`` (see
    :mod:`firewall_routing.experiment.triviaqa`); skipped, and said so, when it is not."""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, v: list[str]) -> list[str]:
        return check_datasets(v)

    @model_validator(mode="after")
    def _known_designs(self) -> ExperimentConfig:
        self.design_list()  # fail before any embedding or training starts
        return self

    def design_list(self) -> list[DesignName]:
        if self.designs == "all":
            return list(DESIGN_NAMES)
        names = (
            [d.strip() for d in self.designs.split(",")]
            if isinstance(self.designs, str)
            else list(self.designs)
        )
        bad = [d for d in names if not is_design(d)]
        if bad:
            raise InputError(
                f"unknown label design(s) {bad}; choose from {', '.join(DESIGN_NAMES)}", field="designs"
            )
        return [d for d in names if is_design(d)]


def paper_config(router_options: dict[str, Any] | None = None, **fields: Any) -> ExperimentConfig:
    """``reproduce --paper``: the fine-tuned ``encoder`` router (the paper's router type) for
    every label design, one seed by default, beside the same baselines (random, MF, oracle)."""
    fields.setdefault("seeds", 1)
    opts = PAPER_ROUTER_OPTIONS | {"progress": True} | (router_options or {})
    return ExperimentConfig(router="encoder", router_options=opts, paper=True, **fields)
