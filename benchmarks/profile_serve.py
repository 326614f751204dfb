"""Where a proxied request's CPU goes: ``serve`` in process, per thread and per component.

The server runs in this process (uvicorn, the same app ``serve`` builds; uvloop/httptools
when installed, as under ``serve``). A subprocess sends ``--warmup`` requests, then two
measured phases of ``--requests`` chat requests each at concurrency ``--concurrency``;
the upstream is ``bench_serve.py``'s instant stub.

1. **Unprofiled**: CPU seconds of every thread of this process (``/proc/self/task``) over
   the phase, per request, by thread: the event loop (HTTP server, framework, upstream
   client, our handler), the scoring threads (token counting, encoder, router head), the
   log writer. These are the real costs.
2. **Profiled**: the event-loop thread under ``cProfile.Profile(time.thread_time)`` (CPU
   time, not wall: on a shared machine wall time mostly measures waiting for a core). Self
   time is grouped by component (the package a function lives in) and the shares are
   applied to phase 1's event-loop CPU per request, so the table says how many of the real
   milliseconds each component takes. Python function calls per request are a count, steady
   on a loaded machine where times are not.

Printed: both tables, the load average, the top functions; ``--out`` writes them as JSON.
Usage: ``PYTHONPATH=src python benchmarks/profile_serve.py ROUTER_DIR [--model weak]
[--backend static] [--requests 1500]`` (ROUTER_DIR: a saved router with calibration.json;
``--model firewall@30%`` to include scoring).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
import bench_serve as bench

from firewall_routing.processes import free_port, stop_process
from firewall_routing.serve.app import create_app
from firewall_routing.serve.config import load_config

LOAD = """
import asyncio, json, sys
sys.path.insert(0, {bench_dir!r})
import bench_serve as b
from pathlib import Path
from firewall_routing.processes import wait_http
url, model, c, warmup, n, flag = {url!r}, {model!r}, {c}, {warmup}, {n}, Path({flag!r})
wait_http(url.replace("/v1/chat/completions", "/healthz"), None, 120)
bodies = b.bodies_for(model, b.prompts(b.TEST), False)
hdr = {{"authorization": "Bearer k", "content-type": "application/json"}}
asyncio.run(b.load(url, bodies, c, warmup, 60, hdr))
ack = Path(str(flag) + ".ack")

def say(word):  # tell the server, then wait until it has acted on it
    flag.write_text(word)
    while not (ack.exists() and ack.read_text() == word):
        time.sleep(0.005)

import time
for phase in ("plain", "profiled"):
    say("go-" + phase)
    print(json.dumps(asyncio.run(b.load(url, bodies, c, n, 120, hdr))), flush=True)
    say("stop-" + phase)
"""

# component of a profiled function, by the first matching fragment of its file path
COMPONENTS = (
    ("firewall_routing/serve/upstream", "our upstream relay (serve/upstream.py)"),
    ("firewall_routing/serve/app", "our request handler (serve/app.py)"),
    ("firewall_routing/serve/scoring", "micro-batcher (serve/scoring.py)"),
    ("firewall_routing/serve/prometheus", "metrics (prometheus_client)"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("firewall_routing", "other firewall_routing"),
    ("httpcore", "upstream client (httpx + httpcore + h11)"),
    ("httpx", "upstream client (httpx + httpcore + h11)"),
    ("/h11/", "upstream client (httpx + httpcore + h11)"),
    ("anyio", "upstream client (httpx + httpcore + h11)"),
    ("uvicorn", "HTTP server (uvicorn + httptools)"),
    ("httptools", "HTTP server (uvicorn + httptools)"),
    ("starlette", "framework (FastAPI + Starlette)"),
    ("fastapi", "framework (FastAPI + Starlette)"),
    ("pydantic", "request validation (pydantic)"),
    ("json", "JSON (stdlib json)"),
    ("logging", "request log line (logging)"),
    ("uuid", "request id (uuid)"),
    ("asyncio", "event loop (asyncio + uvloop)"),
    ("uvloop", "event loop (asyncio + uvloop)"),
    ("~", "builtins (C functions: socket I/O, dict/str ops, ...)"),
)


def component(path: str) -> str:
    for fragment, name in COMPONENTS:
        if fragment in path:
            return name
    return "other Python"


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = names.get(int(tid), "other threads")
        if name.startswith("firewall-score"):
            name = "scoring threads"
        elif name == "MainThread":
            name = "event loop (main thread)"
        elif name == "firewall-log":
            name = "log writer"
        else:
            name = "other threads"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


class GcTimer:
    """CPU seconds the event-loop thread spends in the cyclic garbage collector, per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.on = False
        self._start = 0.0
        self._main = threading.main_thread().ident

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on or threading.get_ident() != self._main:
            return
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.seconds[info["generation"]] += time.thread_time() - self._start
            self.count[info["generation"]] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("router", type=Path)
    ap.add_argument("--model", default="weak")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, help="Write the tables as JSON here.")
    ap.add_argument("--no-freeze", action="store_true", help="Skip serve's gc.freeze (to compare).")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="profile-serve-"))
    up_port, port = free_port(), free_port()
    up = bench.start(
        [sys.executable, bench.__file__, "--upstream-port", str(up_port)],
        f"http://{bench.HOST}:{up_port}/",
        work / "upstream.log",
    )
    cfg = work / "serve.yaml"
    upstream = f"{{base_url: 'http://{bench.HOST}:{up_port}/v1', model: m}}"
    cfg.write_text(
        f"router: {args.router.resolve()}\nweak: {upstream}\nstrong: {upstream}\nauth_keys: [k]\n"
        f"backend: {args.backend}\n"
    )
    from firewall_routing.serve.app import configure_logging

    configure_logging()  # the batched writer, as under `serve`, to a file
    sys.stderr = (work / "serve.log").open("w")
    for h in logging.getLogger().handlers:
        if hasattr(h, "stream"):
            h.stream = sys.stderr
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(load_config(cfg))
    if not args.no_freeze:
        try:  # as `serve` does (profiling code from before it existed: skipped)
            from firewall_routing.serve.app import freeze_startup_objects

            freeze_startup_objects()
        except ImportError:
            print("no freeze_startup_objects in this code: not frozen")
    server = uvicorn.Server(uvicorn.Config(app, host=bench.HOST, port=port, log_level="warning"))
    flag = work / "flag"
    url = f"http://{bench.HOST}:{port}/v1/chat/completions"
    script = LOAD.format(
        bench_dir=str(Path(__file__).parent),
        url=url,
        model=args.model,
        c=args.concurrency,
        warmup=args.warmup,
        n=args.requests,
        flag=str(flag),
    )
    load = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    prof = cProfile.Profile(time.thread_time)
    marks: dict[str, Any] = {}
    gc_timer = GcTimer()
    gc.callbacks.append(gc_timer)

    ack = Path(str(flag) + ".ack")

    async def wait_for(word: str) -> None:
        """Until the load process writes ``word`` to the flag file; stop if it died instead."""
        while not (flag.exists() and flag.read_text() == word):
            if load.poll() is not None:
                server.should_exit = True
                raise RuntimeError(f"the load process exited with status {load.returncode}")
            await asyncio.sleep(0.005)

    def acknowledge(word: str) -> None:
        ack.write_text(word)

    async def watch() -> None:
        await wait_for("go-plain")
        marks["plain0"] = thread_cpu()
        gc_timer.on = True
        acknowledge("go-plain")
        await wait_for("stop-plain")
        marks["plain1"] = thread_cpu()
        gc_timer.on = False
        acknowledge("stop-plain")
        await wait_for("go-profiled")
        marks["prof0"] = time.process_time()
        prof.enable()
        acknowledge("go-profiled")
        await wait_for("stop-profiled")
        prof.disable()
        marks["prof1"] = time.process_time()
        acknowledge("stop-profiled")
        server.should_exit = True

    async def run() -> None:
        task = asyncio.create_task(watch())
        await server.serve()
        await task

    load_before = os.getloadavg()
    try:
        try:  # the loop `serve` runs on (uvicorn picks uvloop when it is installed)
            import uvloop

            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        except ImportError:
            factory = asyncio.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())
    finally:
        out, _ = load.communicate(timeout=60)
        stop_process(up)
    n = args.requests
    a, b = marks["plain0"], marks["plain1"]
    per_thread = {k: 1000 * (b.get(k, 0.0) - a.get(k, 0.0)) / n for k in b}
    loop_ms = per_thread.get("event loop (main thread)", 0.0)
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    self_time: dict[str, float] = {}
    other: dict[str, float] = {}  # "other Python" by file, to say what it is
    for (path, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        key = component(path)
        self_time[key] = self_time.get(key, 0.0) + tottime
        if key == "other Python":
            short = "/".join(Path(path).parts[-2:])
            other[short] = other.get(short, 0.0) + tottime
    total = sum(self_time.values()) or 1.0
    components = {k: loop_ms * v / total for k, v in sorted(self_time.items(), key=lambda kv: -kv[1])}
    top_other = sorted(other.items(), key=lambda kv: -kv[1])[:8]
    result = {
        "model": args.model,
        "backend": args.backend,
        "concurrency": args.concurrency,
        "requests": n,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "load": [json.loads(line) for line in out.splitlines() if line.startswith("{")],
        "cpu_ms_per_request_by_thread": per_thread,
        "cpu_ms_per_request_total": sum(per_thread.values()),
        "event_loop_ms_by_component": components,
        "other_python_ms_by_file": {k: loop_ms * v / total for k, v in top_other},
        "gc_ms_per_request_by_generation": [1000 * x / n for x in gc_timer.seconds],
        "gc_collections_by_generation": gc_timer.count,
        "calls_per_request": stats.total_calls / n,  # type: ignore[attr-defined]
        "profiled_cpu_ms_per_request": 1000 * (marks["prof1"] - marks["prof0"]) / n,
    }
    print(f"model {args.model}, backend {args.backend}, c={args.concurrency}, {n} requests a phase")
    print(f"load average before/after: {result['loadavg_before']} / {result['loadavg_after']}")
    print(f"\nCPU ms per request by thread (unprofiled), total {result['cpu_ms_per_request_total']:.3f} ms")
    for k, v in per_thread.items():
        print(f"  {k:<58} {v:7.3f}")
    gc_ms = result["gc_ms_per_request_by_generation"]
    print(
        f"  of which the event loop's garbage collection: {sum(gc_ms):.3f} ms "
        f"(generations 0/1/2: {' / '.join(f'{x:.3f}' for x in gc_ms)}; collections {gc_timer.count})"
    )
    print("\nevent-loop CPU ms per request by component (cProfile self-time shares x the above)")
    for k, v in components.items():
        print(f"  {k:<58} {v:7.3f}")
    print(
        "  'other Python', largest files: "
        + ", ".join(f"{k} {loop_ms * v / total:.3f}" for k, v in top_other)
    )
    print(f"\nPython function calls per request: {result['calls_per_request']:.0f}")
    print(f"CPU per request under the profiler: {result['profiled_cpu_ms_per_request']:.2f} ms\n")
    stats.sort_stats("tottime").print_stats(args.top)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
