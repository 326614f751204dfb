"""Router cost: training seconds per epoch and scoring latency/throughput, per router.

For ``embedding-head``, ``mf`` and ``encoder`` (fine-tuned MiniLM), on the shipped RouterDC
GSM8K training split (900 questions, soft-block labels, 100 validation rows):

* **train s/epoch**: ``fit`` wall time / epochs. The embedding routers' prompts are embedded
  (and timed) first, as ``reproduce`` does; the encoder's time includes loading the backbone
  once and one validation pass per epoch, which is how ``reproduce --paper`` trains it.
* **latency p50/p99, batch 1**: one ``score([prompt])`` call per GSM8K test question never
  seen before (the embedding cache is a fresh temporary directory), so the embedding
  routers pay for the MiniLM forward pass as a server would on a new query.
* **throughput**: one ``score`` call over ``--batch`` unseen prompts, prompts per second.

Prints a table and writes ``benchmarks/results/routers.json`` (with the load average, since
the machine is shared). Usage:
``nice -n 10 python benchmarks/bench_routers.py [--encoder-epochs 1] [--threads 1]
[--latency-n 100] [--batch 256]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "routers.json"
WEAK = "HuggingFaceH4/zephyr-7b-beta"
STRONG = "cognitivecomputations/dolphin-2.9-llama3-8b"


def load_data() -> tuple[Any, Any, list[str]]:
    """Train/val split exactly as ``reproduce`` makes it, plus unseen GSM8K test prompts."""
    from firewall_routing.experiment.config import TRAIN_FILE
    from firewall_routing.outcomes import load_routerdc, split_train_val
    from firewall_routing.sampling.datasets import default_data_dir

    d = default_data_dir() / "routerdc"
    train, val = split_train_val(load_routerdc(d / TRAIN_FILE, WEAK, STRONG, "gsm8k-train"), 0.1, 0)
    test = load_routerdc(d / "gsm8k-test.json", WEAK, STRONG, "gsm8k")
    return train, val, list(test.prompts)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def time_scoring(router: Any, prompts: list[str], latency_n: int, batch: int) -> dict[str, float]:
    """Batch-1 latencies on the first ``latency_n`` prompts, then one batched call on the next."""
    router.score([prompts[0]])  # warm-up: lazy imports, first-call allocations
    lat = []
    for p in prompts[1 : 1 + latency_n]:
        t = time.perf_counter()
        router.score([p])
        lat.append((time.perf_counter() - t) * 1000)
    chunk = prompts[1 + latency_n : 1 + latency_n + batch]
    t = time.perf_counter()
    router.score(chunk)
    dt = time.perf_counter() - t
    return {
        "latency_ms_p50": statistics.median(lat),
        "latency_ms_p99": percentile(lat, 99),
        "latency_n": len(lat),
        "throughput_prompts_per_s": len(chunk) / dt,
        "throughput_batch": len(chunk),
    }


def bench_router(
    name: str, options: dict[str, Any], data: tuple[Any, Any, list[str]], args: Any
) -> dict[str, Any]:
    from firewall_routing.embeddings import get_encoder
    from firewall_routing.labels import compute_labels
    from firewall_routing.routers import Validation, make_router, router_class

    train, val, unseen = data
    row: dict[str, Any] = {"router": name, "options": options}
    if router_class(name).scores_embeddings:
        t = time.perf_counter()
        get_encoder().encode(list(train.prompts) + list(val.prompts))
        row["embed_train_val_s"] = time.perf_counter() - t
    router = make_router(name, **options)
    if options.get("epochs") == 0:  # encoder, scoring cost only: an untrained head costs the same
        from firewall_routing.routers.encoder import EncoderRouter

        assert isinstance(router, EncoderRouter)
        router._build(router.options.backbone)
        row |= {"train_rows": 0, "epochs": 0, "train_s_total": None, "train_s_per_epoch": None}
    else:
        labels = compute_labels(train, "soft-block").values
        rep = router.fit(train.prompts, labels, val=Validation.from_table(val))
        row["train_rows"] = len(train)
        row["epochs"] = len(rep.epochs)
        row["train_s_total"] = rep.seconds
        row["train_s_per_epoch"] = rep.seconds / max(1, len(rep.epochs))
        row["best_val_apgr"] = rep.best_val_apgr
    offset = {"embedding-head": 0, "mf": 1, "encoder": 2}[name] * (1 + args.latency_n + args.batch)
    row |= time_scoring(router, unseen[offset:], args.latency_n, args.batch)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--encoder-epochs",
        type=int,
        default=1,
        help="0 = measure the encoder's scoring only (no fine-tuning)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the encoder (1 = --paper)")
    ap.add_argument(
        "--score-threads", type=int, default=0, help="torch threads for scoring (0 = torch default)"
    )
    ap.add_argument("--latency-n", type=int, default=100)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--routers", default="embedding-head,mf,encoder")
    args = ap.parse_args()
    os.environ["FIREWALL_ROUTING_CACHE"] = tempfile.mkdtemp(prefix="bench-routers-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    default_threads = torch.get_num_threads()
    if args.score_threads:
        torch.set_num_threads(args.score_threads)
    options = {
        "embedding-head": {},
        "mf": {},
        "encoder": {"epochs": args.encoder_epochs, "threads": args.threads, "progress": True},
    }
    data = load_data()
    load_before = os.getloadavg()
    rows = []
    for name in args.routers.split(","):
        print(f"benchmarking {name} …", file=sys.stderr, flush=True)
        rows.append(bench_router(name, options[name], data, args))
    out = {
        "command": "python benchmarks/bench_routers.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads_default": default_threads,
            "score_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(format_table(out))


def format_table(out: dict[str, Any]) -> str:
    head = f"{'router':<16}{'epochs':>7}{'train s/epoch':>15}{'p50 ms (b=1)':>14}{'p99 ms (b=1)':>14}{'prompts/s':>11}"
    lines = [head, "-" * len(head)]
    for r in out["results"]:
        per_epoch = "–" if r["train_s_per_epoch"] is None else f"{r['train_s_per_epoch']:.2f}"
        lines.append(
            f"{r['router']:<16}{r['epochs']:>7}{per_epoch:>15}{r['latency_ms_p50']:>14.1f}"
            f"{r['latency_ms_p99']:>14.1f}{r['throughput_prompts_per_s']:>11.1f}"
        )
    m = out["machine"]
    lines.append(
        f"load average before/after: {m['loadavg_before']} / {m['loadavg_after']} on {m['cpus']} CPUs"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
