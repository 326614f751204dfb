"""Which routers can be told apart: paired bootstrap differences of APGR, as data.

Why this exists: the report's tables give each router's APGR with its own 95 % CI, but two
overlapping CIs do not mean two routers are indistinguishable — every router is scored on
the *same* resampled query sets, so their errors are correlated and the CI of the
*difference* is much narrower than either CI. A reader should not have to do that
reasoning; ``reproduce`` states the verdict, computed here from per-resample APGRs.

Pure functions over numpy; the plain-language text is written by ``report`` from the dicts
these return (so every statement in the text is also a number in ``results.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.outcomes import FloatArray

RANDOM = "random"
"""Name of the reference every router is compared with: random routing's *expected* APGR."""
RANDOM_APGR = 50.0
"""Random routing, in expectation over orderings, gives the straight line from all-weak to
all-strong, i.e. APGR = 50 on every resample (the same holds for a constant-score router)."""
EXCLUDED = frozenset({"random", "oracle"})
"""Not compared: one random draw is a noisy stand-in for :data:`RANDOM_APGR`, and the
oracle reads the test outcomes (an upper bound, not a competitor)."""


@dataclass(frozen=True)
class Difference:
    """APGR(a) − APGR(b) in APGR points, with its paired-bootstrap 95 % interval."""

    a: str
    b: str
    diff: float
    lo: float
    hi: float
    p: float  # two-sided bootstrap p-value (metrics.bootstrap_p_value)

    @property
    def separable(self) -> bool:
        """Separable at 95 %: the interval of the difference excludes 0."""
        return self.lo > 0.0 or self.hi < 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"separable": self.separable}


def paired_difference(a: str, b: str, diff: float, boot_diff: FloatArray) -> Difference:
    """:func:`metrics.paired_from_boot` with the two routers' names attached.

    ``boot_diff`` must come from the *same* resamples for both routers (that is what makes
    the test paired); undefined resamples (gap 0) are dropped.
    """
    d = metrics.paired_from_boot(diff, boot_diff)
    return Difference(a, b, d.diff, d.lo, d.hi, d.p_two_sided)


LEAD = ("soft-block", "hard-block", "hard-block-greedy")
"""A merged group is named after its first member; the paper's blocking designs go first,
so "soft-block = win-rate = …" rather than "win-rate = soft-block = …"."""


def identical_groups(score_sets: Mapping[str, Sequence[FloatArray]]) -> list[list[str]]:
    """Routers whose scores are equal on every seed, grouped in input order (within a
    group, :data:`LEAD` designs first).

    Designs whose labels coincide on the training data (e.g. hybrid-prob and soft-block on
    0/1 correctness) train the same router; counting them twice would double their votes
    and add comparisons whose answer is known to be "no difference".
    """
    groups: list[list[str]] = []
    first: list[Sequence[FloatArray]] = []
    for name, sets in score_sets.items():
        for g, ref in zip(groups, first, strict=True):
            if len(ref) == len(sets) and all(np.array_equal(x, y) for x, y in zip(ref, sets, strict=True)):
                g.append(name)
                break
        else:
            groups.append([name])
            first.append(sets)
    rank = {n: i for i, n in enumerate(LEAD)}
    return [sorted(g, key=lambda n: rank.get(n, len(LEAD))) for g in groups]


def group_name(group: Sequence[str]) -> str:
    return " = ".join(group)


def compare(points: Mapping[str, float], boots: Mapping[str, FloatArray]) -> list[Difference]:
    """Every router against random's expected APGR, then every pair of routers.

    ``points[name]`` is the router's (seed-mean) APGR and ``boots[name]`` its APGR on each
    shared resample. Pairs are ordered so that ``diff`` ≥ 0 (a is the better router).
    """
    names = [n for n in points if n not in EXCLUDED]
    out = [paired_difference(n, RANDOM, points[n] - RANDOM_APGR, boots[n] - RANDOM_APGR) for n in names]
    for x, y in itertools.combinations(names, 2):
        a, b = (x, y) if points[x] >= points[y] else (y, x)
        out.append(paired_difference(a, b, points[a] - points[b], boots[a] - boots[b]))
    return out
