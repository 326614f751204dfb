"""``oracle``: knows the outcomes; the upper bound every report shows.

It sends queries to the strong model in order of the expected gain pr_s − pr_w, which
maximises the system pass rate at every strong-call fraction, hence also APGR.
"""

from __future__ import annotations

from collections.abc import Sequence

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable
from firewall_routing.routers.base import Router


class OracleRouter(Router):
    name = "oracle"
    needs_table = True

    def score(self, prompts: Sequence[str]) -> FloatArray:
        raise InputError(
            "the oracle router needs the outcomes: score an outcome table "
            "(e.g. `firewall-routing evaluate oracle FILE`), not bare prompts"
        )

    def score_table(self, table: OutcomeTable) -> FloatArray:
        # map gain ∈ [−1, 1] to [0, 1]; larger gain → lower score → strong first
        return (1.0 - (table.strong.pass_rate - table.weak.pass_rate)) / 2.0
