"""Model name → operating point → decision: the routing logic the server and the API share.

Model names are the operating-point knob clients already have (every OpenAI client sends
``model``), so no custom header or parameter is needed:

* ``firewall@30%`` – the calibrated threshold that sent 30 % of calibration prompts to the
  strong model (integer percent 0…100; needs ``calibration.json``);
* ``firewall@t=0.42`` – a raw threshold;
* ``firewall`` – the configured default operating point;
* ``weak`` / ``strong`` – force a side, nothing is scored.

A query goes strong iff ``score < threshold`` (see ``firewall_routing.calibration``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from firewall_routing.calibration import MIN_PROMPTS, Calibration
from firewall_routing.errors import InputError
from firewall_routing.routers.base import Router
from firewall_routing.serve.scoring import (
    Backend,
    Scorer,
    TokenCounter,
    make_scorer,
    minilm_token_counter,
    scored_text,
    user_turns,
)

log = logging.getLogger("firewall_routing.serve")

Route = Literal["weak", "strong"]
Payload = str | Sequence[Mapping[str, Any]]  # a scored text, or a chat's messages
Kind = Literal["fraction", "threshold", "weak", "strong"]
FIREWALL = "firewall"
DEFAULT_BUDGET = "firewall@30%"  # what `firewall` means when calibrated and not configured
LISTED_PERCENTS = tuple(range(0, 101, 10))

# Matched with ``fullmatch``: ``$`` also matches before a final newline, so ``match`` let
# ``firewall@30%\n`` through, and the name then reached a response header (issue 24).
_FRACTION = re.compile(r"firewall@(\d{1,3})%")
_THRESHOLD = re.compile(r"firewall@t=([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)")
# The model names this server answers, as one pattern (documentation: the OpenAPI schema).
MODEL_PATTERN = r"^(firewall|weak|strong|firewall@\d{1,3}%|firewall@t=[0-9]*\.?[0-9]+([eE][-+]?\d+)?)$"


class UnknownModel(ValueError):
    """The model name is no operating point this server can serve (HTTP 404)."""


@dataclass(frozen=True)
class OperatingPoint:
    """A parsed model name; ``value`` is the percent or the raw threshold."""

    name: str
    kind: Kind
    value: float | None = None


@dataclass(frozen=True)
class Decision:
    """Where one request goes and why (``score``/``threshold`` are None when forced)."""

    route: Route
    operating_point: str
    score: float | None
    threshold: float | None
    router_ms: float

    @property
    def forced(self) -> bool:
        return self.score is None


MAX_SHOWN_NAME = 80  # characters of an unknown model name quoted back (error, log line)


def shown_name(name: str) -> str:
    """``name`` cut to ``MAX_SHOWN_NAME`` characters: a 1 MB name must not make a 1 MB error."""
    return name if len(name) <= MAX_SHOWN_NAME else name[:MAX_SHOWN_NAME] + f"…({len(name)} chars)"


def parse_model(name: str) -> OperatingPoint:
    """Parse a model name (not ``firewall`` itself: that one is resolved via the default)."""
    if name == "weak":
        return OperatingPoint(name, "weak")
    if name == "strong":
        return OperatingPoint(name, "strong")
    if m := _FRACTION.fullmatch(name):
        percent = int(m.group(1))
        if percent > 100:
            raise UnknownModel(f"'{name}': the strong-call percent must be 0…100")  # ≤ 14 chars
        return OperatingPoint(name, "fraction", float(percent))
    if m := _THRESHOLD.fullmatch(name):
        return OperatingPoint(name, "threshold", float(m.group(1)))
    raise UnknownModel(
        f"unknown model {shown_name(name)!r}: use firewall, firewall@<0-100>%, firewall@t=<threshold>, weak or strong"
    )


def listed_models(default: str, calibrated: bool) -> list[str]:
    """Names ``GET /v1/models`` shows (any integer percent and any t= are accepted too)."""
    names = [FIREWALL, "weak", "strong"]
    if calibrated:
        names += [f"firewall@{p}%" for p in LISTED_PERCENTS]
    if default not in names:
        names.append(default)
    return names


class Decider:
    """Resolves operating points and scores conversations; thread-safe, no I/O."""

    def __init__(
        self,
        scorer: Scorer,
        calibration: Calibration | None,
        default_model: str,
        context_tokens: int,
        count_tokens: TokenCounter,
    ) -> None:
        self.scorer = scorer
        self.calibration = calibration
        self.context_tokens = context_tokens
        self.count_tokens = count_tokens
        self.default = self.resolve(default_model)

    def resolve(self, model: str) -> OperatingPoint:
        """Parse ``model``; fails (UnknownModel) if it needs a calibration we do not have."""
        if model == FIREWALL:
            return self.default
        op = parse_model(model)
        if op.kind == "fraction" and self.calibration is None:
            raise UnknownModel(
                f"'{model}' needs a calibration file (none is configured): run "
                "`firewall-routing calibrate`, or use firewall@t=<threshold>"
            )
        return op

    def threshold(self, op: OperatingPoint) -> float | None:
        if op.kind == "threshold":
            return op.value
        if op.kind == "fraction" and self.calibration is not None and op.value is not None:
            return self.calibration.threshold(int(op.value))
        return None

    def text_of(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The scored text of a chat (raises ValueError when it has no user turn)."""
        return scored_text(user_turns(messages), self.context_tokens, self.count_tokens)

    def decide(self, text: str, op: OperatingPoint) -> Decision:
        """Score ``text`` (unless the side is forced) and compare with the threshold."""
        if op.kind in ("weak", "strong"):
            side: Route = "weak" if op.kind == "weak" else "strong"
            return Decision(side, op.name, None, None, 0.0)
        start = time.perf_counter()
        score = float(self.scorer([text])[0])
        return self._compare(score, op, (time.perf_counter() - start) * 1000.0)

    def decide_many(self, requests: Sequence[tuple[Payload, OperatingPoint]]) -> list[Decision | Exception]:
        """Decide several requests with **one** scorer call; a failure stays with its request.

        Each request is ``(payload, op)``: a chat's messages (the scored text is extracted
        here, token counting included) or an already extracted text. All texts go through
        the scorer together (one batched encoder + head pass); if that call raises, each
        text is scored alone, so only the prompt that breaks the scorer gets the exception.
        Every decision carries the time of the scorer call that scored it (the batch's when
        batched). Forced operating points are not scored. Thread-safe: nothing is written.
        """
        out: list[Decision | Exception | None] = [None] * len(requests)
        texts: list[str] = []
        scored: list[int] = []  # positions in ``out`` waiting for a score
        for pos, (payload, op) in enumerate(requests):
            if op.kind in ("weak", "strong"):
                out[pos] = self.decide("", op)
                continue
            try:
                texts.append(payload if isinstance(payload, str) else self.text_of(payload))
            except Exception as e:  # e.g. ValueError: no user turn; only this request fails
                out[pos] = e
                continue
            scored.append(pos)
        if texts:
            try:
                start = time.perf_counter()
                scores = np.asarray(self.scorer(texts), dtype=np.float64).reshape(-1)
                ms = (time.perf_counter() - start) * 1000.0
                if len(scores) != len(texts):
                    raise ValueError(f"the scorer returned {len(scores)} scores for {len(texts)} texts")
                for pos, score in zip(scored, scores.tolist(), strict=True):
                    out[pos] = self._compare(float(score), requests[pos][1], ms)
            except Exception as e:
                if len(texts) == 1:
                    out[scored[0]] = e
                else:
                    for pos, text in zip(scored, texts, strict=True):  # find the failing prompt(s)
                        try:
                            out[pos] = self.decide(text, requests[pos][1])
                        except Exception as e1:
                            out[pos] = e1
        return [x if x is not None else RuntimeError("not decided") for x in out]

    def _compare(self, score: float, op: OperatingPoint, ms: float) -> Decision:
        threshold = self.threshold(op)
        assert threshold is not None
        route: Route = "strong" if score < threshold else "weak"
        return Decision(route, op.name, score, threshold, ms)

    def route(self, messages: Sequence[Mapping[str, Any]], model: str = FIREWALL) -> Decision:
        """Resolve, extract the text, decide: the one-call form the Python API uses."""
        op = self.resolve(model)
        if op.kind in ("weak", "strong"):
            return self.decide("", op)
        return self.decide(self.text_of(messages), op)


def default_model_for(default_model: str | None, calibrated: bool) -> str:
    """The operating point ``firewall`` means: the configured one, else a 30 % budget.

    Without a setting and without a calibration there is no sensible default (a raw
    threshold such as 0.5 may send everything to one side for a given router), so that is
    an error that says what to do.
    """
    if default_model is not None:
        return default_model
    if calibrated:
        return DEFAULT_BUDGET
    raise InputError(
        "not set and no calibration is configured: run `firewall-routing calibrate ROUTER "
        f"PROMPTS` (the default is then {DEFAULT_BUDGET}) or set default_model: firewall@t=<threshold>",
        field="default_model",
    )


def threshold_outside_scores(threshold: float, cal: Calibration | None) -> str | None:
    """Why a raw threshold is suspicious: it lies outside the calibration's score range.

    Scores of a given router may all sit in a narrow band (e.g. 0.477…0.512), so a
    threshold outside it sends every request to the same side.
    """
    if cal is None or cal.score_min is None or cal.score_max is None:
        return None
    if threshold <= cal.score_min:
        side = "weak"
    elif threshold > cal.score_max:
        side = "strong"
    else:
        return None
    return (
        f"threshold {threshold:g} lies outside the calibration scores "
        f"[{cal.score_min:.4f}, {cal.score_max:.4f}]: traffic like them all goes {side} "
        "(use firewall@N% or a threshold from `firewall-routing calibrate`)"
    )


def check_calibration(cal: Calibration, source: str, router: str | Path | Router) -> None:
    """Log which calibration is in use; warn when it was made for another router."""
    from firewall_routing.calibration import describe, router_fingerprint

    log.info("calibration %s: %s", source, describe(cal))
    if cal.n < MIN_PROMPTS:
        log.warning(
            "calibration %s was made from only %d prompts: firewall@N%% fractions are coarse", source, cal.n
        )
    if isinstance(router, Router) or not cal.router_sha256:
        return
    current = router_fingerprint(router)
    if current and current != cal.router_sha256:
        log.warning(
            "calibration %s was made for router %s (sha256 %s), not for %s (sha256 %s): "
            "firewall@N%% thresholds may be wrong; re-run calibrate --force",
            source,
            cal.router or "?",
            cal.router_sha256[:12],
            router,
            current[:12],
        )


def build_decider(
    router: str | Path | Router,
    calibration: str | Path | Calibration | None,
    *,
    backend: Backend = "onnx",
    default_model: str | None = None,
    context_tokens: int = 256,
    threads: int = 1,
) -> Decider:
    """Load the router, its scorer, the calibration and the token counter; fail clearly.

    ``default_model=None`` means ``firewall@30%`` when calibrated, an error otherwise.
    """
    from firewall_routing.calibration import calibration_path, load_calibration
    from firewall_routing.routers import load_router

    r = router if isinstance(router, Router) else load_router(router)
    cal = calibration
    if cal is not None and not isinstance(cal, Calibration):
        source = str(calibration_path(cal))
        cal = load_calibration(cal)
        check_calibration(cal, source, router)
    elif cal is not None:
        check_calibration(cal, "(in memory)", router)
    default_model = default_model_for(default_model, cal is not None)
    scorer = make_scorer(r, backend, threads)
    if cal is not None and cal.backend and cal.backend != scorer.backend:
        log.warning(
            "calibration was computed with backend %s but scoring uses %s: observed "
            "strong-call fractions may drift; re-run calibrate --backend %s",
            cal.backend,
            scorer.backend,
            scorer.backend,
        )
    try:
        counter = minilm_token_counter(cap=context_tokens + 1)  # only "> budget?" matters
        decider = Decider(scorer, cal, default_model, context_tokens, counter)
    except UnknownModel as e:
        raise InputError(f"default model: {e}", field="default_model") from None
    default = decider.default
    if default.kind == "threshold" and (why := threshold_outside_scores(default.value or 0.0, cal)):
        log.warning("default_model %s: %s", default.name, why)
    log.info("default operating point (model 'firewall'): %s", decider.default.name)
    return decider
