"""``embedding-head``: frozen MiniLM sentence embeddings + a small MLP trained with BCE.

The fast CPU default for sweeps: embedding dominates the cost and is cached, so training one
head per label design and seed takes about a second. The head is trained on soft labels
(BCE against the label value itself, never rounded), and the epoch with the best
validation APGR is the one kept (the paper selects checkpoints by validation performance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import FitReport, Validation, check_labels
from firewall_routing.routers.frozen import FrozenEmbeddingRouter, FrozenOptions


class EmbeddingHeadOptions(FrozenOptions):
    hidden: int = Field(default=128, ge=0, description="hidden units (0 = a linear head)")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout after the hidden layer")


class EmbeddingHeadRouter(FrozenEmbeddingRouter):
    name = "embedding-head"
    Options = EmbeddingHeadOptions
    options: EmbeddingHeadOptions
    weights_file = "head.pt"

    def _build(self, text_dim: int) -> Any:
        import torch

        o = self.options
        torch.manual_seed(o.seed)
        layers: list[torch.nn.Module] = []
        if o.hidden > 0:
            layers += [
                torch.nn.Linear(text_dim, o.hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(o.dropout),
                torch.nn.Linear(o.hidden, self._outputs()),
            ]
        else:
            layers.append(torch.nn.Linear(text_dim, self._outputs()))
        return torch.nn.Sequential(*layers)

    def _optimizer(self, params: Any) -> Any:
        import torch

        return torch.optim.AdamW(params, lr=self.options.lr, weight_decay=self.options.weight_decay)

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        y = check_labels(prompts, labels)
        return self._fit_weighted(prompts, y, np.ones_like(y), val)
