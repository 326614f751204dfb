"""Routers made of a small torch network over frozen, cached sentence embeddings.

``embedding-head`` (MLP) and ``mf`` (RouteLLM's bilinear model) differ only in the network
and the optimiser; embedding, the training loop (weighted soft-label BCE, best epoch by
validation APGR), scoring and save/load are the same and live here once.

``fit_models`` (``predicts_models``) trains the same kind of network with one output per
model on a rows × models success matrix: BCE summed over the observed entries only (NaN =
no outcome, never a failure); the epoch kept is the one with the lowest BCE on the
validation rows' observed entries. ``predict_models`` is the sigmoid of every output.

Training runs on one torch thread: the networks are tiny (a 384×128 layer), so intra-op
threads only add hand-off cost — on a busy 2-core machine training was ~3.5× slower with two
threads (measured).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from firewall_routing import metrics
from firewall_routing.embeddings import DEFAULT_ENCODER, ENCODER_HELP
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import (
    FitReport,
    ModelValidation,
    Router,
    RouterOptions,
    Validation,
    check_success,
    pair_scores_from,
)


class FrozenOptions(RouterOptions):
    """Options every frozen-embedding router has (defaults: ``embedding-head``'s)."""

    encoder: str = Field(default=DEFAULT_ENCODER, description=ENCODER_HELP)
    epochs: int = Field(default=40, ge=1, description="passes over the training set")
    lr: float = Field(default=1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(default=1e-2, ge=0, description="L2 / AdamW weight decay")
    batch_size: int = Field(default=32, ge=1, description="examples per step")
    seed: int = Field(default=0, description="initialisation, shuffling and noise")


class FrozenEmbeddingRouter(Router):
    """Subclasses set ``weights_file`` and implement ``_build`` (and ``_optimizer``).

    The network maps a batch of embeddings to one logit per row (log-odds that weak is
    enough).
    """

    trains = True
    scores_embeddings = True
    predicts_models = True
    weights_file: ClassVar[str]
    options: FrozenOptions
    _net: Any = None
    fit_report: FitReport | None = None

    @property
    def encoder(self) -> str:
        return self.options.encoder

    def _noise(self) -> float:
        """Std of Gaussian noise added to training embeddings (``mf``: its ``noise`` option)."""
        return 0.0

    def _build(self, text_dim: int) -> Any:
        """A freshly initialised network (seeded) for embeddings of size ``text_dim``, with
        :meth:`_outputs` logits per row."""
        raise NotImplementedError

    def _outputs(self) -> int:
        """Logits per row: one per model after ``fit_models``, else one (the pair's)."""
        return len(self.model_names) or 1

    def _optimizer(self, params: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def _text_dim(state: dict[str, Any]) -> int:
        """Embedding size a saved state dict was trained on (first weight's input width)."""
        return int(next(iter(state.values())).shape[1])

    # ------------------------------------------------------------------ training

    def _fit_weighted(
        self, prompts: Sequence[str], target: FloatArray, weight: FloatArray, val: Validation | None
    ) -> FitReport:
        import torch

        start = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
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
        opt = self._optimizer(net.parameters())
        gen = torch.Generator().manual_seed(self.options.seed)
        report, best = FitReport(), -np.inf
        best_state = copy.deepcopy(net.state_dict())
        for epoch in range(1, self.options.epochs + 1):
            net.train()
            row = {"epoch": float(epoch), "train_loss": self._epoch(net, opt, x, y, w, gen)}
            if val is not None and xv is not None:
                net.eval()
                with torch.no_grad():
                    sv = torch.sigmoid(net(xv).reshape(-1)).double().numpy()
                row["val_apgr"] = metrics.apgr(metrics.deferral_curve(sv, val.pr_w, val.pr_s))
                if row["val_apgr"] > best:
                    best, best_state = row["val_apgr"], copy.deepcopy(net.state_dict())
                    report.best_epoch, report.best_val_apgr = epoch, row["val_apgr"]
            report.epochs.append(row)
        if val is not None:
            net.load_state_dict(best_state)
        else:
            report.best_epoch = self.options.epochs
        net.eval()
        self._net = net
        return report

    def _epoch(self, net: Any, opt: Any, x: Any, y: Any, w: Any, gen: Any) -> float:
        """One shuffled pass of weighted BCE; returns the weight-averaged loss."""
        import torch

        perm = torch.randperm(len(y), generator=gen)
        total, mass = 0.0, 0.0
        noise = self._noise()
        for i in range(0, len(y), self.options.batch_size):
            idx = perm[i : i + self.options.batch_size]
            wb = w[idx]
            if float(wb.sum()) == 0.0:
                continue
            q = x[idx]
            if noise:
                q = q + torch.randn(q.shape, generator=gen) * noise
            losses = torch.nn.functional.binary_cross_entropy_with_logits(
                net(q).reshape(-1), y[idx], reduction="none"
            )
            loss = (losses * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float((losses * wb).sum().detach())
            mass += float(wb.sum())
        return total / max(mass, 1e-12)

    # ------------------------------------------------------------------ every model at once

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        """One logit per model, masked BCE; the best epoch by validation BCE (see module doc)."""
        import torch

        y = check_success(prompts, success, models)
        if val is not None:
            check_success(val.prompts, val.success, models)
        self._fitted_models(prompts, y, models)
        start = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            report = self._train_models(prompts, y, val)
        finally:
            torch.set_num_threads(threads)
        report.seconds = time.perf_counter() - start
        self.fit_report = report
        return report

    @staticmethod
    def _masked_bce(logits: Any, y: Any, mask: Any) -> Any:
        import torch

        losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (losses * mask).sum() / mask.sum().clamp(min=1.0)

    def _train_models(
        self, prompts: Sequence[str], success: FloatArray, val: ModelValidation | None
    ) -> FitReport:
        import torch

        def tensors(p: Sequence[str], s: FloatArray) -> tuple[Any, Any, Any]:
            known = ~np.isnan(s)
            return (
                torch.tensor(self.embed(p), dtype=torch.float32),
                torch.tensor(np.where(known, s, 0.0), dtype=torch.float32),
                torch.tensor(known, dtype=torch.float32),
            )

        x, y, mask = tensors(prompts, success)
        held = tensors(val.prompts, val.success) if val is not None else None
        net = self._build(x.shape[1])
        opt = self._optimizer(net.parameters())
        gen = torch.Generator().manual_seed(self.options.seed)
        report, best = FitReport(), np.inf
        best_state = copy.deepcopy(net.state_dict())
        noise = self._noise()
        for epoch in range(1, self.options.epochs + 1):
            net.train()
            perm = torch.randperm(len(y), generator=gen)
            total, steps = 0.0, 0
            for i in range(0, len(y), self.options.batch_size):
                idx = perm[i : i + self.options.batch_size]
                q = x[idx]
                if noise:
                    q = q + torch.randn(q.shape, generator=gen) * noise
                loss = self._masked_bce(net(q), y[idx], mask[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            row = {"epoch": float(epoch), "train_loss": total / max(steps, 1)}
            if held is not None:
                net.eval()
                with torch.no_grad():
                    row["val_bce"] = float(self._masked_bce(net(held[0]), held[1], held[2]))
                if row["val_bce"] < best:
                    best, best_state = row["val_bce"], copy.deepcopy(net.state_dict())
                    report.best_epoch = epoch
            report.epochs.append(row)
        if held is not None:
            net.load_state_dict(best_state)
        else:
            report.best_epoch = self.options.epochs
        net.eval()
        self._net = net
        return report

    def predict_embeddings(self, emb: FloatArray) -> FloatArray:
        """P(success) per model (rows × ``model_names``) from the prompts' vectors."""
        import torch

        if self._net is None or not self.model_names:
            raise InputError("router is not trained on every model: call fit_models() or load one")
        with torch.no_grad():
            out = torch.sigmoid(self._net(torch.tensor(emb, dtype=torch.float32)))
        return out.double().numpy().reshape(len(emb), len(self.model_names))

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        return self.predict_embeddings(self.embed(prompts))

    # ------------------------------------------------------------------ scoring, persistence

    def score_embeddings(self, emb: FloatArray, texts: Sequence[str] | None = None) -> FloatArray:
        """Scores from the vectors alone (``texts`` is not needed); a router trained on every
        model scores its pair (``use_pair``)."""
        import torch

        if self._net is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        if self.model_names:
            return pair_scores_from(self.predict_embeddings(emb), self.model_names, self.metadata)
        with torch.no_grad():
            out = torch.sigmoid(self._net(torch.tensor(emb, dtype=torch.float32)).reshape(-1))
        return out.double().numpy()

    def score(self, prompts: Sequence[str]) -> FloatArray:
        return self.score_embeddings(self.embed(prompts))

    def _save_weights(self, path: Path) -> None:
        import torch

        if self._net is None:
            raise InputError("cannot save an untrained router")
        torch.save(self._net.state_dict(), path / self.weights_file)

    def _load_weights(self, path: Path) -> None:
        import torch

        if (path / self.weights_file).exists():
            state = torch.load(path / self.weights_file, weights_only=True)
            net = self._build(self._text_dim(state))
            net.load_state_dict(state)
            net.eval()
            self._net = net
