"""Decoder-LLM hidden states (llama.cpp, local GGUF) as extra routing features, on every RouterDC pair.

Why this exists: issue 11 lists "larger decoder LLMs' hidden states, last-token instead of mean
pooling" as untried. This probe answers it once, with the same protocol as
``bench_router_search.py``: the 15 ordered RouterDC pairs (GSM8K-train gap >= 0.10), the
900 training rows of ``reproduce``'s split, soft-block labels, hyperparameters only by
leave-one-out on those 900 rows, APGR on the 1,319 GSM8K test questions.

Two steps:

* ``embed``: one llama.cpp server per worker (``xllamacpp``, 127.0.0.1, explicit thread
  count, pooling ``none``) returns every token's final hidden state, so one forward pass
  gives both **mean** pooling and **last-token** pooling. The 2,319 GSM8K train+test
  prompts are written in chunks of 50 to ``CACHE/<name>/`` (a crash loses one chunk).
  The first chunk is timed and the whole run extrapolated; above ``--max-minutes`` the
  model is skipped, not subsampled.
* ``eval``: per model and pooling, two candidates: ridge (LOO alpha) on the standardized LLM
  vectors alone, and the shipped ``ridge`` router's inputs (MiniLM embedding, hand features,
  GSM8K solution prior) concatenated with the standardized LLM vectors (LOO alpha).
  Baselines ``ridge-a30``, ``ridge (router)`` and ``ridge+feats+prior`` are rerun for the
  win counts, and a noise control (Gaussian vectors of the LLM's shape through the same
  concatenation) shows what an extra block with a LOO-picked weight does by itself.
  ``embed --probe-only`` only times the first 50 prompts.

Usage::

    PYTHONPATH=src nice -n 10 python benchmarks/bench_llm_features.py embed \
        --gguf gemma3-270m=/tmp/llmfeat/gemma-3-270m-q4_k_m.gguf --threads 1 --workers 2
    PYTHONPATH=src nice -n 10 python benchmarks/bench_llm_features.py eval --gguf gemma3-270m=...

Writes ``benchmarks/results/llm_features.json``.
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_router_search as brs

RESULTS = Path(__file__).parent / "results" / "llm_features.json"
CHUNK = 50
Arr = np.ndarray[Any, np.dtype[np.float64]]


def gsm8k_prompts(data_dir: Path) -> list[str]:
    """GSM8K train (1,000) + test (1,319) questions, deduplicated, in file order."""
    rd = data_dir / "routerdc"
    qs = [
        r["question"]
        for f in ("gsm8k-train.json", "gsm8k-test.json")
        for r in json.loads((rd / f).read_text())
    ]
    return list(dict.fromkeys(qs))


def parse_gguf(specs: list[str]) -> dict[str, Path]:
    out = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            sys.exit(f"--gguf wants NAME=PATH, got {spec!r}")
        out[name] = Path(path)
    return out


# --------------------------------------------------------------------------- embed


def run_worker(model: Path, out_dir: Path, prompts: list[str], chunks: list[int], threads: int) -> None:
    """Serve ``model`` on a free port with pooling none; write each chunk's mean/last vectors."""
    import httpx
    import xllamacpp

    from firewall_routing.sampling.local_server import HOST, free_port, wait_http

    port = free_port()
    p = xllamacpp.CommonParams()
    p.model.path = str(model)
    p.hostnames = [HOST]
    p.port = port
    p.embedding = True
    p.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_NONE
    p.n_parallel = 1
    p.n_ctx = p.n_batch = p.n_ubatch = 2048
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.verbosity = 0
    server = xllamacpp.Server(p)
    try:
        wait_http(f"http://{HOST}:{port}/health", None, 120)
        with httpx.Client(timeout=600) as c:
            for i in chunks:
                path = out_dir / f"chunk_{i:03d}.npz"
                if path.exists():
                    continue
                t0 = time.perf_counter()
                means, lasts = [], []
                for q in prompts[i * CHUNK : (i + 1) * CHUNK]:
                    r = c.post(f"http://{HOST}:{port}/embedding", json={"content": q})
                    r.raise_for_status()
                    tok = np.asarray(r.json()[0]["embedding"], dtype=np.float64)
                    means.append(tok.mean(0))
                    lasts.append(tok[-1])
                secs = time.perf_counter() - t0
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, mean=np.array(means), last=np.array(lasts), seconds=secs)
                tmp.rename(path)
                print(f"chunk {i}: {secs / len(means) * 1000:.0f} ms/prompt", flush=True)
    finally:
        del server


def embed(args: argparse.Namespace) -> None:
    from firewall_routing.sampling.datasets import default_data_dir

    prompts = gsm8k_prompts(default_data_dir())
    n_chunks = -(-len(prompts) // CHUNK)
    for name, model in parse_gguf(args.gguf).items():
        out = args.cache / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "prompts.json").write_text(json.dumps(prompts))
        if not (out / "chunk_000.npz").exists():  # throughput probe: the first 50 prompts, one worker
            run_worker(model, out, prompts, [0], args.threads)
        sec = float(np.load(out / "chunk_000.npz")["seconds"])
        est_min = sec / CHUNK * len(prompts) / args.workers / 60
        print(
            f"{name}: {sec / CHUNK * 1000:.0f} ms/prompt on the first {CHUNK}; ~{est_min:.1f} min for all",
            flush=True,
        )
        if est_min > args.max_minutes:
            print(f"{name}: skipped (over --max-minutes {args.max_minutes})", flush=True)
            continue
        if args.probe_only:
            continue
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "worker",
                    "--model",
                    str(model),
                    "--out",
                    str(out),
                    "--threads",
                    str(args.threads),
                    "--chunks",
                    ",".join(str(i) for i in range(w, n_chunks, args.workers)),
                ]
            )
            for w in range(args.workers)
        ]
        for pr in procs:
            pr.wait()
        done = len(list(out.glob("chunk_[0-9]*.npz")))
        print(f"{name}: {done}/{n_chunks} chunks", flush=True)


def load_vectors(cache: Path, name: str) -> tuple[dict[str, int], dict[str, Arr], float]:
    out = cache / name
    prompts = json.loads((out / "prompts.json").read_text())
    n_chunks = -(-len(prompts) // CHUNK)
    parts = [np.load(out / f"chunk_{i:03d}.npz") for i in range(n_chunks)]
    ms = float(np.mean([float(p["seconds"]) / len(p["mean"]) for p in parts]) * 1000)
    vecs = {k: np.vstack([p[k] for p in parts]) for k in ("mean", "last")}
    return {q: i for i, q in enumerate(prompts)}, vecs, ms


# --------------------------------------------------------------------------- eval


def loo_best(x: Arr, y: Arr, alphas: Arr = brs.ALPHAS) -> tuple[float, float]:
    """(exact leave-one-out MSE, alpha) of the best alpha: lets LOO also pick a block weight."""
    xm, ym = x.mean(0), y.mean()
    u, sv, _ = np.linalg.svd(x - xm, full_matrices=False)
    uty = u.T @ (y - ym)
    best = (np.inf, float(alphas[0]))
    for a in alphas:
        f = sv**2 / (sv**2 + a)
        h = (u**2) @ f + 1.0 / len(y)
        loo = float(np.mean(((y - ym - u @ (f * uty)) / (1 - h)) ** 2))
        best = min(best, (loo, float(a)))
    return best


def llm_block(v: dict[str, Arr]) -> Any:
    """Z-score each LLM dimension on the training rows, then divide by sqrt(dim) so the block's
    total variance is ~1, like the unit-norm MiniLM vectors the shipped alphas are sized for."""
    mu, sd = v["train"].mean(0), v["train"].std(0) + 1e-6
    scale = np.sqrt(v["train"].shape[1])
    return lambda s: (v[split_name(s)] - mu) / sd / scale


def c_llm_only(v: dict[str, Arr]) -> brs.Candidate:
    """Ridge (LOO alpha) on the LLM vectors alone."""

    def fit(t: brs.Task) -> brs.Scorer:
        g = llm_block(v)
        xt = g(t.train)
        m = brs.ridge_fit(xt, t.y, loo_best(xt, t.y)[1])
        return lambda x, s: brs.ridge_predict(m, g(s))

    return fit


WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def c_router_plus_llm(v: dict[str, Arr]) -> brs.Candidate:
    """The shipped ``ridge`` inputs (MiniLM, hand features, solution prior; scaled as in
    ``ridge+feats+prior``) + the LLM block times a weight; LOO picks alpha and weight jointly."""

    def fit(t: brs.Task) -> brs.Scorer:
        f = brs.std_feats(t.train)
        pm, psd = t.train.prior.mean(0), t.train.prior.std(0) + 1e-9
        g = llm_block(v)

        def z(x: Arr, s: brs.Split, w: float) -> Arr:
            return np.hstack([x, f(s), (s.prior - pm) / psd, w * g(s)])

        (_, a), w = min((loo_best(z(t.x, t.train, w), t.y), w) for w in WEIGHTS)
        m = brs.ridge_fit(z(t.x, t.train, w), t.y, a)
        return lambda x, s: brs.ridge_predict(m, z(x, s, w))

    return fit


_SPLITS: dict[int, str] = {}


def split_name(s: brs.Split) -> str:
    return _SPLITS[id(s)]


def evaluate(args: argparse.Namespace) -> None:
    from firewall_routing import metrics
    from firewall_routing.embeddings import get_encoder
    from firewall_routing.sampling.datasets import default_data_dir

    enc = get_encoder()
    data, info = brs.load(default_data_dir(), lambda ps: enc.encode(ps))
    tr, gsm = data.train, data.evals["gsm8k"]
    _SPLITS.update({id(tr): "train", id(gsm): "test"})
    cands: dict[str, brs.Candidate] = {
        "ridge-a30": brs.CANDIDATES["ridge-a30"],
        "ridge (router)": brs.c_ridge_router,
        "ridge+feats+prior": brs.c_ridge_prior,
    }
    timing: dict[str, float] = {}
    for name in parse_gguf(args.gguf):
        try:
            index, vecs, ms = load_vectors(args.cache, name)
        except FileNotFoundError as e:
            print(f"{name}: no complete vectors ({e}); skipped", flush=True)
            continue
        timing[name] = ms
        for pool in ("mean", "last"):
            v = {
                "train": vecs[pool][[index[p] for p in tr.prompts]],
                "test": vecs[pool][[index[p] for p in gsm.prompts]],
            }
            cands[f"{name}-{pool} ridge"] = c_llm_only(v)
            cands[f"ridge inputs + {name}-{pool}"] = c_router_plus_llm(v)
        # control: Gaussian noise of the same shape through the same pipeline (the block weight
        # and alpha picked by LOO can move APGR by themselves; a real signal must beat noise)
        shape: tuple[int, ...] = vecs["mean"].shape
        noise = np.random.default_rng(0).standard_normal(shape)
        nv = {"train": noise[[index[p] for p in tr.prompts]], "test": noise[[index[p] for p in gsm.prompts]]}
        cands[f"ridge inputs + noise-{noise.shape[1]} (control)"] = c_router_plus_llm(nv)
    draws = metrics.bootstrap_draws(len(gsm.prompts), args.n_boot, 0)
    results: dict[str, Any] = {"info": info, "embedding_ms_per_prompt": timing, "candidates": {}}
    for cname, cand in cands.items():
        per_pair: dict[str, float] = {}
        secs = []
        ci: tuple[float, float] | None = None
        for w, s in data.pairs:
            task, iw, is_ = brs.pair_task(data, "soft-block", w, s)
            t0 = time.perf_counter()
            scorer = cand(task)
            secs.append(time.perf_counter() - t0)
            sc = scorer(gsm.emb, gsm)
            per_pair[f"{w}->{s}"] = brs.apgr(sc, gsm.pr[:, iw], gsm.pr[:, is_])
            if (w, s) == brs.MAIN:
                ci = metrics.ci95(metrics.bootstrap_metrics([sc], gsm.pr[:, iw], gsm.pr[:, is_], draws).apgr)
        results["candidates"][cname] = {
            "mean_apgr": float(np.mean(list(per_pair.values()))),
            "main_apgr": per_pair[f"{brs.MAIN[0]}->{brs.MAIN[1]}"],
            "main_ci95": ci,
            "per_pair": per_pair,
            "train_seconds_mean": float(np.mean(secs)),
        }
        print(f"{cname:40s} mean {results['candidates'][cname]['mean_apgr']:.2f}", flush=True)
    base = results["candidates"]["ridge-a30"]["per_pair"]
    ship = results["candidates"]["ridge (router)"]["per_pair"]
    for row in results["candidates"].values():
        row["wins_vs_ridge_a30"] = int(sum(row["per_pair"][k] > base[k] for k in base))
        row["wins_vs_ridge_router"] = int(sum(row["per_pair"][k] > ship[k] for k in ship))
    print()
    print(
        f"| candidate (soft-block) | mean APGR ({len(data.pairs)} pairs) | wins vs ridge-a30 | wins vs ridge (router) "
        "| main APGR [95% CI] | train s | embedding ms/prompt |"
    )
    print("|---|---:|---:|---:|---|---:|---:|")
    for cname, r in results["candidates"].items():
        lo, hi = r["main_ci95"]
        llm = next((n for n in timing if f"{n}-" in cname), None)
        ems = f"{timing[llm]:.0f}" if llm else "-"
        print(
            f"| {cname} | {r['mean_apgr']:.2f} | {r['wins_vs_ridge_a30']} | {r['wins_vs_ridge_router']} | "
            f"{r['main_apgr']:.2f} [{lo:.1f}, {hi:.1f}] | {r['train_seconds_mean']:.2f} | {ems} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("embed", "eval"):
        s = sub.add_parser(cmd)
        s.add_argument(
            "--gguf", action="append", default=[], required=True, help="NAME=PATH.gguf (repeatable)"
        )
        s.add_argument("--cache", type=Path, default=Path("/tmp/llmfeat"))
    sub.choices["embed"].add_argument("--threads", type=int, default=1)
    sub.choices["embed"].add_argument("--workers", type=int, default=2)
    sub.choices["embed"].add_argument("--max-minutes", type=float, default=20.0)
    sub.choices["embed"].add_argument(
        "--probe-only", action="store_true", help="only time the first 50 prompts and extrapolate"
    )
    sub.choices["eval"].add_argument("--n-boot", type=int, default=1000)
    sub.choices["eval"].add_argument("--out", type=Path, default=RESULTS)
    w = sub.add_parser("worker")
    w.add_argument("--model", type=Path, required=True)
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--threads", type=int, default=1)
    w.add_argument("--chunks", required=True)
    args = ap.parse_args()
    if args.cmd == "embed":
        embed(args)
    elif args.cmd == "eval":
        evaluate(args)
    else:
        from firewall_routing.sampling.datasets import default_data_dir

        run_worker(
            args.model,
            args.out,
            gsm8k_prompts(default_data_dir()),
            [int(i) for i in args.chunks.split(",")],
            args.threads,
        )


if __name__ == "__main__":
    main()
