"""``mf``: RouteLLM's matrix-factorization router, on local MiniLM embeddings.

RouteLLM (Ong et al., 2024) scores model m on prompt q as s_m(q) = w2ᵀ(v̂_m ⊙ W1 q) with a
learned, L2-normalised model embedding v̂_m, a bias-free projection W1 of the prompt
embedding and a bias-free classifier w2; P(strong beats weak) = σ(s_strong − s_weak). We use
the project's cached MiniLM sentence embeddings instead of OpenAI's, and two model
embeddings (weak, strong). ``score`` returns 1 − P(strong wins) = σ(s_weak − s_strong), so
higher = weak, like every router here. During training Gaussian noise (std ``noise``) is
added to the prompt embedding, as in RouteLLM, to stabilise the tiny bilinear model.

Which label it trains on
------------------------
RouteLLM trains on *battles* (which of two answers won) and drops ties. From pass rates
with independent samples a battle on query q has outcome

* strong wins: p_s = pr_s·(1 − pr_w)
* weak wins:   p_w = pr_w·(1 − pr_s)
* tie (both right or both wrong): the rest.

``fit_table`` (used by ``reproduce``) trains on exactly the expected RouteLLM loss over such
battles with ties dropped: per query the BCE target is p_w / (p_w + p_s) and its weight is
p_w + p_s (queries that can only tie carry no weight — RouteLLM never sees them either).
This keeps MF the baseline the paper compares against: it models *who wins*, so it has no
notion of blocking queries both models fail. ``ties="half"`` instead counts a tie as half a
win for each side (target p_w + ½·p_tie, weight 1) for users who want every query used.
``fit(prompts, labels)`` (the generic Router interface) trains σ(s_weak − s_strong) on any
soft label in [0, 1] with weight 1, so MF can also be paired with a paper label design.

Every model at once (``fit_models``): the same bilinear score with one embedding per model
plus a per-model bias (a model's base rate, which a pair's difference cancels),
P(model m succeeds on q) = σ(s_m(q) + b_m), trained by masked BCE on the success matrix —
matrix factorisation of the prompts × models success matrix, as RouterBench-style routers do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable
from firewall_routing.routers.base import FitReport, RouterMetadata, Validation, check_labels
from firewall_routing.routers.frozen import FrozenEmbeddingRouter, FrozenOptions

WEAK, STRONG = 0, 1


def battle_targets(pr_w: FloatArray, pr_s: FloatArray, ties: str = "drop") -> tuple[FloatArray, FloatArray]:
    """(target = P(weak wins the battle), weight) per query, from independent pass rates."""
    p_strong = pr_s * (1.0 - pr_w)
    p_weak = pr_w * (1.0 - pr_s)
    if ties == "half":
        return p_weak + 0.5 * (1.0 - p_strong - p_weak), np.ones_like(p_weak)
    if ties != "drop":
        raise InputError("ties must be 'drop' or 'half'", field="ties")
    weight = p_strong + p_weak
    target = np.divide(p_weak, weight, out=np.full_like(weight, 0.5), where=weight > 0)
    return target, weight


@functools.cache
def _mf_class() -> type:
    import torch

    class MFNet(torch.nn.Module):
        """s_m(q) = w2ᵀ(normalize(P[m]) ⊙ W1 q); forward gives s_weak − s_strong."""

        def __init__(self, text_dim: int, dim: int) -> None:
            super().__init__()
            self.P = torch.nn.Embedding(2, dim)
            self.text_proj = torch.nn.Linear(text_dim, dim, bias=False)
            self.classifier = torch.nn.Linear(dim, 1, bias=False)

        def model_scores(self, q: Any) -> Any:
            v = torch.nn.functional.normalize(self.P.weight, p=2, dim=1)  # (2, dim)
            proj = self.text_proj(q).unsqueeze(1)  # (B, 1, dim)
            return self.classifier(proj * v.unsqueeze(0)).squeeze(-1)  # (B, 2)

        def forward(self, q: Any) -> Any:
            s = self.model_scores(q)
            return s[:, WEAK] - s[:, STRONG]

    return MFNet


@functools.cache
def _mf_models_class() -> type:
    import torch

    class MFModelsNet(torch.nn.Module):
        """logit P(m succeeds on q) = w2ᵀ(normalize(P[m]) ⊙ W1 q) + b_m, for every model m."""

        def __init__(self, text_dim: int, dim: int, models: int) -> None:
            super().__init__()
            self.P = torch.nn.Embedding(models, dim)
            self.bias = torch.nn.Parameter(torch.zeros(models))
            self.text_proj = torch.nn.Linear(text_dim, dim, bias=False)
            self.classifier = torch.nn.Linear(dim, 1, bias=False)

        def forward(self, q: Any) -> Any:
            v = torch.nn.functional.normalize(self.P.weight, p=2, dim=1)  # (M, dim)
            proj = self.text_proj(q).unsqueeze(1)  # (B, 1, dim)
            return self.classifier(proj * v.unsqueeze(0)).squeeze(-1) + self.bias  # (B, M)

    return MFModelsNet


class MFOptions(FrozenOptions):
    dim: int = Field(default=128, ge=1, description="model/prompt embedding size of the bilinear model")
    epochs: int = Field(default=100, ge=1, description="passes over the training set")
    lr: float = Field(default=3e-4, gt=0, description="Adam learning rate")
    weight_decay: float = Field(default=1e-5, ge=0, description="Adam weight decay")
    batch_size: int = Field(default=64, ge=1, description="examples per step")
    noise: float = Field(default=0.1, ge=0, description="std of Gaussian noise on training embeddings")
    ties: Literal["drop", "half"] = Field(
        default="drop", description="fit_table: drop tied battles (RouteLLM) or count them half"
    )


class MFRouter(FrozenEmbeddingRouter):
    name = "mf"
    Options = MFOptions
    options: MFOptions
    fits_table = True
    weights_file = "mf.pt"

    def _noise(self) -> float:
        return self.options.noise

    def _build(self, text_dim: int) -> Any:
        import torch

        torch.manual_seed(self.options.seed)
        if self.model_names:
            return _mf_models_class()(text_dim, self.options.dim, len(self.model_names))
        return _mf_class()(text_dim, self.options.dim)

    # ------------------------------------------------------------------ training

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Generic interface: any soft label = target P(weak wins), every query weight 1."""
        y = check_labels(prompts, labels)
        return self._fit_weighted(prompts, y, np.ones_like(y), val)

    def fit_table(self, table: OutcomeTable, *, val: Validation | None = None) -> FitReport:
        """RouteLLM's own target: expected battle outcomes from the pass rates (see module doc)."""
        ties = self.options.ties
        target, weight = battle_targets(table.weak.pass_rate, table.strong.pass_rate, ties)
        if not (weight > 0).any():
            raise InputError("every training query is a tie: MF has nothing to learn from")
        self.metadata = RouterMetadata.for_training(
            table.prompts,
            np.concatenate([target, weight]),
            label_design=f"battles (ties {ties})",
            weak=table.weak.name,
            strong=table.strong.name,
        )
        return self._fit_weighted(table.prompts, target, weight, val)

    # ------------------------------------------------------------------ persistence

    def _optimizer(self, params: Any) -> Any:
        import torch

        return torch.optim.Adam(params, lr=self.options.lr, weight_decay=self.options.weight_decay)

    @staticmethod
    def _text_dim(state: dict[str, Any]) -> int:
        return int(state["text_proj.weight"].shape[1])
