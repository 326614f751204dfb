"""Scoring latency per prompt of the static backend (issue 13 target: p50 <= 0.5 ms, p99 <= 2 ms).

What is timed is exactly what ``serve`` runs per request for the default router (``ridge``)
trained with ``{"encoder": "static"}``: ``make_scorer(router, "static")`` on one prompt — the
model2vec embedding (tokenize, look up, mean, normalise) plus the router head (prompt
features, the GSM8K solution prior, the ridge dot product). The two parts are also timed
alone, and the same router trained on MiniLM is timed through the ``onnx`` backend (int8
MiniLM, the default) for comparison.

Prompts: GSM8K test questions, one per call, after a warm-up; the router is trained on RouterDC
GSM8K train (zephyr-7b-beta -> dolphin-2.9-llama3-8b, soft-block), as ``train`` would.

Usage: ``PYTHONPATH=src HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/bench_static_encoder.py
[--n 1319] [--no-onnx]``. Prints a table; writes ``benchmarks/results/static_encoder.json``.
"""

from __future__ import annotations

# ruff: noqa: E402  (BLAS thread counts must be set before numpy is imported)
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one prompt is far too small a job to split across cores
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIR = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")
WARMUP = 20


def gsm8k_questions(n: int) -> list[str]:
    lines = (ROOT / "data/gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines[:n]]


def train_ridge(encoder: str) -> Any:
    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import make_router

    table = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR)
    router = make_router("ridge", encoder=encoder)
    router.fit(table.prompts, compute_labels(table, "soft-block").values)
    return router


def per_call_ms(fn: Callable[[str], Any], prompts: Sequence[str]) -> dict[str, float]:
    """Milliseconds of ``fn(prompt)``, one prompt per call: wall time (what a request waits,
    including time the OS gave the core to other processes) and this thread's CPU time
    (what the call costs, whatever else runs on the machine)."""
    for p in prompts[:WARMUP]:
        fn(p)
    wall = np.empty(len(prompts))
    cpu = np.empty(len(prompts))
    for i, p in enumerate(prompts):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        fn(p)
        cpu[i] = (time.thread_time_ns() - start_cpu) / 1e6
        wall[i] = (time.perf_counter_ns() - start) / 1e6
    out: dict[str, float] = {}
    for name, t in (("", wall), ("cpu_", cpu)):
        out |= {
            f"{name}p50_ms": round(float(np.percentile(t, 50)), 4),
            f"{name}p99_ms": round(float(np.percentile(t, 99)), 4),
            f"{name}mean_ms": round(float(t.mean()), 4),
        }
    return out


def measure(backend: str, encoder: str, prompts: Sequence[str]) -> dict[str, dict[str, float]]:
    from firewall_routing.serve.scoring import make_scorer

    router = train_ridge(encoder)
    scorer: Any = make_scorer(router, backend)  # type: ignore[arg-type]
    enc = scorer._encoder
    embedded = {p: enc.encode([p]) for p in prompts}
    return {
        "embed + head (what serve runs)": per_call_ms(lambda p: scorer([p]), prompts),
        "embed only": per_call_ms(lambda p: enc.encode([p]), prompts),
        "head only (features, prior, ridge)": per_call_ms(
            lambda p: router.score_embeddings(embedded[p], [p]), prompts
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1319, help="GSM8K test prompts (>= 200; 1319 = all)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the int8 MiniLM comparison")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/static_encoder.json")
    args = ap.parse_args()
    if args.n < 200:
        ap.error("--n must be at least 200 (a p99 needs them)")
    from firewall_routing.embeddings import DEFAULT_ENCODER, STATIC_ENCODER

    prompts = gsm8k_questions(args.n)
    load_before = os.getloadavg()
    results = {"static": measure("static", STATIC_ENCODER, prompts)}
    if not args.no_onnx:
        results["onnx"] = measure("onnx", DEFAULT_ENCODER, prompts)
    print(f"{len(prompts)} GSM8K test prompts, one per call, ms per prompt (wall | thread CPU)")
    print(f"{'backend':8} {'what':36} {'p50':>8} {'p99':>8} {'mean':>8} | {'p50':>7} {'p99':>7} {'mean':>7}")
    for backend, rows in results.items():
        for what, r in rows.items():
            print(
                f"{backend:8} {what:36} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['mean_ms']:8.3f} | "
                f"{r['cpu_p50_ms']:7.3f} {r['cpu_p99_ms']:7.3f} {r['cpu_mean_ms']:7.3f}"
            )
    doc = {
        "command": "PYTHONPATH=src HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/bench_static_encoder.py"
        + (f" --n {args.n}" if args.n != 1319 else "")
        + (" --no-onnx" if args.no_onnx else ""),
        "router": "ridge (default options), soft-block, RouterDC GSM8K train, " + " -> ".join(PAIR),
        "prompts": len(prompts),
        "targets": {"static embed + head": {"p50_ms": 0.5, "p99_ms": 2.0}},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1_5_15_before": [round(x, 2) for x in load_before],
            "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
