"""``margin``: Margin Sampling (Ramírez et al., 2024), train-free.

The weak model's first generated token: margin = p(top1) − p(top2). A large margin means the
weak model is sure of how to start, so the query stays with it; a small one escalates. The
margin is a property of the (weak model, query) pair recorded when sampling, so this router
reads it from the outcome table (``margin`` column) instead of from the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable
from firewall_routing.routers.base import Router


class MarginRouter(Router):
    name = "margin"
    needs_table = True

    def score(self, prompts: Sequence[str]) -> FloatArray:
        raise InputError(
            "the margin router reads the weak model's first-token logprob margin from an "
            "outcome table (`margin` column, written by `firewall-routing sample`); it cannot "
            "score bare prompts"
        )

    def score_table(self, table: OutcomeTable) -> FloatArray:
        if np.isnan(table.margin).any():
            missing = int(np.isnan(table.margin).sum())
            raise InputError(
                f"{missing} of {len(table)} rows have no margin; re-sample with logprobs "
                "(firewall-routing sample records them)",
                path=table.source or None,
                field="margin",
            )
        return np.clip(table.margin.astype(np.float64), 0.0, 1.0)
