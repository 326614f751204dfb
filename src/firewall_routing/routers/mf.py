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
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.embeddings import DEFAULT_ENCODER, get_encoder
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable
from firewall_routing.routers.base import FitReport, Router, Validation
from firewall_routing.routers.encoder import check_labels

WEIGHTS_FILE = "mf.pt"
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


class MFRouter(Router):
    name = "mf"

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        dim: int = 128,
        epochs: int = 100,
        lr: float = 3e-4,
        weight_decay: float = 1e-5,
        batch_size: int = 64,
        noise: float = 0.1,
        ties: str = "drop",
        seed: int = 0,
        label_design: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.noise = noise
        self.ties = ties
        self.seed = seed
        self.label_design = label_design
        self._net: Any = None
        self.fit_report: FitReport | None = None

    def embed(self, prompts: Sequence[str]) -> FloatArray:
        return get_encoder(self.encoder).encode(prompts)

    def _build(self, text_dim: int) -> Any:
        import torch

        torch.manual_seed(self.seed)
        return _mf_class()(text_dim, self.dim)

    # ------------------------------------------------------------------ training

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Generic interface: any soft label = target P(weak wins), every query weight 1."""
        y = check_labels(prompts, labels)
        return self._fit(prompts, y, np.ones_like(y), val)

    def fit_table(self, table: OutcomeTable, *, val: Validation | None = None) -> FitReport:
        """RouteLLM's own target: expected battle outcomes from the pass rates (see module doc)."""
        target, weight = battle_targets(table.weak.pass_rate, table.strong.pass_rate, self.ties)
        if not (weight > 0).any():
            raise InputError("every training query is a tie: MF has nothing to learn from")
        self.label_design = f"battles (ties {self.ties})"
        return self._fit(table.prompts, target, weight, val)

    def _fit(
        self, prompts: Sequence[str], target: FloatArray, weight: FloatArray, val: Validation | None
    ) -> FitReport:
        import torch

        start = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a 384×128 bilinear model: thread hand-offs only cost time
        try:
            report = self._train(prompts, target, weight, val)
        finally:
            torch.set_num_threads(threads)
        report.seconds = time.perf_counter() - start
        self.fit_report = report
        return report

    def _train(
        self, prompts: Sequence[str], target: FloatArray, weight: FloatArray, val: Validation | None
    ) -> FitReport:
        import torch

        x = torch.tensor(self.embed(prompts), dtype=torch.float32)
        y = torch.tensor(target, dtype=torch.float32)
        w = torch.tensor(weight, dtype=torch.float32)
        xv = torch.tensor(self.embed(val.prompts), dtype=torch.float32) if val else None
        net = self._build(x.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(self.seed)
        report, best = FitReport(), -np.inf
        best_state = copy.deepcopy(net.state_dict())
        for epoch in range(1, self.epochs + 1):
            net.train()
            row = {"epoch": float(epoch), "train_loss": self._epoch(net, opt, x, y, w, gen)}
            if val is not None and xv is not None:
                row["val_apgr"] = self._apgr(net, xv, val)
                if row["val_apgr"] > best:
                    best, best_state = row["val_apgr"], copy.deepcopy(net.state_dict())
                    report.best_epoch, report.best_val_apgr = epoch, row["val_apgr"]
            report.epochs.append(row)
        if val is not None:
            net.load_state_dict(best_state)
        else:
            report.best_epoch = self.epochs
        net.eval()
        self._net = net
        return report

    def _epoch(self, net: Any, opt: Any, x: Any, y: Any, w: Any, gen: Any) -> float:
        """One pass of weighted BCE; returns the weight-averaged loss."""
        import torch

        perm = torch.randperm(len(y), generator=gen)
        total, mass = 0.0, 0.0
        for i in range(0, len(y), self.batch_size):
            idx = perm[i : i + self.batch_size]
            if float(w[idx].sum()) == 0.0:
                continue
            q = x[idx] + torch.randn(x[idx].shape, generator=gen) * self.noise
            losses = torch.nn.functional.binary_cross_entropy_with_logits(net(q), y[idx], reduction="none")
            loss = (losses * w[idx]).sum() / w[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, mass = total + float((losses * w[idx]).sum().detach()), mass + float(w[idx].sum())
        return total / max(mass, 1e-12)

    def _apgr(self, net: Any, xv: Any, val: Validation) -> float:
        import torch

        net.eval()
        with torch.no_grad():
            sv = torch.sigmoid(net(xv)).double().numpy()
        return metrics.apgr(metrics.deferral_curve(sv, val.pr_w, val.pr_s))

    # ------------------------------------------------------------------ scoring

    def score_embeddings(self, emb: FloatArray) -> FloatArray:
        import torch

        if self._net is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        with torch.no_grad():
            out = torch.sigmoid(self._net(torch.tensor(emb, dtype=torch.float32)))
        return out.double().numpy().reshape(-1)

    def score(self, prompts: Sequence[str]) -> FloatArray:
        """1 − P(strong wins) in [0, 1]: higher = the weak model is enough."""
        return self.score_embeddings(self.embed(prompts))

    # ------------------------------------------------------------------ persistence

    def config(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "dim": self.dim,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "noise": self.noise,
            "ties": self.ties,
            "seed": self.seed,
            "label_design": self.label_design,
        }

    def _save_weights(self, path: Path) -> None:
        import torch

        if self._net is None:
            raise InputError("cannot save an untrained router")
        torch.save(self._net.state_dict(), path / WEIGHTS_FILE)

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path | None = None) -> Router:
        import torch

        r = cls(**config)
        if path is not None and (path / WEIGHTS_FILE).exists():
            state = torch.load(path / WEIGHTS_FILE, weights_only=True)
            net = r._build(int(state["text_proj.weight"].shape[1]))
            net.load_state_dict(state)
            net.eval()
            r._net = net
        return r
