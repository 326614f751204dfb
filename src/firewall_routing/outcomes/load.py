"""Loading any supported outcome file: format detection and the pair chosen by the user."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from firewall_routing.errors import InputError
from firewall_routing.outcomes.generic import SIDE_COLUMNS, load_generic
from firewall_routing.outcomes.mixinstruct import MIXINSTRUCT_METRIC, load_mixinstruct, mixinstruct_models
from firewall_routing.outcomes.multi import is_multi_csv_header, load_multi
from firewall_routing.outcomes.readers import csv_header, first_record
from firewall_routing.outcomes.releases import (
    ROUTELLM_DEFAULT_STRONG,
    ROUTELLM_DEFAULT_WEAK,
    load_alpacaeval,
    load_mmlu_pro,
    load_routellm_csv,
    load_routerdc,
    pick_pair,
)
from firewall_routing.outcomes.table import DEFAULT_QUALITY_THRESHOLD, OutcomeTable

Format = Literal["auto", "routerdc", "routellm", "generic", "multi", "mmlu-pro", "alpacaeval", "mixinstruct"]
FORMATS: tuple[str, ...] = (
    "auto",
    "routerdc",
    "routellm",
    "generic",
    "multi",
    "mmlu-pro",
    "alpacaeval",
    "mixinstruct",
)


def detect_format(path: Path) -> Format:
    """The format of an outcome file from its suffix and, for JSONL and CSV, its first row.

    ``.json`` is RouterDC; a ``.jsonl`` row with a ``models`` object is MMLU-Pro (it has
    ``options``), AlpacaEval judged (``instruction`` and ``reference``) or the N-model format,
    any other row the pair format; a CSV header with ``pass_rate:<model>``-style columns is
    the N-model format, with ``weak_*`` columns the pair format, else RouteLLM's.
    MixInstruct files need ``--format mixinstruct``.
    """
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "routerdc"
    if suffix == ".jsonl":
        rec = first_record(path)
        if rec is None or not isinstance(rec.get("models"), dict):
            return "generic"
        if "options" in rec and "question" in rec:
            return "mmlu-pro"
        if "instruction" in rec and "reference" in rec:
            return "alpacaeval"
        return "multi"
    if suffix == ".csv":
        header = csv_header(path)
        if is_multi_csv_header(header):
            return "multi"
        generic = {f"weak_{c}" for c in SIDE_COLUMNS}
        return "generic" if generic & set(header) else "routellm"
    raise InputError(
        f"cannot tell the format from suffix '{suffix or '(none)'}': outcome files must be .json "
        "(RouterDC), .jsonl or .csv (generic), or .csv (RouteLLM); convert the file (e.g. a "
        ".tsv to comma-separated .csv) or rename it",
        path=path,
    )


def load_table(
    path: str | Path,
    weak: str | None = None,
    strong: str | None = None,
    fmt: Format = "auto",
    benchmark: str = "",
    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD,
    metric: str | None = None,
    drop_incomplete: bool = False,
) -> OutcomeTable:
    """Load any supported outcome file with all its models; ``weak``/``strong`` choose the pair.

    A table with a pair (chosen, or a two-model file) must have both models' outcomes on
    every row, else one line names the model and the first row lacking one; with
    ``drop_incomplete`` those rows are left out (a note says how many; without a pair, rows
    lacking any model's outcome). ``quality_threshold`` turns quality into correctness where
    a file has no correctness; ``metric`` picks MixInstruct's score.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected an outcome file", path=p)
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}", field="format")
    kind = detect_format(p) if fmt == "auto" else fmt
    if metric is not None and kind != "mixinstruct":
        raise InputError("--metric picks a MixInstruct score: it needs --format mixinstruct", path=p)
    if kind == "mixinstruct":
        if weak is None or strong is None:
            models = ", ".join(repr(m) for m in mixinstruct_models(p))
            raise InputError(
                f"MixInstruct files hold several models: pass --weak and --strong (one of: {models})", path=p
            )
        table = load_mixinstruct(p, weak, strong, metric or MIXINSTRUCT_METRIC, benchmark, quality_threshold)
    elif kind == "generic":
        table = _check_named_pair(load_generic(p, benchmark, quality_threshold), weak, strong)
    elif kind == "routellm":
        full = load_routellm_csv(p, None, None, benchmark)
        table = full.pair(weak or ROUTELLM_DEFAULT_WEAK, strong or ROUTELLM_DEFAULT_STRONG)
    elif kind == "routerdc":
        table = pick_pair(load_routerdc(p, benchmark=benchmark), weak, strong, drop_incomplete)
    elif kind == "mmlu-pro":
        table = pick_pair(load_mmlu_pro(p, benchmark=benchmark), weak, strong, drop_incomplete)
    elif kind == "alpacaeval":
        judged = load_alpacaeval(p, benchmark=benchmark, quality_threshold=quality_threshold)
        table = pick_pair(judged, weak, strong, drop_incomplete)
    else:
        table = pick_pair(load_multi(p, benchmark, quality_threshold), weak, strong, drop_incomplete)
    if table.has_pair:
        return table.complete(table.pair_names, drop=drop_incomplete)
    return table.complete(drop=True) if drop_incomplete else table


def _check_named_pair(table: OutcomeTable, weak: str | None, strong: str | None) -> OutcomeTable:
    """``--weak``/``--strong`` on a generic file: they must match the models it names.

    A generic file holds one pair, so the options cannot select anything; silently ignoring
    them printed "weak weak, strong strong" for ``--weak gpt-4o-mini --strong foo``.
    """
    if weak is None and strong is None:
        return table
    named = (table.weak.name, table.strong.name) != ("weak", "strong")
    if not named:
        raise InputError(
            "--weak/--strong select models in files with several models, and this file does not name "
            "its models (no weak_model/strong_model fields): leave the options out, or add the fields",
            path=table.source,
        )
    for side, asked, found in (("weak", weak, table.weak.name), ("strong", strong, table.strong.name)):
        if asked is not None and asked != found:
            raise InputError(
                f"--{side} '{asked}' does not match this file's models: "
                f"weak_model '{table.weak.name}', strong_model '{table.strong.name}'",
                path=table.source,
                field=f"{side}_model",
            )
    return table
