"""Routing server overhead, scoring speed (ONNX vs torch) and calibration accuracy.

Everything runs on 127.0.0.1 and is bounded in requests and time:

1. **Scoring** (in process): one GSM8K test prompt at a time through the router's scorer —
   ONNX int8 with 1 and 2 intra-op threads, torch with 1 — p50/p99 ms (target: ONNX p50
   ≤ 5 ms).
2. **Added latency** (HTTP): a minimal upstream (bare ASGI app under uvicorn, fixed answer
   after an optional delay) is called (a) directly, (b) through ``firewall-routing serve``
   with model ``firewall@30%`` (scored) and (c) through the server with model ``weak``
   (forced, proxy cost only), at concurrency 1, 16 and 64 with distinct prompts. Added
   latency = the routed percentile minus the direct percentile (target: p99 added ≤ 10 ms
   at 64). Two upstreams: an instant one (delay 0: the closed loop then saturates the
   router, so this measures capacity) and one answering after a response time drawn
   uniformly from 0.5–1.5 × ``--delay-ms`` (default 1,000 ms, LLM-like: the offered load
   stays below the router's capacity, so this measures the latency the router adds in
   use). The server's JSON log gives each request's own numbers: scoring time
   (``router_ms``) and time in the router apart from the upstream exchange (``total_ms −
   upstream_ms``) — the added latency measured per request, without the noise of
   differencing two percentiles of random response times.
3. **Calibration**: a router trained on RouterDC's 1,000 GSM8K train prompts (three seeds),
   calibrated on the 6,473 other GSM8K train questions (prompts it never saw, as a user
   would calibrate on unlabeled traffic), observed strong-call fraction at
   ``firewall@30%`` on the 1,319 GSM8K test prompts (target 30 % ± 2), per backend; plus
   the in-sample mistake (calibrating on the router's own training prompts); ONNX vs torch
   max |Δscore|, identical decisions and APGR on the test prompts.

Prints a table and writes ``benchmarks/results/serve.json``.
Usage: ``python benchmarks/bench_serve.py [--router DIR] [--requests 400] [--cap-s 60]
[--delay-ms 1000]`` (without ``--router`` a soft-block embedding-head router is trained on
RouterDC GSM8K train).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from firewall_routing.processes import free_port, start_process, stop_process

if TYPE_CHECKING:
    from firewall_routing.serve.scoring import Backend

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "serve.json"
TRAIN = ROOT / "data/routerdc/gsm8k-train.json"
TEST = ROOT / "data/routerdc/gsm8k-test.json"
GSM8K_TRAIN = ROOT / "data/gsm8k/train.jsonl"
WEAK = "HuggingFaceH4/zephyr-7b-beta"
STRONG = "cognitivecomputations/dolphin-2.9-llama3-8b"
HOST = "127.0.0.1"
CONCURRENCY = (1, 16, 64)
SCORING: tuple[tuple[Backend, int], ...] = (
    ("onnx", 1),
    ("onnx", 2),
    ("torch", 1),
)  # (backend, intra-op threads)
UPSTREAM_DELAY_S = 0.0  # set in the upstream process from --upstream-delay-ms
JITTER = random.Random(0)  # the slow upstream's response times, seeded
ANSWER = json.dumps(
    {
        "id": "bench",
        "object": "chat.completion",
        "created": 0,
        "model": "upstream",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


# --------------------------------------------------------------------------- minimal upstream


async def upstream_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """The cheapest OpenAI-shaped upstream: read the body, answer a fixed completion."""
    while (await receive()).get("more_body"):
        pass
    if UPSTREAM_DELAY_S:
        # Uniform in [0.5, 1.5] x the delay, like LLM answers of varying length. A fixed
        # delay would make the closed loop send its requests in synchronized bursts, all
        # arriving at the scorer at once: a queue real traffic does not build.
        await asyncio.sleep(UPSTREAM_DELAY_S * (0.5 + JITTER.random()))
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": ANSWER})


def run_upstream(port: int, delay_ms: float) -> None:
    import uvicorn

    global UPSTREAM_DELAY_S
    UPSTREAM_DELAY_S = delay_ms / 1000.0

    uvicorn.run(upstream_app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off")


# --------------------------------------------------------------------------- processes


def start(args: list[str], health: str, log: Path, timeout: float = 180) -> subprocess.Popen[bytes]:
    """Start a server (own session, output to ``log``) and wait for ``health``."""
    return start_process(args, health, log=log, timeout=timeout, ok=(200, 405))[0]


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)


# --------------------------------------------------------------------------- data + router


def prompts(path: Path) -> list[str]:
    return [row["question"] for row in json.loads(path.read_text())]


def unseen_prompts() -> list[str]:
    """GSM8K train questions outside RouterDC's 1,000: prompts the router never saw."""
    seen = {" ".join(q.split()) for q in prompts(TRAIN)}
    rows = [json.loads(line)["question"] for line in GSM8K_TRAIN.read_text().splitlines() if line.strip()]
    return [q for q in rows if " ".join(q.split()) not in seen]


def train_router(out: Path) -> Path:
    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import RouterMetadata
    from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

    table = load_table(TRAIN, WEAK, STRONG)
    labels = compute_labels(table, "soft-block").values
    router = EmbeddingHeadRouter()
    router.fit(table.prompts, labels)
    meta = RouterMetadata.for_training(
        table.prompts, labels, label_design="soft-block", weak=WEAK, strong=STRONG
    )
    router.save(out, meta)
    return out


def pct(values: list[float] | np.ndarray[Any, Any], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# --------------------------------------------------------------------------- 1. scoring


def bench_scoring(router_dir: Path, test: list[str], n: int) -> dict[str, Any]:
    """Single-prompt scoring latency per backend: wall time and this process's CPU time.

    CPU time is reported because on a shared machine wall time mostly measures the wait
    for a core; with one intra-op thread CPU time ≈ compute (with two it is their sum).
    """
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    router = load_router(router_dir)
    out: dict[str, Any] = {}
    for backend, threads in SCORING:
        scorer = make_scorer(router, backend, threads)
        for p in test[:10]:
            scorer([p])
        wall, cpu = [], []
        for p in test[10 : 10 + n]:
            t0, c0 = time.perf_counter(), time.process_time()
            scorer([p])
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        out[f"{backend}/{threads}"] = {
            "n": len(wall),
            "p50_ms": pct(wall, 50),
            "p99_ms": pct(wall, 99),
            "cpu_p50_ms": pct(cpu, 50),
            "cpu_p99_ms": pct(cpu, 99),
        }
    return out


def embeddings(sets: dict[str, list[str]]) -> dict[str, dict[str, np.ndarray[Any, Any]]]:
    """MiniLM embeddings of each prompt set per backend (they do not depend on the router)."""
    from firewall_routing.embeddings import get_encoder
    from firewall_routing.serve.onnx_encoder import OnnxEncoder

    onnx, torch = OnnxEncoder(), get_encoder()  # one session for all sets
    return {name: {"onnx": onnx.encode(texts), "torch": torch.encode(texts)} for name, texts in sets.items()}


def fit_router(prompts: list[str], labels: np.ndarray[Any, Any], seed: int, val: Any = None) -> Any:
    from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

    router = EmbeddingHeadRouter(seed=seed)
    router.fit(prompts, labels, val=val)
    return router


def bench_fraction(seeds: int, emb: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Observed strong-call share at firewall@30 % on GSM8K test, per backend and seed.

    ``held_out``: the router is trained as ``firewall-routing train`` does (RouterDC's 1,000
    GSM8K train prompts, 10 % held out for best-epoch selection, seeded) and calibrated on
    ``emb["cal"]``, the GSM8K train questions it never saw. ``in_sample``: calibrated on its
    own training prompts, the mistake docs/serving.md warns about. Each row also carries the
    router's APGR on the test prompts with that backend's scores.
    """
    from firewall_routing.calibration import calibrate, strong_fraction
    from firewall_routing.labels import compute_labels
    from firewall_routing.metrics import apgr, deferral_curve
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import Validation

    train, test = load_table(TRAIN, WEAK, STRONG), load_table(TEST, WEAK, STRONG)
    labels = compute_labels(train, "soft-block").values
    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        perm = np.random.default_rng(seed).permutation(len(train))
        fit_idx, val_idx = perm[: int(0.9 * len(train))], perm[int(0.9 * len(train)) :]
        router = fit_router(
            [train.prompts[i] for i in fit_idx],
            labels[fit_idx],
            seed,
            Validation.from_table(train.take(val_idx)),
        )
        s_test = {b: router.score_embeddings(emb["test"][b]) for b in ("onnx", "torch")}
        for kind, cal_set in (("held_out", "cal"), ("in_sample", "train")):
            if kind == "in_sample" and seed > 0:
                continue
            for backend in ("onnx", "torch"):
                t30 = calibrate(router.score_embeddings(emb[cal_set][backend])).threshold(30)
                rows.append(
                    {
                        "kind": kind,
                        "seed": seed,
                        "backend": backend,
                        "n_calibration": len(emb[cal_set][backend]),
                        "threshold": t30,
                        "test_fraction": strong_fraction(s_test[backend], t30),
                        "test_apgr": apgr(
                            deferral_curve(s_test[backend], test.weak.pass_rate, test.strong.pass_rate)
                        ),
                    }
                )
            on, to = s_test["onnx"], s_test["torch"]
            rows[-1]["onnx_vs_torch_max_abs_diff"] = float(np.max(np.abs(on - to)))
            rows[-1]["onnx_vs_torch_same_decisions_at_t30"] = float(
                np.mean((on < rows[-2]["threshold"]) == (to < rows[-1]["threshold"]))
            )
    held = [r["test_fraction"] for r in rows if r["kind"] == "held_out" and r["backend"] == "onnx"]
    return {
        "rows": rows,
        "held_out_onnx_mean": float(np.mean(held)),
        "held_out_onnx_min": float(np.min(held)),
        "held_out_onnx_max": float(np.max(held)),
    }


# --------------------------------------------------------------------------- 2. HTTP


async def load(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    n: int,
    cap_s: float,
    headers: dict[str, str],
    stagger_s: float = 0.0,
) -> dict[str, Any]:
    """``n`` POSTs (distinct bodies) at fixed concurrency, stopping early after ``cap_s``.

    Worker ``i`` starts ``i * stagger_s`` late: with a slow upstream, starting all workers at
    once would make the first round one synchronized burst at the scorer.
    """
    lat: list[float] = []
    errors = 0
    nxt = 0
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        # warm-up, not measured: opens the connections concurrently
        await asyncio.gather(
            *(client.post(url, content=b, headers=headers) for b in bodies[:concurrency]),
            return_exceptions=True,
        )
        deadline = time.perf_counter() + cap_s

        async def worker(i: int) -> None:
            nonlocal nxt, errors
            await asyncio.sleep(i * stagger_s)
            while nxt < n and time.perf_counter() < deadline:
                body = bodies[nxt % len(bodies)]
                nxt += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                except httpx.TransportError:  # e.g. a connection the overloaded upstream dropped
                    errors += 1
                    continue
                lat.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200

        start_t = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - start_t
    return {
        "n": len(lat),
        "errors": errors,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "rps": len(lat) / wall,
    }


def bodies_for(model: str, texts: list[str]) -> list[bytes]:
    return [
        json.dumps({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": t}]}).encode()
        for t in texts
    ]


def server_log_stats(log: Path, since: int, skip: int) -> dict[str, float | None]:
    """From the server's JSON log lines after byte ``since``: its own view of each request.

    ``scoring`` is the encoder + head time (``router_ms``); ``in_router`` is the time the
    request spent in the router apart from the upstream exchange (``total_ms −
    upstream_ms``: body parsing, waiting for and running the scorer, forwarding) — the
    added latency without the client-side noise of differencing two tail percentiles.
    The first ``skip`` lines (the unmeasured warm-up requests) are left out.
    """
    scoring, in_router = [], []
    seen = 0
    with log.open("rb") as f:
        f.seek(since)
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or rec.get("upstream_ms") is None:
                continue
            seen += 1
            if seen <= skip:
                continue
            in_router.append(float(rec["total_ms"]) - float(rec["upstream_ms"]))
            if rec.get("score") is not None:
                scoring.append(float(rec["router_ms"]))
    out: dict[str, float | None] = {}
    for name, values in (("server_scoring", scoring), ("server_in_router", in_router)):
        out[f"{name}_p50_ms"] = pct(values, 50) if values else None
        out[f"{name}_p99_ms"] = pct(values, 99) if values else None
    return out


def requests_at(concurrency: int, requests: int, delay_ms: float) -> int:
    """Requests per measurement: fewer at c=1 (serial), and with a slow upstream ~10 rounds."""
    if delay_ms > 0:
        return min(requests, 30 if concurrency == 1 else 10 * concurrency)
    return min(requests, 100) if concurrency == 1 else requests


def bench_http(
    router_dir: Path,
    calibration: Path,
    test: list[str],
    requests: int,
    cap_s: float,
    workdir: Path,
    delay_ms: float,
    scoring_threads: int = 2,
    encoder_threads: int = 1,
) -> dict[str, Any]:
    up_port, fw_port = free_port(), free_port()
    up = start(
        [sys.executable, __file__, "--upstream-port", str(up_port), "--upstream-delay-ms", str(delay_ms)],
        f"http://{HOST}:{up_port}/",
        workdir / "upstream.log",
    )
    cfg = workdir / "serve.yaml"
    cfg.write_text(
        f"router: {router_dir}\ncalibration: {calibration}\n"
        f"weak: {{base_url: 'http://{HOST}:{up_port}/v1', model: w}}\n"
        f"strong: {{base_url: 'http://{HOST}:{up_port}/v1', model: s}}\n"
        "auth_keys: [bench-key]\nbackend: onnx\ndefault_model: firewall@30%\n"
        f"scoring_threads: {scoring_threads}\nencoder_threads: {encoder_threads}\n"
    )
    fw_log = workdir / "serve.log"
    fw = start(
        [sys.executable, "-m", "firewall_routing.cli", "serve", "--config", str(cfg), "--port", str(fw_port)],
        f"http://{HOST}:{fw_port}/healthz",
        fw_log,
    )
    auth = {"authorization": "Bearer bench-key", "content-type": "application/json"}
    rows: list[dict[str, Any]] = []
    try:
        for c in CONCURRENCY:
            n = requests_at(c, requests, delay_ms)
            for target, url, model in (
                ("direct", f"http://{HOST}:{up_port}/v1/chat/completions", "w"),
                ("router firewall@30%", f"http://{HOST}:{fw_port}/v1/chat/completions", "firewall@30%"),
                ("router weak (no scoring)", f"http://{HOST}:{fw_port}/v1/chat/completions", "weak"),
            ):
                offset = fw_log.stat().st_size
                stagger = delay_ms / 1000.0 / c
                res = asyncio.run(load(url, bodies_for(model, test), c, n, cap_s, auth, stagger))
                res.update(target=target, concurrency=c, delay_ms=delay_ms)
                if target.startswith("router"):
                    res.update(server_log_stats(fw_log, offset, skip=c))
                rows.append(res)
                print(
                    f"  delay {delay_ms:g} ms c={c:>2} {target:<26} n={res['n']:>4} p50={res['p50_ms']:7.1f} ms "
                    f"p99={res['p99_ms']:7.1f} ms {res['rps']:7.1f} req/s errors={res['errors']}",
                    flush=True,
                )
        metrics = httpx.get(f"http://{HOST}:{fw_port}/metrics").text
        gauge = [ln for ln in metrics.splitlines() if ln.startswith("firewall_strong_call_fraction")]
        served_fraction = float(gauge[0].split()[-1]) if gauge else None
    finally:
        stop(fw)
        stop(up)
    return {
        "delay_ms": delay_ms,
        "scoring_threads": scoring_threads,
        "encoder_threads": encoder_threads,
        "rows": rows,
        "added": added_latency(rows),
        "served_fraction": served_fraction,
    }


def added_latency(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in CONCURRENCY:
        by = {r["target"]: r for r in rows if r["concurrency"] == c}
        base = by["direct"]
        for target in ("router firewall@30%", "router weak (no scoring)"):
            r = by[target]
            out.append(
                {
                    "delay_ms": base["delay_ms"],
                    "concurrency": c,
                    "target": target,
                    "added_p50_ms": r["p50_ms"] - base["p50_ms"],
                    "added_p99_ms": r["p99_ms"] - base["p99_ms"],
                }
            )
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", type=Path, help="Saved embedding-head router (default: train one).")
    ap.add_argument("--requests", type=int, default=400, help="Requests per (target, concurrency).")
    ap.add_argument("--cap-s", type=float, default=60.0, help="Time cap per measurement.")
    ap.add_argument("--scoring-n", type=int, default=200, help="Prompts for the scoring bench.")
    ap.add_argument("--seeds", type=int, default=3, help="Seeds of the held-out calibration study.")
    ap.add_argument(
        "--delay-ms", type=float, default=1000.0, help="Response time of the slow upstream (0: skip it)."
    )
    ap.add_argument("--scoring-threads", type=int, default=2, help="Server config scoring_threads.")
    ap.add_argument("--encoder-threads", type=int, default=1, help="Server config encoder_threads.")
    ap.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream-delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream_port:
        run_upstream(args.upstream_port, args.upstream_delay_ms)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from firewall_routing.calibration import calibrate, save_calibration

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    router_dir = args.router or train_router(work / "router")
    train_p, test_p, cal_p = prompts(TRAIN), prompts(TEST), unseen_prompts()

    print("scoring (single prompt, in process)…", flush=True)
    scoring = bench_scoring(router_dir, test_p, args.scoring_n)
    print(
        f"embeddings of {len(train_p)} train, {len(cal_p)} calibration, {len(test_p)} test prompts…",
        flush=True,
    )
    emb = embeddings({"train": train_p, "cal": cal_p, "test": test_p})
    print("calibration study…", flush=True)
    fraction = bench_fraction(args.seeds, emb)
    from firewall_routing.routers import load_router

    served: Any = load_router(router_dir)  # an embedding-head router: has score_embeddings
    cal = calibrate(
        served.score_embeddings(emb["cal"]["onnx"]),
        router=str(router_dir),
        backend="onnx",
        source=str(GSM8K_TRAIN),
    )
    cal_path = save_calibration(cal, work / "calibration.json")
    http = []
    for delay in sorted({0.0, args.delay_ms}):
        print(f"HTTP load (loopback), upstream delay {delay:g} ms…", flush=True)
        http.append(
            bench_http(
                router_dir,
                cal_path,
                test_p,
                args.requests,
                args.cap_s,
                work,
                delay,
                args.scoring_threads,
                args.encoder_threads,
            )
        )

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "router": str(router_dir),
        "scoring": scoring,
        "http": http,
        "fraction": fraction,
        "targets": {
            "scoring_onnx_p50_ms<=5 (1 thread)": scoring["onnx/1"]["p50_ms"] <= 5.0,
            "scoring_onnx_p50_ms<=5 (2 threads)": scoring["onnx/2"]["p50_ms"] <= 5.0,
            **{
                f"in_router_p99_ms_at_64<=10 (upstream delay {h['delay_ms']:g} ms)": x[
                    "server_in_router_p99_ms"
                ]
                <= 10.0
                for h in http
                for x in h["rows"]
                if x["concurrency"] == 64 and x["target"] == "router firewall@30%"
            },
            "fraction_30_pm_2_every_held_out_seed": all(
                abs(r["test_fraction"] - 0.30) <= 0.02
                for r in fraction["rows"]
                if r["kind"] == "held_out" and r["backend"] == "onnx"
            ),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwrote {RESULTS}")


def print_table(r: dict[str, Any]) -> None:
    print("\nscoring, one prompt      p50 ms   p99 ms   CPU p50 ms   CPU p99 ms")
    for name, x in r["scoring"].items():
        print(
            f"  {name + ' thread(s)':<22}{x['p50_ms']:7.2f}  {x['p99_ms']:7.2f}  {x['cpu_p50_ms']:10.2f}  "
            f"{x['cpu_p99_ms']:10.2f}"
        )
    for h in r["http"]:
        print(
            f"\n-- upstream delay {h['delay_ms']:g} ms, scoring_threads {h['scoring_threads']}, "
            f"encoder_threads {h['encoder_threads']} --"
        )
        print("added latency vs direct   conc  p50 ms   p99 ms")
        for a in h["added"]:
            print(
                f"  {a['target']:<24}{a['concurrency']:>4}  {a['added_p50_ms']:7.2f}  {a['added_p99_ms']:7.2f}"
            )
        print("server-side, from its log   conc  in-router p50/p99 ms   scoring p50/p99 ms")
        for x in h["rows"]:
            if x["target"].startswith("router"):
                sc = (
                    f"{x['server_scoring_p50_ms']:7.1f} / {x['server_scoring_p99_ms']:7.1f}"
                    if x.get("server_scoring_p50_ms") is not None
                    else "      –"
                )
                print(
                    f"  {x['target']:<26}{x['concurrency']:>4}  {x['server_in_router_p50_ms']:7.1f} / "
                    f"{x['server_in_router_p99_ms']:7.1f}   {sc}"
                )
        print("throughput (req/s)        " + "  ".join(f"c={c:<5}" for c in CONCURRENCY))
        for target in ("direct", "router firewall@30%", "router weak (no scoring)"):
            rps = [x["rps"] for x in h["rows"] if x["target"] == target]
            print(f"  {target:<24}" + "  ".join(f"{v:7.1f}" for v in rps))
        print(f"  server gauge firewall_strong_call_fraction over the load test: {h['served_fraction']}")
    print("\nfirewall@30%: observed on the 1,319 GSM8K test prompts")
    for row in r["fraction"]["rows"]:
        print(
            f"  {row['kind']:<9} seed {row['seed']} {row['backend']:<6} calibration n={row['n_calibration']:>4}"
            f"  threshold {row['threshold']:.4f}  test strong fraction {100 * row['test_fraction']:.1f} %"
            f"  test APGR {row['test_apgr']:.2f}"
        )
    for row in r["fraction"]["rows"]:
        if "onnx_vs_torch_max_abs_diff" in row:
            print(
                f"  onnx vs torch, {row['kind']} seed {row['seed']}: max |Δscore| "
                f"{row['onnx_vs_torch_max_abs_diff']:.4f} over the test prompts, same decisions "
                f"{100 * row['onnx_vs_torch_same_decisions_at_t30']:.2f} % (each at its own 30 % threshold)"
            )
    print(f"\ntargets: {json.dumps(r['targets'], indent=1)}")
    print(f"load average before/after: {r['machine']['loadavg_before']} / {r['machine']['loadavg_after']}")


if __name__ == "__main__":
    main()
