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

from firewall_routing.embeddings import DEFAULT_ENCODER
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import FitReport, Validation, check_labels
from firewall_routing.routers.frozen import FrozenEmbeddingRouter


class EmbeddingHeadRouter(FrozenEmbeddingRouter):
    name = "embedding-head"
    weights_file = "head.pt"

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        hidden: int = 128,
        epochs: int = 40,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 32,
        dropout: float = 0.1,
        seed: int = 0,
        label_design: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.dropout = dropout
        self.seed = seed
        self.label_design = label_design
        self._net = None
        self.fit_report = None

    def _build(self, text_dim: int) -> Any:
        import torch

        torch.manual_seed(self.seed)
        layers: list[torch.nn.Module] = []
        if self.hidden > 0:
            layers += [
                torch.nn.Linear(text_dim, self.hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(self.dropout),
                torch.nn.Linear(self.hidden, 1),
            ]
        else:
            layers.append(torch.nn.Linear(text_dim, 1))
        return torch.nn.Sequential(*layers)

    def _optimizer(self, params: Any) -> Any:
        import torch

        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        y = check_labels(prompts, labels)
        return self._fit_weighted(prompts, y, np.ones_like(y), val)

    def config(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "dropout": self.dropout,
            "seed": self.seed,
            "label_design": self.label_design,
        }
