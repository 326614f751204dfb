"""Data-parallel fine-tuning: 2 CPU processes under ``torchrun`` (gloo), tiny BERT.

Runs ``python -m torch.distributed.run --nproc_per_node 2 -m firewall_routing.routers.encoder``
exactly as a GPU user would (with ``--device cuda`` there): DistributedDataParallel +
DistributedSampler, only rank 0 evaluates and saves. Marked slow: two processes importing
torch and transformers on 2 shared cores take longer than the fast suite's budget.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.routers import load_router

from .test_encoder import build_tiny_bert, toy_data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    backbone = build_tiny_bert(tmp_path / "tiny")
    prompts, labels, _, _ = toy_data(96, 0)
    vp, _, vw, vs = toy_data(32, 1)
    train = _jsonl(
        tmp_path / "train.jsonl", [{"prompt": p, "label": y} for p, y in zip(prompts, labels, strict=True)]
    )
    val = _jsonl(
        tmp_path / "val.jsonl",
        [{"prompt": p, "pr_w": w, "pr_s": s} for p, w, s in zip(vp, vw, vs, strict=True)],
    )
    opts = {
        "backbone": str(backbone),
        "epochs": 3,
        "lr": 3e-3,
        "batch_size": 8,
        "max_length": 16,
        "threads": 1,
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "firewall_routing.routers.encoder",
        "--train", str(train), "--val", str(val), "--out", str(tmp_path / "out"),
        "--options", json.dumps(opts),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, "only rank 0 reports"
    rep = json.loads(lines[0])
    assert rep["world_size"] == 2
    vals = [e["val_apgr"] for e in rep["epochs"]]
    assert rep["best_epoch"] == 1 + vals.index(max(vals))
    assert rep["epochs"][-1]["train_loss"] < rep["epochs"][0]["train_loss"]
    router = load_router(tmp_path / "out")
    s = router.score(vp)
    from firewall_routing import metrics

    assert metrics.apgr(metrics.deferral_curve(s, vw, vs)) == pytest.approx(max(vals))
    assert ((s >= 0) & (s <= 1)).all() and not np.isnan(s).any()
