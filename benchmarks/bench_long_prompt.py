"""What a 1 MB prompt costs the server's scoring, against a short one (issue 24, item 5).

Why: a 1 MB prompt cost 270–920 ms of scoring (the ridge router's prompt features read the
whole text), and with 10 in flight small chats waited seconds. Scoring now reads a bounded
prefix (``serve.scoring.MAX_SCORED_CHARS``); the target is "≤ ~2 ms more than a short one".

For each backend (static, onnx) a ridge router (200 GSM8K train rows, soft-block) is loaded
into a ``Decider`` the way ``serve`` builds it, and ``Decider.route`` (text extraction,
token budget, encoder, head) is timed on a one-line question, the same question padded to
1 MB, the same question padded to exactly the prefix (4 KB: what a 1 MB prompt now costs at
most, the honest baseline — a 256-token encoder pass costs more than a 20-token one), and a
three-turn chat whose earlier turns are 1 MB each: median and max of
``--repeat`` runs after a warm-up, one thread, with the load average beside the numbers.

Usage::

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_long_prompt.py

Writes ``benchmarks/results/long_prompt.json``.
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAIR = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")
QUESTION = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many?"
MB = 1_000_000


def train_router(out: Path, encoder: str) -> Path:
    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers.ridge import RidgeRouter

    table = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR).take(range(200))
    router = RidgeRouter(encoder=encoder)
    router.fit(table.prompts, compute_labels(table, "soft-block").values)
    router.save(out)
    return out


def timed(fn: Any, repeat: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(statistics.median(times), 3), "max_ms": round(max(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/long_prompt.json")
    args = parser.parse_args()

    from firewall_routing.embeddings import DEFAULT_ENCODER, STATIC_ENCODER
    from firewall_routing.serve.routing import build_decider
    from firewall_routing.serve.scoring import MAX_SCORED_CHARS

    padded = QUESTION + " " + "lorem ipsum dolor sit amet " * (MB // 27)
    cases = {
        "short": [{"role": "user", "content": QUESTION}],
        "4KB (the prefix)": [{"role": "user", "content": padded[:MAX_SCORED_CHARS]}],
        "1MB": [{"role": "user", "content": padded}],
        "3 turns, 2 x 1MB earlier": [
            {"role": "user", "content": padded},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": padded},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": QUESTION},
        ],
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, encoder in (("static", STATIC_ENCODER), ("onnx", DEFAULT_ENCODER)):
            router = train_router(Path(tmp) / backend, encoder)
            decider = build_decider(router, None, backend=backend, default_model="firewall@t=0.5")  # type: ignore[arg-type]
            for name, messages in cases.items():
                stats = timed(lambda m=messages, d=decider: d.route(m), args.repeat)
                rows.append({"backend": backend, "case": name, **stats})
    load = os.getloadavg()
    short = {r["backend"]: r["median_ms"] for r in rows if r["case"] == "short"}
    prefix = {r["backend"]: r["median_ms"] for r in rows if r["case"].startswith("4KB")}
    print(f"prefix {MAX_SCORED_CHARS} chars; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'backend':8} {'case':28} {'median ms':>10} {'max ms':>8} {'+ vs short':>10} {'+ vs 4KB':>9}")
    for r in rows:
        r["extra_vs_short_ms"] = round(r["median_ms"] - short[r["backend"]], 3)
        r["extra_vs_4kb_ms"] = round(r["median_ms"] - prefix[r["backend"]], 3)
        print(
            f"{r['backend']:8} {r['case']:28} {r['median_ms']:10.3f} {r['max_ms']:8.3f} "
            f"{r['extra_vs_short_ms']:10.3f} {r['extra_vs_4kb_ms']:9.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"max_scored_chars": MAX_SCORED_CHARS, "repeat": args.repeat, "loadavg": load, "rows": rows}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
