"""Benchmark: `firewall-routing reproduce` wall time and the default router's scoring speed.

Prints a table and writes benchmarks/results/reproduce.json. Run: `make bench` or
`python benchmarks/bench_reproduce.py [--skip-reproduce]`. The cold run uses an empty
embedding cache (what a fresh machine sees); the warm run reuses it, and the two runs'
metrics are compared (they must be identical).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from firewall_routing.serve.scoring import Backend

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "reproduce.json"


def time_reproduce(cache: Path, out: Path) -> float:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "FIREWALL_ROUTING_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", "reproduce", "--out", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def scoring(router_dir: Path, cache: Path, n: int = 200) -> dict[str, object]:
    """Single-prompt scoring latency of the saved default router as the server scores it
    (``serve.scoring.make_scorer``: int8 ONNX and torch MiniLM, no embedding cache), over
    ``n`` GSM8K test prompts one at a time, plus batched throughput of the ONNX path."""
    os.environ["FIREWALL_ROUTING_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from firewall_routing.outcomes import load_routerdc
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    router = load_router(router_dir)
    t = load_routerdc(
        ROOT / "data" / "routerdc" / "gsm8k-test.json",
        "HuggingFaceH4/zephyr-7b-beta",
        "cognitivecomputations/dolphin-2.9-llama3-8b",
    )
    prompts = list(t.prompts)
    out: dict[str, object] = {"router": router.name, "load_avg": os.getloadavg()}
    backends: tuple[Backend, ...] = ("onnx", "torch")
    for backend in backends:
        scorer = make_scorer(router, backend)
        scorer(prompts[:8])  # load weights, warm up
        lat = []
        for p in prompts[:n]:
            s = time.perf_counter()
            scorer([p])
            lat.append((time.perf_counter() - s) * 1000)
        out[f"{backend}_batch1_p50_ms"] = round(float(np.percentile(lat, 50)), 2)
        out[f"{backend}_batch1_p99_ms"] = round(float(np.percentile(lat, 99)), 2)
        if backend == "onnx":
            start = time.perf_counter()
            scorer(prompts[:512])
            out["onnx_batched_qps"] = round(512 / (time.perf_counter() - start), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-reproduce", action="store_true", help="only measure scoring")
    ap.add_argument("--keep", type=Path, help="also copy the cold run's output (report.md, ...) here")
    args = ap.parse_args()
    machine: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }
    result: dict[str, object] = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "rep"
        if not args.skip_reproduce:
            result["reproduce_cold_s"] = round(time_reproduce(cache, out), 1)
            result["reproduce_warm_s"] = round(time_reproduce(cache, Path(tmp) / "rep2"), 1)
            # Reproducibility: the warm run reads every embedding from the cache the cold run
            # filled; every metric of every router must come out the same.
            cold, warm = (
                json.loads((d / "results.json").read_text())["results"] for d in (out, Path(tmp) / "rep2")
            )
            result["results_identical_cold_vs_warm"] = cold == warm
            router_dir = out / "routers" / "soft-block"
            if args.keep is not None:
                import shutil

                shutil.copytree(out, args.keep, dirs_exist_ok=True)
        else:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "firewall_routing.cli",
                    "reproduce",
                    "--out",
                    str(out),
                    "--designs",
                    "soft-block",
                    "--datasets",
                    "gsm8k",
                    "--gen-weak",
                    "",
                    "--bootstrap",
                    "0",
                    "--no-plots",
                ],
                check=True,
                env=os.environ | {"FIREWALL_ROUTING_CACHE": str(cache)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            router_dir = out / "routers" / "soft-block"
        result["scoring_default_router"] = scoring(router_dir, cache)
    machine["load_avg_at_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'metric':<42}{'value':>12}")
    for k, v in result.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                print(f"{k + '.' + k2:<42}{v2!s:>12}")
        else:
            print(f"{k:<42}{v!s:>12}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
