"""MixInstruct (LLM-Blender's release, the data set of Hybrid LLM) as a weak/strong table.

Each item is ``{"id", "instruction", "input", "output", "candidates": [{"model",
"decoding_method", "text", "scores": {"bartscore": ..., "bertscore": ..., "rouge1": ...}}]}``
(a JSON list in ``.json`` files, one item per line in ``.jsonl``). A pair of models and one
metric turn it into an :class:`OutcomeTable` with real-valued quality, so Hybrid LLM's labels
(r_det, r_prob, r_trans) compare exactly what the paper compared: the metric of each model's
responses.

* prompt = ``instruction`` and ``input`` joined by a newline (the empty one left out);
* a model's sampled qualities = the metric of its candidates whose ``decoding_method`` is not
  ``greedy`` (the release has one ``top_p_sampling`` candidate per model; Hybrid LLM sampled
  10 — both load); its greedy quality = its first ``greedy`` candidate, if any (when it has
  only greedy candidates, those are its samples too);
* correctness (for the pass-rate designs and APGR) = metric ≥ ``quality_threshold``, as for
  any generic file with quality only; the table's notes say so.

The conversion produces generic-format records, so every row is validated by the same code
(:func:`~firewall_routing.outcomes.generic.table_from_records`) and fails with the same
one-line errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError
from firewall_routing.outcomes.generic import table_from_records
from firewall_routing.outcomes.readers import read_json, read_jsonl
from firewall_routing.outcomes.table import DEFAULT_QUALITY_THRESHOLD, OutcomeTable

MIXINSTRUCT_METRIC = "bartscore"
"""Hybrid LLM trains and evaluates on BARTScore (its §4)."""


def _mixinstruct_items(p: Path) -> Iterator[tuple[int, Any]]:
    """(row, item): line numbers for JSONL, 1-based item positions for a JSON list."""
    if p.suffix.lower() == ".jsonl":
        yield from read_jsonl(p)
        return
    data = read_json(p)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of MixInstruct items (or a .jsonl file)", path=p)
    yield from enumerate(data, start=1)


def _finite_score(v: Any, p: Path, row: int, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        raise InputError(f"score must be a finite number, got {v!r}", path=p, row=row, field=fld)
    return float(v)


def mixinstruct_records(
    path: str | Path, weak: str, strong: str, metric: str = MIXINSTRUCT_METRIC
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Generic-format records (weak/strong quality = ``metric`` of each model's candidates)."""
    p = Path(path)
    for row, item in _mixinstruct_items(p):
        if not isinstance(item, dict):
            raise InputError("item is not a JSON object", path=p, row=row)
        parts = [item.get("instruction"), item.get("input")]
        if any(x is not None and not isinstance(x, str) for x in parts):
            raise InputError("instruction and input must be strings", path=p, row=row, field="input")
        prompt = "\n".join(x for x in parts if isinstance(x, str) and x.strip())
        cands = item.get("candidates")
        if not isinstance(cands, list):
            raise InputError("missing candidates list", path=p, row=row, field="candidates")
        rec: dict[str, Any] = {"prompt": prompt, "weak_model": weak, "strong_model": strong}
        if item.get("id") is not None:
            rec["id"] = str(item["id"])
        for side, model in (("weak", weak), ("strong", strong)):
            sampled: list[float] = []
            greedy: list[float] = []
            for k, c in enumerate(cands):
                if not isinstance(c, dict):
                    raise InputError("candidate is not an object", path=p, row=row, field=f"candidates[{k}]")
                if c.get("model") != model:
                    continue
                scores = c.get("scores")
                if not isinstance(scores, dict) or metric not in scores:
                    keys = ", ".join(map(repr, sorted(scores))) if isinstance(scores, dict) else "none"
                    raise InputError(
                        f"no score {metric!r} for model {model!r}; scores here: {keys} (choose with --metric)",
                        path=p,
                        row=row,
                        field=f"candidates[{k}].scores.{metric}",
                    )
                q = _finite_score(scores[metric], p, row, f"candidates[{k}].scores.{metric}")
                (greedy if c.get("decoding_method") == "greedy" else sampled).append(q)
            if not sampled and not greedy:
                models = sorted({c.get("model") for c in cands if isinstance(c, dict)} - {None}, key=str)
                raise InputError(
                    f"no candidate of model {model!r}; models here: {', '.join(map(repr, models))}",
                    path=p,
                    row=row,
                    field="candidates",
                )
            rec[f"{side}_quality"] = sampled or greedy
            if greedy:
                rec[f"{side}_greedy_quality"] = greedy[0]
        yield row, rec


def mixinstruct_models(path: str | Path) -> list[str]:
    """Model names of the first item (for error messages)."""
    for _, item in _mixinstruct_items(Path(path)):
        if isinstance(item, dict) and isinstance(item.get("candidates"), list):
            return sorted({str(c.get("model")) for c in item["candidates"] if isinstance(c, dict)})
        break
    return []


def load_mixinstruct(
    path: str | Path,
    weak: str,
    strong: str,
    metric: str = MIXINSTRUCT_METRIC,
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
) -> OutcomeTable:
    """A MixInstruct file as an outcome table for one weak/strong pair and one metric."""
    p = Path(path)
    return table_from_records(
        mixinstruct_records(p, weak, strong, metric), p, benchmark or p.stem, quality_threshold
    )
