"""Where a proxied request's CPU goes: ``serve`` in process under cProfile, timed in CPU time.

The server runs in this process (uvicorn, the same app ``serve`` builds) with
``cProfile.Profile(time.thread_time)``, so every function is charged the CPU time of the
event-loop thread, not wall time (on a shared machine wall time mostly measures waiting
for a core). A subprocess sends ``--warmup`` then ``--requests`` chat requests at
concurrency ``--concurrency`` to it; the upstream is ``bench_serve.py``'s instant stub.
Printed: process CPU ms per request, Python function calls per request (a count, so
steady on a loaded machine where times are not) and the top functions.

Usage: ``PYTHONPATH=src python benchmarks/profile_serve.py ROUTER_DIR [--model weak]
[--requests 1500]`` (ROUTER_DIR: a saved router with calibration.json; profile under
``--model firewall@30%`` to include scoring; scoring threads are not profiled).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
flag.write_text("go")
print(json.dumps(asyncio.run(b.load(url, bodies, c, n, 120, hdr))), flush=True)
flag.write_text("stop")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("router", type=Path)
    ap.add_argument("--model", default="weak")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--top", type=int, default=25)
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
    cfg.write_text(f"router: {args.router.resolve()}\nweak: {upstream}\nstrong: {upstream}\nauth_keys: [k]\n")
    logging.basicConfig(filename=work / "serve.log", level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server = uvicorn.Server(
        uvicorn.Config(create_app(load_config(cfg)), host=bench.HOST, port=port, log_level="warning")
    )
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
    load = subprocess.Popen([sys.executable, "-c", script])
    prof = cProfile.Profile(time.thread_time)
    cpu: list[float] = []

    async def wait_for(word: str) -> None:
        """Until the load process writes ``word`` to the flag file; stop if it died instead."""
        while not (flag.exists() and flag.read_text() == word):
            if load.poll() is not None:
                server.should_exit = True
                raise RuntimeError(f"the load process exited with status {load.returncode}")
            await asyncio.sleep(0.02)

    async def watch() -> None:
        await wait_for("go")
        cpu.append(time.process_time())
        prof.enable()
        await wait_for("stop")
        prof.disable()
        cpu.append(time.process_time())
        server.should_exit = True

    async def run() -> None:
        task = asyncio.create_task(watch())
        await server.serve()
        await task

    try:
        asyncio.run(run())
    finally:
        load.wait(timeout=60)
        stop_process(up)
    stats = pstats.Stats(prof)
    print(
        f"process CPU per request (profiler overhead included): {1000 * (cpu[1] - cpu[0]) / args.requests:.2f} ms"
    )
    print(f"Python function calls per request: {stats.total_calls / args.requests:.0f}")  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
