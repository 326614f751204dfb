"""Names and one-line formulas of the ten label designs, for ``--help``.

Kept apart from :mod:`firewall_routing.labels` (which needs numpy) so the command line can
list the designs without importing anything heavy, and so the help is self-contained: a pip
install ships no DESIGN.md. ``tests/test_cli.py`` checks these names match ``labels.DESIGNS``.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

DesignName = Literal[
    "hard",
    "win-rate",
    "weak-pass-rate",
    "strong-pass-rate",
    "hard-block",
    "hard-block-greedy",
    "soft-block",
    "hybrid-det",
    "hybrid-prob",
    "hybrid-trans",
]
"""The ten label designs, in the report's row order; the type checker rejects any other name."""

DESIGN_NAMES: tuple[DesignName, ...] = get_args(DesignName)

GreedyApprox = Literal["none", "majority"]
"""Where greedy answers are missing (see :class:`firewall_routing.labels.Approximations`)."""
PairingApprox = Literal["none", "independent"]
ModelTarget = Literal["pass-rate", "greedy", "quality"]
"""What a router that predicts every model learns per model (``labels.model_success``)."""
"""Where paired samples are missing (win-rate)."""


def is_design(name: str) -> TypeGuard[DesignName]:
    return name in DESIGN_NAMES


def as_design(name: str, field: str = "design") -> DesignName:
    """``name`` as a :data:`DesignName`, or an InputError listing the designs: the one
    runtime check for a design name read from a user (option, config file, Python call)."""
    from firewall_routing.errors import InputError

    if not is_design(name):
        raise InputError(
            f"unknown label design '{name}'; choose one of: {', '.join(DESIGN_NAMES)}", field=field
        )
    return name


DESIGN_FORMULAS: dict[DesignName, str] = {
    "hard": "1[g_s ≤ g_w] on greedy correctness (Eq. 1)",
    "win-rate": "(1/n) Σ_j 1[s_j ≤ w_j] over paired samples (Eq. 2)",
    "weak-pass-rate": "pr_w (Table 3 ablation)",
    "strong-pass-rate": "1 − pr_s (Table 3 ablation)",
    "hard-block": "1 if pr_s ≤ pr_w, else pr_w (Eq. 4–5)",
    "hard-block-greedy": "1 if g_s = 0, else pr_w (Eq. 6, w/o SMS)",
    "soft-block": "1 − (1 − pr_w)·pr_s (Eq. 7)",
    "hybrid-det": "1[q_w ≥ q_s − t], t = 0, greedy answers (r_det)",
    "hybrid-prob": "P(q_w,i ≥ q_s,j − t) over sample pairs, t = 0 (r_prob)",
    "hybrid-trans": "hybrid-prob at the t that spreads labels most (r_trans)",
}
"""Design name → formula. A label is the probability that the weak model is enough."""

DESIGNS_EPILOG = (
    "Label designs (label = probability that the weak model is enough; pr = pass rate, "
    "g = greedy correctness, w/s = samples of the weak/strong model; r_det, r_prob, "
    "r_trans are Hybrid LLM's labels, on the file's *_quality scores when it has them, "
    "else on 0/1 correctness q):\n\n\b\n"
    + "\n".join(f"  {name:<18} {formula}" for name, formula in DESIGN_FORMULAS.items())
)
"""The list as a help epilog; ``\\b`` keeps one design per line when click wraps text."""
