"""The provenance file written next to every table ``sample`` writes.

An outcome table says nothing about how it was made: which endpoints, which model the
endpoint actually served under the requested name (an alias like ``small`` may stand for
any GGUF, ``gpt-4o-mini`` for a dated snapshot), the sampling parameters, the prompt
format, when, with which package versions and which command. ``<table>.provenance.json``
records all of that.

A table is often made in several sittings (Ctrl-C, ``kill -9``, an outage, then the same
command again). The served model names and the sittings themselves are therefore kept in
the sample store (tables ``served`` and ``sessions``), not only in the process that writes
the file: a resumed or ``--offline`` run describes every sitting whose samples the table
may hold, including the killed ones (``finished: null``), and the model names served in
all of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firewall_routing.sampling.datasets import PAPER_PROMPT

if TYPE_CHECKING:
    from firewall_routing.outcomes import OutcomeTable
    from firewall_routing.sampling.datasets import BenchmarkItem
    from firewall_routing.sampling.run import RunConfig, RunStats
    from firewall_routing.sampling.store import SampleStore

FORMAT = "firewall-routing/sample-provenance"
VERSION = 1
PACKAGES = ("firewall-routing", "httpx", "numpy", "pydantic", "typer", "xllamacpp")
PAPER_FORMAT_BENCHMARKS = ("gsm8k", "triviaqa")
TEMPLATES = {
    "chat": "each prompt sent as the one user message to /chat/completions; the server applies "
    "the model's chat template",
    "completion": "each prompt sent raw to /completions",
}


def provenance_path(table: Path) -> Path:
    """``outcomes.jsonl`` → ``outcomes.jsonl.provenance.json`` (a .csv and a .jsonl of the
    same name keep separate files)."""
    return table.with_name(table.name + ".provenance.json")


def run_identity(cfg: RunConfig) -> dict[str, Any]:
    """What decides which stored samples a run reads: sittings with the same identity may
    have contributed to its table (``n`` and the datasets only select among them)."""
    return {
        "weak": {"base_url": cfg.weak.base_url, "model": cfg.weak.model},
        "strong": {"base_url": cfg.strong.base_url, "model": cfg.strong.model},
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "template": cfg.template,
        **({"stop": cfg.stop} if cfg.stop else {}),
    }


def package_versions() -> dict[str, str]:
    """Python, platform and the installed versions of the packages a table depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def session_info(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """What the store records about this sitting when it starts."""
    return {"command": list(sys.argv if argv is None else argv), "packages": package_versions()}


def _utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _prompt_formats(items: Sequence[BenchmarkItem]) -> dict[str, str]:
    formats = {}
    for bench in dict.fromkeys(it.benchmark for it in items):
        formats[bench] = (
            PAPER_PROMPT if bench in PAPER_FORMAT_BENCHMARKS else "the dataset's own prompt text, unchanged"
        )
    return formats


def build(
    cfg: RunConfig,
    items: Sequence[BenchmarkItem],
    table: OutcomeTable,
    table_path: Path,
    store: SampleStore,
    stats: RunStats,
    *,
    offline: bool,
    argv: Sequence[str] | None = None,
    quality: Sequence[Mapping[str, Any]] | None = None,
    scoring: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record of ``table`` (just written to ``table_path``); ``scoring``
    describes a scorer other than the exact graders (name, cache key, threshold, cost)."""
    from firewall_routing.sampling.run import MARGIN_TOP_LOGPROBS

    def side(up: Any) -> dict[str, Any]:
        return {
            "base_url": up.base_url,
            "model_requested": up.model,
            "model_served": store.served_models(up.base_url, up.model),
            "name_in_table": up.display_name,
        }

    prompts = hashlib.sha256()
    for it in items:
        prompts.update(hashlib.sha256(it.prompt.encode("utf-8")).digest())
    sessions = [
        {**s, "started": _utc(s["started"]), "finished": _utc(s["finished"])}
        for s in store.sessions(run_identity(cfg))
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "written": _utc(dt.datetime.now(dt.UTC).timestamp()),
        "command": list(sys.argv if argv is None else argv),
        "packages": package_versions(),
        "table": {
            "path": table_path.name,
            "sha256": _sha256(table_path),
            "rows": len(table),
            "items_asked": stats.items,
            "partial": stats.complete_items < stats.items,
            "offline": offline,
        },
        "weak": side(cfg.weak),
        "strong": side(cfg.strong),
        "sampling": {
            "n": cfg.n,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
            "greedy": {"temperature": 0.0, "top_p": 1.0, "weak_top_logprobs": MARGIN_TOP_LOGPROBS},
            "template": cfg.template,
            "template_means": TEMPLATES[cfg.template],
            "stop": cfg.stop,
            "table_prompt": cfg.table_prompt,
            "prompt_format": _prompt_formats(items),
            "prompts_sha256": prompts.hexdigest(),
        },
        "data": {"datasets": cfg.dataset, "split": cfg.split, "limit": cfg.limit},
        "grading": _grading(items, quality) if scoring is None else {**scoring, "quality": _means(quality)},
        "store": {"path": str(cfg.store), "samples": store.count()},
        "sessions": sessions,
    }


def _grading(items: Sequence[BenchmarkItem], quality: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Which graders decided correctness, and the quality columns' function and means."""
    from firewall_routing.sampling.graders import GRADERS, QUALITIES

    graders = sorted({it.grader for it in items})
    out: dict[str, Any] = {
        "graders": {g: f"firewall_routing.sampling.graders.{GRADERS[g].__name__}" for g in graders},
        "quality": None,
    }
    if quality:
        means = _means(quality)
        out["quality"] = {
            "functions": {g: f"firewall_routing.sampling.graders.{QUALITIES[g].__name__}" for g in graders},
            "means": means,
        }
    return out


def _means(quality: Sequence[Mapping[str, Any]] | None) -> dict[str, float] | None:
    """Mean of each quality column over the rows (a row's list counts as its mean)."""
    if not quality:
        return None
    return {
        k: float(
            sum(sum(r[k]) / len(r[k]) if isinstance(r[k], list) else r[k] for r in quality) / len(quality)
        )
        for k in quality[0]
    }


def write(record: Mapping[str, Any], table_path: Path) -> Path:
    """Write ``record`` beside the table; returns the file's path."""
    path = provenance_path(table_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def served_warnings(record: Mapping[str, Any]) -> list[str]:
    """One line per upstream that answered under several model names across the sittings
    (the server's model was swapped mid-table: its samples mix two models)."""
    out = []
    for side in ("weak", "strong"):
        served = record[side]["model_served"]
        if len(served) > 1:
            out.append(
                f"warning: the {side} upstream {record[side]['base_url']} answered as "
                f"{len(served)} different models ({', '.join(served)}): its samples may mix them"
            )
    return out
