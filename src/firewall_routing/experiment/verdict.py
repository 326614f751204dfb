"""The plain-language verdict on one evaluation set, read off its paired comparisons.

Shared by every table that compares routers (``reproduce``'s main tables and conclusion, the
TriviaQA section, ``hybrid-llm``), so each says in the same words which router has the
highest APGR, which are separable from it and from random, and how many design pairs
differ next to the number chance alone would give.
"""

from __future__ import annotations

from dataclasses import replace

from firewall_routing.experiment.conclusion import Difference
from firewall_routing.experiment.results import Comparison
from firewall_routing.labels import DESIGN_TITLES

BLOCKING = frozenset({"hard-block", "hard-block-greedy", "soft-block"})
"""The paper's blocking designs, whose advantage over the other label designs is its claim."""


def _pts(v: float) -> str:
    """APGR points with a sign; a second decimal where one would round to ±0.0."""
    return f"{v:+.2f}" if abs(v) < 0.05 else f"{v:+.1f}"


def signed(d: Difference) -> str:
    return f"{_pts(d.diff)} [{_pts(d.lo)}, {_pts(d.hi)}]"


def flip(d: Difference) -> Difference:
    """b − a instead of a − b (the interval flips too)."""
    return replace(d, a=d.b, b=d.a, diff=-d.diff, lo=-d.hi, hi=-d.lo)


def _members(group: str) -> list[str]:
    return group.split(" = ")


def is_design(group: str) -> bool:
    return any(m in DESIGN_TITLES for m in _members(group))


def is_blocking(group: str) -> bool:
    return any(m in BLOCKING for m in _members(group))


def vs_random(comp: Comparison) -> list[Difference]:
    return [d for d in comp.differences if d.b == "random"]


def pairwise(comp: Comparison) -> list[Difference]:
    return [d for d in comp.differences if d.b != "random"]


def listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def set_lines(key: str, comp: Comparison, n: int) -> list[str]:
    """Verdict for one evaluation set: vs random, vs the best router, design pairs."""
    vs_r = vs_random(comp)
    better = [f"{d.a} ({signed(d)})" for d in vs_r if d.separable and d.diff > 0]
    worse = [f"{d.a} ({signed(d)})" for d in vs_r if d.separable and d.diff < 0]
    same = [d.a for d in vs_r if not d.separable]
    lines = [
        f"* **{key}** ({n} queries)",
        f"  * Better than random: {listing(better)}. Not separable from random: {listing(same)}. "
        f"Worse than random: {listing(worse)}.",
    ]
    apgr = {k: v for k, v in comp.apgr.items() if k not in ("random", "oracle")}
    if len(apgr) > 1:
        best = max(apgr, key=lambda k: apgr[k])
        vs_best = [d for d in pairwise(comp) if d.a == best]
        below = [f"{d.b} ({signed(flip(d))})" for d in vs_best if d.separable]
        tied = [d.b for d in vs_best if not d.separable]
        lines.append(
            f"  * Highest APGR: {best} ({apgr[best]:.2f}). Not separable from it: {listing(tied)}. "
            f"Separably below it: {listing(below)}."
        )
    design_pairs = [d for d in pairwise(comp) if is_design(d.a) and is_design(d.b)]
    if design_pairs:
        k = sum(d.separable for d in design_pairs)
        lines.append(
            f"  * Label designs separable from each other: {k} of {len(design_pairs)} pairs "
            f"(≈ {0.05 * len(design_pairs):.1f} expected by chance alone)."
        )
    return lines


def best(comp: Comparison) -> str | None:
    """The (merged) router with the highest APGR, random and the oracle left out."""
    apgr = {k: v for k, v in comp.apgr.items() if k not in ("random", "oracle")}
    return max(apgr, key=lambda k: apgr[k]) if apgr else None


def winner_line(key: str, comp: Comparison) -> str:
    """One line under a table: which router won, whether it beats random, who ties with it."""
    top = best(comp)
    if top is None:
        return f"* {key}: no router to compare."
    vs_r = next((d for d in vs_random(comp) if d.a == top), None)
    beats = vs_r is not None and vs_r.separable and vs_r.diff > 0
    tied = [d.b for d in pairwise(comp) if d.a == top and not d.separable]
    below = [d.b for d in pairwise(comp) if d.a == top and d.separable]
    verdict = (
        f"beats random at 95 % ({signed(vs_r)})"
        if beats and vs_r is not None
        else "not separable from random"
        + (f" ({signed(vs_r)})" if vs_r is not None else "")
        + ": the win is not significant"
    )
    return (
        f"* **{key}**: highest APGR **{top}** ({comp.apgr[top]:.2f}), {verdict}; "
        f"not separable from it: {listing(tied)}; separably below it: {listing(below)}."
    )
