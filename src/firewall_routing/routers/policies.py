"""N-model routing policies: which model answers each query, from predicted success and cost.

A ``predicts_models`` router predicts P(success) of every model on a query (rows × models);
a policy turns that and a cost per query and model (rows × models, from ``costs.py``) into
one chosen model per row (column indices). Pure numpy, so the benchmark, ``evaluate`` and
the server make the same choice from the same numbers.

* ``threshold`` (knob τ): the cheapest model whose predicted success is ≥ τ. τ = 0 sends
  everything to the cheapest model; a τ above every prediction sends each query to the
  model most likely to succeed.
* ``utility`` (knob λ): the model maximising predicted success − λ · cost / max cost
  (costs are scaled by the largest cost of the row set, so λ is unit-free: λ = 1 trades
  the whole cost range for one unit of success probability). λ = 0 is "most likely to
  succeed", a large λ "cheapest".
* **N-model blocking** (``hopeless`` = β, both policies): a query whose predicted success
  is below β for *every* model is sent to the cheapest model (the likeliest of equally
  cheap ones) — paying for a larger model
  there buys nothing. This is the N-model form of the paper's firewall: the gain of
  routing lies in the contested queries, not the hopeless ones. β = 0 turns it off.

Ties: between equally good candidates the cheaper model wins, then the earlier column, so
a choice never depends on anything but the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, IntArray

PolicyName = Literal["threshold", "utility"]
POLICIES: tuple[PolicyName, ...] = ("threshold", "utility")


def _check(pred: FloatArray, cost: FloatArray) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(pred, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim == 1:
        c = np.broadcast_to(c, p.shape)
    if p.ndim != 2 or c.shape != p.shape:
        raise ValueError(f"predictions {p.shape} and costs {c.shape} must both be rows × models")
    if not np.isfinite(p).all() or not np.isfinite(c).all() or (c < 0).any():
        raise InputError("predictions and costs must be finite, costs ≥ 0")
    return p, c


def _best(value: FloatArray, cost: FloatArray) -> IntArray:
    """Per row, the column of the largest ``value``; ties go to the cheaper, then earlier."""
    order = np.lexsort((np.arange(value.shape[1])[None, :].repeat(len(value), 0), cost, -value), axis=1)
    out: IntArray = order[:, 0].astype(np.int64)
    return out


def cheapest(cost: FloatArray, pred: FloatArray) -> IntArray:
    """Per row, the cheapest model; among equally cheap ones the most likely to succeed
    (RouterDC's seven models cost 7 or 8: the first 7B column is not the one to block to)."""
    c = np.asarray(cost, dtype=np.float64)
    return _best(-c, -np.asarray(pred, dtype=np.float64))


def _block(choice: IntArray, pred: FloatArray, cost: FloatArray, hopeless: float) -> IntArray:
    if hopeless <= 0:
        return choice
    out: IntArray = np.where(pred.max(axis=1) < hopeless, cheapest(cost, pred), choice)
    return out


def threshold_choice(pred: FloatArray, cost: FloatArray, tau: float, hopeless: float = 0.0) -> IntArray:
    """The cheapest model with predicted success ≥ ``tau``; if none, the most likely one;
    blocking first: every prediction below ``hopeless`` → the cheapest model."""
    p, c = _check(pred, cost)
    ok = p >= tau
    # eligible models compete on cost only (value −cost); ineligible ones lose to any eligible
    value = np.where(ok, -c, -np.inf)
    choice = np.where(ok.any(axis=1), _best(value, -p), _best(p, c))
    return _block(choice.astype(np.int64), p, c, hopeless)


def utility_choice(pred: FloatArray, cost: FloatArray, lam: float, hopeless: float = 0.0) -> IntArray:
    """The model maximising predicted success − ``lam`` · cost / max cost; blocking as in
    :func:`threshold_choice`."""
    p, c = _check(pred, cost)
    top = float(c.max()) if c.size else 0.0
    scaled = c / top if top > 0 else c
    return _block(_best(p - lam * scaled, c), p, c, hopeless)


def choose(
    policy: PolicyName, pred: FloatArray, cost: FloatArray, knob: float, hopeless: float = 0.0
) -> IntArray:
    """Dispatch by name (``threshold``: knob = τ; ``utility``: knob = λ)."""
    if policy == "threshold":
        return threshold_choice(pred, cost, knob, hopeless)
    if policy == "utility":
        return utility_choice(pred, cost, knob, hopeless)
    raise InputError(f"unknown policy '{policy}'; available: {', '.join(POLICIES)}", field="policy")


def default_knobs(policy: PolicyName, pred: FloatArray, points: int = 101) -> FloatArray:
    """A knob grid that spans the policy's whole range on ``pred``: for ``threshold`` the
    quantiles of the predictions (plus 0 and just above the maximum), for ``utility`` 0, a
    log grid of λ from 10⁻⁴ to 10³ and λ = 10⁹, where cost decides alone (two models whose
    scaled costs differ by 0.005, e.g. 3.8 and 6 against 200, need λ > 200 before a
    prediction gap of 1 stops mattering), so both ends — most likely and cheapest — are on
    every curve."""
    if policy == "threshold":
        q = np.quantile(np.asarray(pred, dtype=np.float64), np.linspace(0, 1, points))
        return np.unique(np.concatenate([[0.0], q, [float(np.max(pred)) + 1e-9]]))
    return np.concatenate([[0.0], np.logspace(-4, 3, points - 2), [1e9]])


def sweep(
    policy: PolicyName,
    pred: FloatArray,
    cost: FloatArray,
    knobs: Sequence[float] | FloatArray | None = None,
    hopeless: float = 0.0,
) -> tuple[FloatArray, list[IntArray]]:
    """The choices of ``policy`` at every knob value (default :func:`default_knobs`)."""
    grid = default_knobs(policy, pred) if knobs is None else np.asarray(knobs, dtype=np.float64)
    return grid, [choose(policy, pred, cost, float(k), hopeless) for k in grid]


def describe(policy: PolicyName, hopeless: float) -> dict[str, Any]:
    """What a report records about the policy."""
    return {"policy": policy, "knob": "tau" if policy == "threshold" else "lambda", "hopeless": hopeless}
