"""``random``: the linear-interpolation baseline (papers' "Linear Interpolation" row).

Scores are a content hash of the prompt, so they are uniform, reproducible under a seed,
and do not depend on the order or company a prompt is scored in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import Router, unit_hash


class RandomRouter(Router):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return unit_hash(prompts, f"random-router-{self.seed}")

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}
