"""Calibration: which score threshold sends a target fraction of queries to the strong model.

Convention (the one the server, the Python API and the metrics share):

* a query goes to the **strong** model iff ``score < threshold`` (low score = the weak model
  is not enough, DESIGN.md §4);
* a target strong-call fraction ``f`` maps to the ``f``-quantile of the calibration scores.

Why a careful quantile: router scores tie (hash routers, saturated sigmoids, duplicated
prompts), and with ties some strong-call counts cannot be produced by any threshold. So the
count ``k`` actually routed strong is the achievable count closest to ``f·n`` (achievable =
``0``, ``n`` or the number of scores below some distinct score; on equal distance the smaller,
cheaper count wins), and the threshold is the midpoint between the largest score routed
strong and the smallest routed weak — the averaging quantile, which keeps new prompts that
fall between the two on the side they are closer to. ``f = 0`` gives threshold ``0.0``
(nothing is below it: always weak); when every score goes strong the threshold is the float
just above ``max(1, max score)`` (always strong, as scores lie in [0, 1]).

Thresholds for 0…100 % in steps of 1 % are stored as ``calibration.json`` next to the
router, with the fraction each one really produces on the calibration prompts and that
fraction's sampling margin. Why at least ``MIN_PROMPTS`` (100) prompts: with ``n`` prompts
only multiples of ``1/n`` can be produced, so below 100 some of the 1 % steps the file
promises are unreachable (5 prompts turn "90 %" into 80 %). The file also records which
router (directory and a hash of its files) and how many prompts it was made from, so the
server can say what it loaded and warn when the router changed since.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firewall_routing.errors import InputError, input_error_from
from firewall_routing.files import iter_jsonl, read_text
from firewall_routing.outcomes import FloatArray

CALIBRATION_FILE = "calibration.json"
CONVENTION = "strong iff score < threshold; fraction f -> f-quantile of calibration scores"
PERCENTS = tuple(range(101))
TABLE_PERCENTS = tuple(range(10, 100, 10))
MIN_PROMPTS = 100  # fewer cannot produce every 1 % step (only multiples of 1/n exist)
Z95 = 1.96


class ThresholdPoint(BaseModel):
    """One operating point: target percent, its threshold, the fraction it gave in calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: int = Field(ge=0, le=100)
    threshold: float
    observed: float = Field(ge=0.0, le=1.0)
    margin: float | None = Field(
        default=None,
        ge=0.0,
        description="95 % sampling margin of `observed` (normal approximation, 1.96·sqrt(f(1−f)/n)): "
        "traffic like the calibration prompts goes strong at observed ± margin.",
    )


class Calibration(BaseModel):
    """The saved calibration (``calibration.json``); ``threshold(p)`` is what serving reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    convention: str = CONVENTION
    router: str = ""
    router_sha256: str = ""
    backend: str = ""
    source: str = ""
    created: str = ""
    n: int = Field(ge=1)
    score_min: float | None = None
    score_max: float | None = None
    points: list[ThresholdPoint]

    def threshold(self, percent: int) -> float:
        """Threshold for an integer strong-call percentage (0…100)."""
        for p in self.points:
            if p.percent == percent:
                return p.threshold
        raise KeyError(f"no calibrated threshold for {percent} %")


# --------------------------------------------------------------------------- pure math


def achievable_counts(sorted_scores: FloatArray) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Strong-call counts some threshold can produce: 0, n and the start of every tie group."""
    n = len(sorted_scores)
    starts = np.flatnonzero(np.diff(sorted_scores) > 0) + 1
    return np.unique(np.concatenate([[0], starts, [n]]).astype(np.int64))


def _count_for(counts: np.ndarray[Any, np.dtype[np.int64]], target: float) -> int:
    """Achievable count closest to ``target``; ``argmin`` takes the first = smaller on ties."""
    return int(counts[int(np.argmin(np.abs(counts - target)))])


def _threshold_at(sorted_scores: FloatArray, k: int) -> float:
    """Threshold that routes exactly the ``k`` smallest scores strong (k is a group boundary)."""
    n = len(sorted_scores)
    if k == 0:
        return 0.0
    if k == n:
        return math.nextafter(max(1.0, float(sorted_scores[-1])), math.inf)
    return float((sorted_scores[k - 1] + sorted_scores[k]) / 2.0)


def thresholds_for_fractions(scores: Sequence[float] | FloatArray, fractions: Iterable[float]) -> FloatArray:
    """One threshold per target strong-call fraction (see the module docstring)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if len(s) == 0:
        raise InputError("cannot calibrate on zero scores")
    if not np.isfinite(s).all():
        raise InputError("router produced non-finite scores")
    counts = achievable_counts(s)
    out = []
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fraction {f} is outside [0, 1]")
        out.append(_threshold_at(s, _count_for(counts, f * len(s))))
    return np.asarray(out, dtype=np.float64)


def strong_fraction(scores: Sequence[float] | FloatArray, threshold: float) -> float:
    """Share of scores routed strong under the convention ``score < threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean(s < threshold)) if len(s) else 0.0


def sampling_margin(fraction: float, n: int) -> float:
    """95 % margin of a fraction measured on ``n`` prompts: 1.96·sqrt(f(1−f)/n)."""
    return Z95 * math.sqrt(fraction * (1.0 - fraction) / n)


def calibrate(
    scores: Sequence[float] | FloatArray,
    *,
    router: str = "",
    router_sha256: str = "",
    backend: str = "",
    source: str = "",
) -> Calibration:
    """Thresholds for 0…100 % strong calls (step 1 %) plus the fraction each really gives."""
    s = np.asarray(scores, dtype=np.float64)
    thresholds = thresholds_for_fractions(s, [p / 100 for p in PERCENTS])
    points = []
    for p, t in zip(PERCENTS, thresholds, strict=True):
        observed = strong_fraction(s, float(t))
        points.append(
            ThresholdPoint(
                percent=p, threshold=float(t), observed=observed, margin=sampling_margin(observed, len(s))
            )
        )
    return Calibration(
        router=router,
        router_sha256=router_sha256,
        backend=backend,
        source=source,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        n=len(s),
        score_min=float(s.min()),
        score_max=float(s.max()),
        points=points,
    )


def check_enough_prompts(n: int, minimum: int = MIN_PROMPTS) -> None:
    """Refuse a calibration whose 1 % steps could not all be produced (InputError)."""
    if n < minimum:
        raise InputError(
            f"calibration needs at least {minimum} prompts to produce every 1 % step, got {n} "
            f"(with {n} prompts only multiples of {100 / n:.3g} % exist)"
        )


def missed_percents(cal: Calibration, tolerance: float = 0.005) -> list[int]:
    """Percents whose threshold gives a fraction more than ``tolerance`` off (score ties)."""
    return [p.percent for p in cal.points if abs(p.observed - p.percent / 100) > tolerance + 1e-12]


def router_fingerprint(router_dir: str | Path) -> str:
    """sha256 over a saved router's files (names and bytes), its calibration files excluded.

    Lets ``serve`` notice a calibration made for another router, or for this directory
    before it was retrained.
    """
    root = Path(router_dir)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.name.startswith(".") or f.name.startswith("calibration"):
            continue
        digest.update(f.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def describe(cal: Calibration) -> str:
    """One line saying what a calibration was made from (for the server's start-up log)."""
    parts = [f"{cal.n} prompts"]
    if cal.source:
        parts.append(f"from {cal.source}")
    if cal.backend:
        parts.append(f"backend {cal.backend}")
    if cal.router:
        parts.append(f"router {cal.router}")
    if cal.router_sha256:
        parts.append(f"sha256 {cal.router_sha256[:12]}")
    if cal.created:
        parts.append(f"created {cal.created}")
    if cal.score_min is not None and cal.score_max is not None:
        parts.append(f"scores {cal.score_min:.4f}…{cal.score_max:.4f}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- files


def read_prompts(path: str | Path, weak: str | None = None, strong: str | None = None) -> list[str]:
    """Prompts from plain text (one per line), JSONL with ``prompt``, or an outcome table.

    ``.jsonl`` is read line by line for its ``prompt`` field (so generic outcome files work
    too); ``.json``/``.csv`` go through ``load_table`` (for RouterDC files without
    ``weak``/``strong`` any two models are taken: only the prompts are used); anything else
    is plain text, blank lines skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "not a file", path=p)
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        prompts = _jsonl_prompts(p)
    elif suffix in (".json", ".csv"):
        prompts = _table_prompts(p, weak, strong)
    else:
        prompts = [line for line in read_text(p, allow_empty=True).splitlines() if line.strip()]
    if not prompts:
        raise InputError("no prompts in file", path=p)
    return prompts


def _jsonl_prompts(p: Path) -> list[str]:
    prompts = []
    for i, obj in iter_jsonl(p):
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("missing or empty prompt", path=p, row=i, field="prompt")
        prompts.append(prompt)
    return prompts


def _table_prompts(p: Path, weak: str | None, strong: str | None) -> list[str]:
    from firewall_routing.outcomes import detect_format, load_table, routerdc_models

    if detect_format(p) == "routerdc" and (weak is None or strong is None):
        models = routerdc_models(p)
        if not models:
            raise InputError("expected a RouterDC list of {question, scores}", path=p)
        weak, strong = weak or models[0], strong or models[-1]
    return list(load_table(p, weak, strong).prompts)


def calibration_path(router_or_file: str | Path) -> Path:
    """``calibration.json`` inside a router directory, or the given file itself."""
    p = Path(router_or_file)
    return p / CALIBRATION_FILE if p.is_dir() else p


def save_calibration(cal: Calibration, router_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``calibration.json`` next to the router (inside its directory).

    An existing file is only replaced with ``overwrite`` (the CLI's ``--force``): a server
    may be using it, and a silently replaced calibration changes every ``firewall@N%``.
    """
    out = calibration_path(router_dir)
    if out.exists() and not overwrite:
        raise InputError("calibration file already exists: pass --force to replace it", path=out)
    out.write_text(cal.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return out


def load_calibration(path: str | Path) -> Calibration:
    """Read ``calibration.json`` (a router directory or the file); InputError if invalid."""
    p = calibration_path(path)
    if not p.is_file():
        raise InputError("no calibration: run `firewall-routing calibrate ROUTER PROMPTS`", path=p)
    try:
        cal = Calibration.model_validate_json(read_text(p))
    except ValidationError as e:
        raise input_error_from(e, path=p) from None
    if sorted(pt.percent for pt in cal.points) != list(PERCENTS):
        raise InputError("calibration must hold every percent 0…100", path=p, field="points")
    return cal


def format_table(cal: Calibration, percents: Sequence[int] = TABLE_PERCENTS) -> str:
    """The human-readable table the CLI prints (target %, threshold, observed % ± 95 % margin)."""
    lines = [f"{'strong %':>8}  {'threshold':>10}  {'observed %':>10}  {'± (95 %)':>8}"]
    by_percent = {p.percent: p for p in cal.points}
    for pc in percents:
        pt = by_percent[pc]
        margin = sampling_margin(pt.observed, cal.n) if pt.margin is None else pt.margin
        lines.append(f"{pc:>8}  {pt.threshold:>10.4f}  {100 * pt.observed:>10.1f}  {100 * margin:>8.1f}")
    return "\n".join(lines)
