"""``scorer-check`` for the shipped scorers against trusted ones, on real answers.

* GSM8K (Qwen2.5-Coder 0.5B vs 1.5B, 60 questions, n = 4) and TriviaQA (SmolLM2-135M vs
  Gemma-3-270M, 1,200 questions, n = 5): the stored completions of ``data/local`` scored by
  the reference scorers (vs the gold answer) against the exact graders.
* AlpacaEval (a weak → strong pair of ``data/alpacaeval/judged.jsonl``): each model's answer
  scored by the reference scorers (vs GPT-4-1106's reference answer) and, on a subset, by a
  local GGUF judge served by ``firewall-routing local-server``, against GPT-4-turbo's
  preference (quality ≥ 0.5 = the answer beats the reference).

Verdicts are cached in ``benchmarks/results/scorer_check.scores.sqlite`` (resumable: a rerun
scores only what is missing). Prints the Markdown table and writes
``benchmarks/results/scorer_check.json`` (rows are merged by label across runs). Usage:
``nice -n 10 python benchmarks/scorer_check.py --only gsm8k,triviaqa,alpacaeval``
``nice -n 10 python benchmarks/scorer_check.py --only judge --judge-url http://127.0.0.1:8631/v1 --judge-rows 100``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOCAL = ROOT / "data" / "local"
METHODS = ("cosine", "rouge-l", "bertscore")

RUNS: dict[str, dict[str, Any]] = {
    "gsm8k": {
        "weak": {
            "base_url": "http://127.0.0.1:8401/v1",
            "model": "qwen2.5-coder-0.5b-instruct-q4_k_m",
            "name": "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M",
        },
        "strong": {
            "base_url": "http://127.0.0.1:8402/v1",
            "model": "qwen2.5-coder-1.5b-instruct-q4_k_m",
            "name": "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
        },
        "dataset": "gsm8k",
        "split": "test",
        "limit": 60,
        "n": 4,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 384,
        "template": "chat",
        "store": str(LOCAL / "gsm8k-qwen-0.5b-vs-1.5b.samples.sqlite"),
    },
    "triviaqa": {
        "weak": {
            "base_url": "http://127.0.0.1:8411/v1",
            "model": "smollm2-135m",
            "name": "SmolLM2-135M-Instruct-Q4_1",
        },
        "strong": {
            "base_url": "http://127.0.0.1:8412/v1",
            "model": "gemma-3-270m",
            "name": "gemma-3-270m-Q4_K_M",
        },
        "dataset": str(LOCAL / "triviaqa-3shot.jsonl"),
        "limit": 1200,
        "n": 5,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 16,
        "template": "completion",
        "stop": ["\n"],
        "grader": "triviaqa-em",
        "table_prompt": "question",
        "store": str(LOCAL / "triviaqa-smollm2-135m-vs-gemma-3-270m.samples.sqlite"),
    },
}


def sampled_tables(name: str, methods: list[str], cache: Any, tmp: Path) -> tuple[Any, dict[str, Any]]:
    """The exact-graded table and one table per reference method, from the stored samples."""
    from firewall_routing.outcomes import load_generic
    from firewall_routing.sampling.run import (
        build_quality,
        build_table,
        load_items,
        make_config,
        sample_run,
        score_results,
        write_table,
    )
    from firewall_routing.sampling.scorers import make_scorer
    from firewall_routing.sampling.store import SampleStore

    cfg = make_config(dict(RUNS[name]), {})
    items = load_items(cfg)
    with SampleStore(cfg.store) as st:
        results, _ = asyncio.run(sample_run(cfg, items, st, offline=True, progress=False))

    def table(scorer: Any, label: str) -> Any:
        t0 = time.monotonic()
        sc = score_results(results, scorer, cache, progress=False)
        out = tmp / f"{name}-{label}.jsonl"
        write_table(
            build_table(
                results,
                cfg.weak.display_name,
                cfg.strong.display_name,
                table_prompt=cfg.table_prompt,
                scored=sc,
            ),
            build_quality(results, sc),
            out,
        )
        print(f"{name}: {sc.stats.line()} ({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)
        return load_generic(out)

    trusted = table(make_scorer("exact"), "exact")
    return trusted, {m: table(make_scorer("reference", {"method": m}), m) for m in methods}


def alpaca_tables(
    weak: str,
    strong: str,
    scorers: dict[str, Any],
    cache: Any,
    tmp: Path,
    rows: int | None,
    max_prompt: int | None,
) -> tuple[Any, dict[str, Any]]:
    """GPT-4-turbo's preferences and our scorers' verdicts on the same AlpacaEval answers."""
    from firewall_routing.outcomes import load_generic
    from firewall_routing.outcomes.releases import load_alpacaeval, load_alpacaeval_answers
    from firewall_routing.sampling.scorers import ScoreJob
    from firewall_routing.sampling.scorers.cache import score_cached

    data = ROOT / "data" / "alpacaeval" / "judged.jsonl"
    trusted = load_alpacaeval(data, weak, strong).complete(drop=True)
    ans = load_alpacaeval_answers(data)
    pos = {i: k for k, i in enumerate(ans.ids)}
    keep = [i for i in trusted.ids if max_prompt is None or len(ans.prompts[pos[i]]) <= max_prompt]
    keep = keep[:rows] if rows else keep
    out: dict[str, Any] = {}
    for label, scorer in scorers.items():
        t0 = time.monotonic()
        jobs = [
            ScoreJob(i, ans.prompts[pos[i]], ans.outputs[m][pos[i]] or "", ans.reference[pos[i]])
            for i in keep
            for m in (weak, strong)
        ]
        scores, stats = score_cached(scorer, jobs, cache, progress=False, chunk=16)
        print(
            f"alpacaeval {label}: {stats.line()} ({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True
        )
        path = tmp / f"alpaca-{label}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for k, i in enumerate(keep):
                w, s = scores[2 * k], scores[2 * k + 1]
                if w.quality is None or s.quality is None:
                    continue  # missing verdicts are left out, never 0
                row = {
                    "id": i,
                    "prompt": ans.prompts[pos[i]],
                    "weak_model": weak,
                    "strong_model": strong,
                    "weak_quality": [w.quality],
                    "strong_quality": [s.quality],
                    "weak_samples": [int(bool(w.passed))],
                    "strong_samples": [int(bool(s.passed))],
                }
                f.write(json.dumps(row) + "\n")
        out[label] = load_generic(path)
    return trusted, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="gsm8k,triviaqa,alpacaeval")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--weak", default="FuseChat-Llama-3.2-1B-Instruct")
    ap.add_argument("--strong", default="FuseChat-Gemma-2-9B-Instruct")
    ap.add_argument("--judge-url", default="http://127.0.0.1:8631/v1")
    ap.add_argument("--judge-model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--judge-mode", default="pointwise")
    ap.add_argument("--judge-rows", type=int, default=100)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--design", default="soft-block")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from firewall_routing.experiment.scorer_check import MARKDOWN_HEAD, check, markdown_row
    from firewall_routing.sampling.scorers import make_scorer
    from firewall_routing.sampling.store import SampleStore

    only = set(args.only.split(","))
    methods = [m for m in args.methods.split(",") if m]
    out_json = RESULTS / "scorer_check.json"
    record: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {"rows": {}}
    with tempfile.TemporaryDirectory() as d, SampleStore(RESULTS / "scorer_check.scores.sqlite") as cache:
        tmp = Path(d)
        todo: list[tuple[str, Any, Any, dict[str, Any]]] = []
        for name in ("gsm8k", "triviaqa"):
            if name in only:
                trusted, cands = sampled_tables(name, methods, cache, tmp)
                todo += [
                    (f"{name}: reference {m} vs exact graders", c, trusted, {"scorer": f"reference/{m}"})
                    for m, c in cands.items()
                ]
        if "alpacaeval" in only:
            scorers = {f"reference {m}": make_scorer("reference", {"method": m}) for m in methods}
            trusted, cands = alpaca_tables(args.weak, args.strong, scorers, cache, tmp, None, None)
            todo += [
                (f"alpacaeval {args.weak} → {args.strong}: {k} vs GPT-4-turbo", c, trusted, {"scorer": k})
                for k, c in cands.items()
            ]
        if "judge" in only:
            judge = make_scorer(
                "judge",
                {
                    "model": args.judge_model,
                    "base_url": args.judge_url,
                    "mode": args.judge_mode,
                    "max_answer_chars": 1000,
                    "concurrency": 2,
                    "timeout": 900,
                },
            )
            label = f"judge {args.judge_model} {args.judge_mode}"
            trusted, cands = alpaca_tables(
                args.weak, args.strong, {label: judge}, cache, tmp, args.judge_rows, 1000
            )
            subset = trusted.take([k for k, i in enumerate(trusted.ids) if i in set(cands[label].ids)])
            todo.append(
                (
                    f"alpacaeval {args.weak} → {args.strong} (first {args.judge_rows} ≤1,000-char instructions): {label} vs GPT-4-turbo",
                    cands[label],
                    subset,
                    {"scorer": label},
                )
            )
        for label, cand, trusted, info in todo:
            t0 = time.monotonic()
            res = check(cand, trusted, design=args.design, n_boot=args.bootstrap)
            record["rows"][label] = {
                **info,
                **res.to_json(),
                "markdown": markdown_row(label, res),
                "load_average": os.getloadavg(),
                "seconds": round(time.monotonic() - t0, 1),
                "command": " ".join(sys.argv),
            }
            print(markdown_row(label, res), flush=True)
            # Merge with what other runs wrote meanwhile (the judge runs beside the others).
            disk = json.loads(out_json.read_text()) if out_json.exists() else {"rows": {}}
            disk["rows"][label] = record["rows"][label]
            record["rows"] = {**disk["rows"], **{label: record["rows"][label]}}
            out_json.write_text(json.dumps(disk, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(MARKDOWN_HEAD)
    for row in record["rows"].values():
        print(row["markdown"])


if __name__ == "__main__":
    main()
