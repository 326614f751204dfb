"""``random``: the linear-interpolation baseline (papers' "Linear Interpolation" row).

Scores are a content hash of the prompt, so they are uniform, reproducible under a seed,
and do not depend on the order or company a prompt is scored in.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import Router, RouterOptions, unit_hash


class RandomOptions(RouterOptions):
    seed: int = Field(default=0, description="salt of the prompt hash (another seed, other scores)")


class RandomRouter(Router):
    name = "random"
    Options = RandomOptions
    options: RandomOptions

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return unit_hash(prompts, f"random-router-{self.options.seed}")
