"""Seconds per request of ``local-server`` for several ``--threads`` values.

Why: llama.cpp's own default (every core) made one request take a minute instead of a few
seconds on a busy 2-core machine, because its spin-waiting threads stall each other when
other processes hold cores; ``local-server`` now defaults to
``local_server.default_threads()``. For each thread count (``0`` = that default) this
starts SmolLM2-135M with one slot, sends the same GSM8K prompts one at a time (greedy,
``--max-tokens``) and prints each request's seconds and the median. Nothing is written.

Usage: ``python benchmarks/bench_local_server.py [--threads 0 1 2] [--prompts 3]
[--max-tokens 64]`` (loopback only; one server at a time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx

from firewall_routing.sampling.datasets import load_benchmark
from firewall_routing.sampling.local_server import default_threads, local_server_process, usable_cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    prompts = [it.prompt for it in load_benchmark("gsm8k", "test", args.prompts)]
    print(
        f"usable cpus {usable_cpus()}, load average {os.getloadavg()[0]:.1f}, default threads {default_threads()}"
    )
    for threads in args.threads:
        with local_server_process(slots=1, context=512, threads=threads or None) as server:
            secs = []
            for prompt in prompts:
                t = time.perf_counter()
                r = httpx.post(
                    f"{server.base_url}/chat/completions",
                    json={
                        "model": "smollm2",
                        "messages": [{"role": "user", "content": prompt}],
                        "max_tokens": args.max_tokens,
                        "temperature": 0,
                    },
                    timeout=1800,
                )
                r.raise_for_status()
                secs.append(time.perf_counter() - t)
        label = f"--threads {threads}" if threads else f"default ({default_threads()})"
        print(
            f"{label:14} s/request {' '.join(f'{s:.1f}' for s in secs)}  median {statistics.median(secs):.1f}"
        )


if __name__ == "__main__":
    main()
