"""Hybrid LLM's routers and the blocking designs on AlpacaEval's judged answers, per pair.

The AlpacaEval file (``data/alpacaeval/judged.jsonl``) gives, for 797 open-ended
instructions and 28 models, GPT-4-turbo's probability that the model's answer beats
GPT-4-1106's reference answer: a real-valued quality per answer, no answer key. For each
weak → strong pair (small to large quality gaps) this trains a router per label design on a
seeded 75 % of the instructions and evaluates on the other 25 % (``hybrid-llm``'s
experiment, :func:`firewall_routing.experiment.holdout.run_holdout`): APGR with its 95 %
bootstrap CI on correctness = quality ≥ 0.5 (the answer is preferred to GPT-4's), and Hybrid
LLM's quality drop at 10/20/40 % cost advantage on the real-valued quality.

Prints the Markdown tables and writes ``benchmarks/results/alpacaeval_hybrid.json`` and
``.md`` (with the load average). Usage:
``nice -n 10 python benchmarks/alpacaeval_hybrid.py [--seeds 1] [--bootstrap 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = (
    ("vicuna-7b-v1.5", "gpt-3.5-turbo-1106"),
    ("gemma-7b-it", "claude"),
    ("FuseChat-Llama-3.2-1B-Instruct", "FuseChat-Gemma-2-9B-Instruct"),
    ("pythia-12b-mix-sft", "Qwen-14B-Chat"),
)
DESIGNS = ("hybrid-det", "hybrid-prob", "hybrid-trans", "hard-block", "soft-block")
BASELINES = ("random", "oracle")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "alpacaeval" / "judged.jsonl")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "alpacaeval_hybrid.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from firewall_routing import metrics
    from firewall_routing.experiment.holdout import holdout_markdown, run_holdout
    from firewall_routing.outcomes import split_train_val
    from firewall_routing.outcomes.releases import load_alpacaeval

    results, texts = [], []
    for weak, strong in PAIRS:
        start = time.monotonic()
        table = load_alpacaeval(args.data, weak, strong).complete(drop=True)
        train, test = split_train_val(table, args.test_fraction, args.split_seed)
        res = run_holdout(
            train,
            test,
            DESIGNS,
            BASELINES,
            seeds=args.seeds,
            n_boot=args.bootstrap,
            progress=lambda m: print(m, file=sys.stderr),
        )
        text = holdout_markdown(res, f"AlpacaEval: {weak} → {strong}")
        print(text, flush=True)
        texts.append(text)
        results.append(
            {
                "weak": weak,
                "strong": strong,
                "rows_complete": len(table),
                "n_train": res.n_train,
                "n_test": res.n_test,
                "weak_pass_rate": res.weak_pass_rate,
                "strong_pass_rate": res.strong_pass_rate,
                "weak_quality": res.weak_quality,
                "strong_quality": res.strong_quality,
                "t_star": res.t_star,
                "router": res.router,
                "rows": [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "uses_quality": r.uses_quality,
                        "same_as": r.same_as,
                        "apgr": r.apgr,
                        "apgr_ci95": list(r.apgr_ci),
                        "pass_rate_at": {str(a): r.pass_rate_at[a] for a in metrics.PASS_RATE_FRACTIONS},
                        "quality_drop_at_cost_advantage": {str(c): v for c, v in r.quality_drop.items()},
                    }
                    for r in res.rows
                ],
                "seconds": round(time.monotonic() - start, 1),
            }
        )
    record = {
        "command": " ".join(sys.argv),
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
        "split": {"test_fraction": args.test_fraction, "seed": args.split_seed},
        "correctness": "quality >= 0.5 (GPT-4-turbo prefers the answer to GPT-4-1106's)",
        "seeds": args.seeds,
        "bootstrap": args.bootstrap,
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "pairs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text("\n".join(texts), encoding="utf-8")
    print(f"wrote {args.out} (load average {os.getloadavg()[0]:.1f})", file=sys.stderr)


if __name__ == "__main__":
    main()
