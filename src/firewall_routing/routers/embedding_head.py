"""``embedding-head``: frozen MiniLM sentence embeddings + a small MLP trained with BCE.

The fast CPU default for sweeps: embedding dominates the cost and is cached, so training one
head per label design and seed takes about a second. The head is trained on soft labels
(BCE against the label value itself, never rounded), and the epoch with the best
validation APGR is the one kept (the paper selects checkpoints by validation performance).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.embeddings import DEFAULT_ENCODER, get_encoder
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import FitReport, Router, Validation

WEIGHTS_FILE = "head.pt"


class EmbeddingHeadRouter(Router):
    name = "embedding-head"

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
        self._head: Any = None
        self.fit_report: FitReport | None = None

    def _build(self, dim: int) -> Any:
        import torch

        torch.manual_seed(self.seed)
        layers: list[torch.nn.Module] = []
        if self.hidden > 0:
            layers += [
                torch.nn.Linear(dim, self.hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(self.dropout),
                torch.nn.Linear(self.hidden, 1),
            ]
        else:
            layers.append(torch.nn.Linear(dim, 1))
        return torch.nn.Sequential(*layers)

    def embed(self, prompts: Sequence[str], progress: bool = False) -> FloatArray:
        return get_encoder(self.encoder).encode(prompts, progress=progress)

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        import torch

        y_np = np.asarray(labels, dtype=np.float64)
        if len(prompts) != len(y_np):
            raise ValueError(f"{len(prompts)} prompts but {len(y_np)} labels")
        if len(y_np) == 0:
            raise InputError("no training examples")
        if np.isnan(y_np).any() or (y_np < 0).any() or (y_np > 1).any():
            raise InputError("labels must lie in [0, 1]")
        start = time.perf_counter()
        threads = torch.get_num_threads()
        # A 384×128 MLP is far too small to gain from intra-op threads; on a busy 2-core
        # machine the thread hand-offs made training ~3.5× slower (measured).
        torch.set_num_threads(1)
        try:
            report = self._train(prompts, y_np, val)
        finally:
            torch.set_num_threads(threads)
        report.seconds = time.perf_counter() - start
        self.fit_report = report
        return report

    def _train(self, prompts: Sequence[str], y_np: FloatArray, val: Validation | None) -> FitReport:
        import torch

        x = torch.tensor(self.embed(prompts), dtype=torch.float32)
        y = torch.tensor(y_np, dtype=torch.float32)
        xv = torch.tensor(self.embed(val.prompts), dtype=torch.float32) if val else None
        head = self._build(x.shape[1])
        opt = torch.optim.AdamW(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        gen = torch.Generator().manual_seed(self.seed)
        report = FitReport()
        best_state, best = copy.deepcopy(head.state_dict()), -np.inf
        for epoch in range(1, self.epochs + 1):
            head.train()
            perm = torch.randperm(len(y), generator=gen)
            total = 0.0
            for i in range(0, len(y), self.batch_size):
                idx = perm[i : i + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(head(x[idx]).squeeze(-1), y[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            row = {"epoch": float(epoch), "train_loss": total / len(y)}
            if val is not None and xv is not None:
                head.eval()
                with torch.no_grad():
                    sv = torch.sigmoid(head(xv).squeeze(-1)).double().numpy()
                row["val_apgr"] = metrics.apgr(metrics.deferral_curve(sv, val.pr_w, val.pr_s))
                if row["val_apgr"] > best:
                    best, best_state = row["val_apgr"], copy.deepcopy(head.state_dict())
                    report.best_epoch, report.best_val_apgr = epoch, row["val_apgr"]
            report.epochs.append(row)
        if val is not None:
            head.load_state_dict(best_state)
        else:
            report.best_epoch = self.epochs
        head.eval()
        self._head = head
        return report

    def score_embeddings(self, emb: FloatArray) -> FloatArray:
        import torch

        if self._head is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        with torch.no_grad():
            out = torch.sigmoid(self._head(torch.tensor(emb, dtype=torch.float32)).squeeze(-1))
        return out.double().numpy().reshape(-1)

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.score_embeddings(self.embed(prompts))

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

    def _save_weights(self, path: Path) -> None:
        import torch

        if self._head is None:
            raise InputError("cannot save an untrained router")
        torch.save(self._head.state_dict(), path / WEIGHTS_FILE)

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path | None = None) -> Router:
        import torch

        r = cls(**config)
        if path is not None and (path / WEIGHTS_FILE).exists():
            state = torch.load(path / WEIGHTS_FILE, weights_only=True)
            first = next(iter(state.values()))
            head = r._build(int(first.shape[1]))
            head.load_state_dict(state)
            head.eval()
            r._head = head
        return r
