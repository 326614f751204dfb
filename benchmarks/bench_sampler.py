"""Sampler throughput vs a plain concurrent httpx client (target: overhead ≤ 10 %).

Two measurements, both on loopback only and bounded in requests and time:

1. **llama.cpp**: one local SmolLM2-135M server (``local_server_process``); the same
   prompts (GSM8K questions, n=1, short completions) are sent by (a) a plain
   ``httpx.AsyncClient`` with a semaphore and no store and (b) the project's ``Sampler``
   with a fresh SQLite store (batched commits, as in a real run). Rounds alternate a/b so
   load drift on a shared machine hits both alike; the median round counts.
2. **client only**: the same two clients against an instant in-process fake server
   (``httpx.MockTransport``), which isolates the sampler's own per-sample cost (store
   lookups, commits, parsing) from generation time: the "extra ms/sample" column.

Prints a table and writes ``benchmarks/results/sampler.json`` (not with ``--client-only``,
which skips the llama.cpp part and writes nothing).
Usage: ``nice python benchmarks/bench_sampler.py [--prompts 16] [--rounds 3] [--max-tokens 32]
[--threads 1] [--client-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from firewall_routing.sampling.client import Sampler, SamplingParams, Upstream
from firewall_routing.sampling.datasets import load_benchmark
from firewall_routing.sampling.local_server import local_server_process
from firewall_routing.sampling.store import SampleStore

RESULTS = Path(__file__).parent / "results" / "sampler.json"
TIME_BUDGET_S = 900.0


async def plain_client(
    base_url: str,
    prompts: list[str],
    params: SamplingParams,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
) -> int:
    """The baseline: concurrent POSTs, JSON parsed, nothing stored. Returns tokens."""
    sem = asyncio.Semaphore(concurrency)
    tokens = 0
    async with httpx.AsyncClient(timeout=600, transport=transport) as client:

        async def one(prompt: str) -> None:
            nonlocal tokens
            async with sem:
                r = await client.post(f"{base_url}/chat/completions", json=params.body("bench", prompt, 1))
            r.raise_for_status()
            tokens += int(r.json()["usage"]["completion_tokens"])

        await asyncio.gather(*(one(p) for p in prompts))
    return tokens


async def sampler_client(
    base_url: str,
    prompts: list[str],
    params: SamplingParams,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
) -> int:
    """The project's sampler with a fresh store (every sample committed). Returns tokens."""
    with tempfile.TemporaryDirectory() as d, SampleStore(Path(d) / "s.sqlite") as store:
        up = Upstream(base_url, "bench")
        async with Sampler(store, concurrency=concurrency, transport=transport) as s:
            out = await asyncio.gather(*(s.sample(up, p, params, 1) for p in prompts))
    return sum(x[0].tokens for x in out)


Runner = Callable[
    [str, list[str], SamplingParams, int, httpx.AsyncBaseTransport | None], Coroutine[Any, Any, int]
]


def measure(
    runner: Runner,
    base_url: str,
    prompts: list[str],
    params: SamplingParams,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, float]:
    t = time.perf_counter()
    tokens = asyncio.run(runner(base_url, prompts, params, concurrency, transport))
    dt = time.perf_counter() - t
    return {"seconds": dt, "samples_per_s": len(prompts) / dt, "tokens_per_s": tokens / dt, "tokens": tokens}


def compare(
    name: str,
    rounds: int,
    run_plain: Callable[[], dict[str, float]],
    run_sampler: Callable[[], dict[str, float]],
    deadline: float,
) -> dict[str, Any]:
    """Alternate plain/sampler rounds; overhead from the median seconds of each."""
    plain, sampler = [], []
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        plain.append(run_plain())
        sampler.append(run_sampler())
    p = statistics.median(r["seconds"] for r in plain)
    s = statistics.median(r["seconds"] for r in sampler)
    return {
        "name": name,
        "rounds": len(plain),
        "plain": plain,
        "sampler": sampler,
        "plain_median_s": p,
        "sampler_median_s": s,
        "overhead_pct": 100.0 * (s - p) / p,
    }


def fake_transport() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": {"content": "The answer is 42."}}],
                "usage": {"completion_tokens": min(8, body["max_tokens"])},
            },
        )

    return httpx.MockTransport(handle)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads; more than the free cores makes its spin-waiting "
        "threads stall each other on a shared machine",
    )
    ap.add_argument("--fake-prompts", type=int, default=2000)
    ap.add_argument("--client-only", action="store_true", help="skip llama.cpp; write no results file")
    args = ap.parse_args()
    deadline = time.monotonic() + TIME_BUDGET_S
    prompts = [it.prompt for it in load_benchmark("gsm8k", "test", args.prompts)]
    params = SamplingParams(0.7, 1.0, args.max_tokens, "chat")
    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "config": vars(args),
    }

    fake_prompts = [f"Question: {i}?\nAnswer: " for i in range(args.fake_prompts)]
    fake = fake_transport()
    results["client_only"] = compare(
        "client only (instant fake server)",
        args.rounds,
        lambda: measure(plain_client, "http://fake/v1", fake_prompts, params, 8, fake),
        lambda: measure(sampler_client, "http://fake/v1", fake_prompts, params, 8, fake),
        deadline,
    )

    results["client_only"]["extra_ms_per_sample"] = (
        1000.0
        * (results["client_only"]["sampler_median_s"] - results["client_only"]["plain_median_s"])
        / len(fake_prompts)
    )
    keys = ["client_only"]
    if not args.client_only:
        with local_server_process(slots=args.slots, context=512, threads=args.threads) as server:
            results["llama_cpp"] = compare(
                "llama.cpp SmolLM2-135M",
                args.rounds,
                lambda: measure(plain_client, server.base_url, prompts, params, args.slots),
                lambda: measure(sampler_client, server.base_url, prompts, params, args.slots),
                deadline,
            )
        keys.append("llama_cpp")

    print(
        f"{'benchmark':36} {'rounds':>6} {'plain s':>9} {'sampler s':>10} {'overhead':>9} "
        f"{'plain smp/s':>12} {'sampler smp/s':>14} {'tok/s':>8} {'extra ms/sample':>16}"
    )
    for key in keys:
        r = results[key]
        ps = statistics.median(x["samples_per_s"] for x in r["plain"])
        ss = statistics.median(x["samples_per_s"] for x in r["sampler"])
        ts = statistics.median(x["tokens_per_s"] for x in r["sampler"])
        # Only meaningful against the instant server: a real one's noise is larger.
        extra = f"{r['extra_ms_per_sample']:.2f}" if key == "client_only" else "-"
        print(
            f"{r['name']:36} {r['rounds']:>6} {r['plain_median_s']:>9.2f} "
            f"{r['sampler_median_s']:>10.2f} {r['overhead_pct']:>8.1f}% {ps:>12.1f} "
            f"{ss:>14.1f} {ts:>8.1f} {extra:>16}"
        )
    if args.client_only:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
