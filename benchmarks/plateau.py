"""The routing-plateau measurements (issue 23): does learning from every model help?

Sections (each resumable: it rewrites only its own key of ``benchmarks/results/plateau.json``):

* ``sweep RESULTS``: reads a ``firewall-routing sweep`` results.json (15 RouterDC pairs,
  router = the default ``ridge`` per label design, baselines mf, knn, irt), copies it to
  ``benchmarks/results/sweep.json`` and summarizes the targets: GSM8K soft-block mean over
  the pairs, wins of irt against mf, knn and ridge, the main pair, and out of distribution
  (HumanEval, MBPP) the mean with the sign and Wilcoxon tests against random.
* ``mmlu``: MMLU-Pro, Llama-3.1-8B-Instruct → Llama-3.1-70B-Instruct, a seeded 80/20 split of
  the 10,002 questions (seed 0; nothing is tuned on the test part). ridge (soft-block labels),
  knn (the sweep's 'gain' label and the soft-block label), irt (all 23 models' training-row
  outcomes), random; APGR with 95 % bootstrap CIs (1,000 draws over test questions, the same
  draws for every router) and irt − knn paired.
* ``curve``: APGR against the number of training questions (MMLU-Pro: 250 … 8,000 of the
  training split, the same test split; GSM8K: 250, 500, 1,000 — all RouterDC has — mean over
  the 15 sweep pairs on GSM8K test) for ridge, knn and irt; one plot in docs/img/.
* ``timing``: ``firewall-routing train`` on the first 300 rows of a non-GSM8K table (our
  TriviaQA table) with an empty ``FIREWALL_ROUTING_CACHE``, end to end, with the load average.

Usage: ``PYTHONPATH=src nice -n 10 python benchmarks/plateau.py {sweep PATH | mmlu | curve | plot | timing | prefix}``\n(``plot`` redraws the learning curve from plateau.json).
"""

from __future__ import annotations

# ruff: noqa: E402  (BLAS thread counts must be set before numpy is imported)
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.labels import Approximations, compute_labels, pair_label
from firewall_routing.outcomes import FloatArray, OutcomeTable, load_routerdc, split_train_val
from firewall_routing.outcomes.releases import load_mmlu_pro
from firewall_routing.routers import make_router

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "plateau.json"
MMLU = ROOT / "data" / "mmlu-pro" / "outcomes.jsonl"
MMLU_WEAK, MMLU_STRONG = "Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct"
MAIN_WEAK, MAIN_STRONG = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"
N_BOOT = 1000
CHOSEN: dict[str, dict[str, Any]] = {}
"""What each router's training chose on the last split (feature groups, irt's item head)."""


def save_section(name: str, value: Any) -> None:
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc[name] = value
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT} [{name}]")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def gain_label(pr_w: FloatArray, pr_s: FloatArray) -> FloatArray:
    out: FloatArray = (1.0 - (pr_s - pr_w)) / 2.0
    return out


# --------------------------------------------------------------------------- routers on one split


def pair_scores(
    name: str, train: OutcomeTable, test_prompts: list[str], weak: str, strong: str
) -> dict[str, FloatArray]:
    """Scores of router ``name`` trained on ``train`` for the ``weak`` → ``strong`` pair (irt
    learns every model of ``train`` and scores any pair: ``name == 'irt'`` returns one entry)."""
    pair = train.pair(weak, strong)
    if name.startswith("irt"):
        head = name.removeprefix("irt").strip(" ()").removeprefix("head ") or "ridge"
        r = make_router("irt", head=head)
        r.fit_table(pair)
        CHOSEN[name] = r.trained_info()
        print(f"  {name}: groups {r.trained_info()['feature_groups']}, head {r.trained_info()['item_head']}")
        return {name: r.score(test_prompts)}
    if name == "knn":
        out = {}
        for label, y in (
            ("knn", gain_label(pair.weak.pass_rate, pair.strong.pass_rate)),
            ("knn (soft-block label)", compute_labels(pair, "soft-block", Approximations()).values),
        ):
            r = make_router("knn")
            r.fit(pair.prompts, y)
            out[label] = r.score(test_prompts)
        return out
    r = make_router(name)
    r.fit(pair.prompts, compute_labels(pair, "soft-block", Approximations()).values)
    info = r.trained_info()
    if info:
        CHOSEN[name] = info
        print(f"  {name}: {info.get('feature_groups')}")
    return {name: r.score(test_prompts)}


def ci(boot: FloatArray) -> list[float]:
    lo, hi = metrics.ci95(boot)
    return [round(lo, 2), round(hi, 2)]


# --------------------------------------------------------------------------- sections


def section_sweep(path: Path) -> None:
    doc = json.loads(path.read_text())
    shutil.copy(path, RESULTS / "sweep.json")
    out: dict[str, Any] = {"source": str(path), "config": doc["config"], "wall_seconds": doc["wall_seconds"]}
    for ds, summ in doc["summary"].items():
        mean = {k: round(v["apgr"], 2) for k, v in summ["mean"].items()}
        wins = summ["wins"]
        out[ds] = {
            "n_pairs": summ["n_pairs"],
            "mean": mean,
            "irt_vs": {
                k: {f: wins["irt"][k][f] for f in ("wins", "losses", "ties", "sign_test_p", "wilcoxon_p")}
                for k in wins["irt"]
            },
            "soft-block_vs_random": {
                f: wins["soft-block"]["random"][f] for f in ("wins", "losses", "sign_test_p", "wilcoxon_p")
            },
        }
    main = next(p for p in doc["pairs"] if p["weak"] == MAIN_WEAK and p["strong"] == MAIN_STRONG)
    out["main_pair_gsm8k"] = {
        k: {"apgr": round(v["apgr"], 2), "ci95": [round(x, 2) for x in v["ci95"]]}
        for k, v in main["datasets"]["gsm8k"]["routers"].items()
        if "apgr" in v and v.get("ci95") is not None
    }
    save_section("sweep", out)
    for ds in doc["summary"]:
        print(
            ds,
            out[ds]["mean"],
            "irt vs:",
            {k: (v["wins"], v["losses"]) for k, v in out[ds]["irt_vs"].items()},
        )
    print("main pair", {k: v["apgr"] for k, v in out["main_pair_gsm8k"].items()})


def section_mmlu() -> None:
    start = time.perf_counter()
    full = load_mmlu_pro(MMLU)
    test, train = split_train_val(full, 0.8, 0)  # "val" = the 80 % training part
    pw, ps = test.model(MMLU_WEAK).pass_rate, test.model(MMLU_STRONG).pass_rate
    draws = metrics.bootstrap_draws(len(test), N_BOOT, 0)
    scores: dict[str, FloatArray] = {}
    for name in ("ridge", "knn", "irt", "irt (head knn)", "irt (head auto)"):
        t0 = time.perf_counter()
        scores |= pair_scores(name, train, list(test.prompts), MMLU_WEAK, MMLU_STRONG)
        print(f"  {name} {time.perf_counter() - t0:.1f}s")
    rows: dict[str, Any] = {}
    boots = {}
    for name, s in scores.items():
        boots[name] = metrics.bootstrap_apgr(s, pw, ps, draws)
        rows[name] = {"apgr": round(metrics.mean_apgr(s, pw, ps), 2), "ci95": ci(boots[name])}
    oracle = pair_label("soft-block", pw, ps)  # the true test label as the score: a ceiling
    rows["random"] = {"apgr": 50.0, "ci95": [50.0, 50.0]}
    rows["ceiling:true-soft-block-label"] = {"apgr": round(metrics.mean_apgr(oracle, pw, ps), 2)}
    diff = boots["irt"] - boots["knn"]
    out = {
        "weak": MMLU_WEAK,
        "strong": MMLU_STRONG,
        "split": "seeded 80/20 (split_train_val(table, 0.8, 0): the 20 % part is the test split)",
        "n_train": len(train),
        "n_test": len(test),
        "test_weak_pass_rate": round(float(pw.mean()), 4),
        "test_strong_pass_rate": round(float(ps.mean()), 4),
        "routers": rows,
        "irt_minus_knn": {"apgr": round(rows["irt"]["apgr"] - rows["knn"]["apgr"], 2), "ci95": ci(diff)},
        "chosen_on_training_rows": dict(CHOSEN),
        "n_boot": N_BOOT,
        "seconds": round(time.perf_counter() - start, 1),
        "loadavg": loadavg(),
    }
    save_section("mmlu_pro", out)
    for k, v in rows.items():
        print(f"{k:32s} {v}")


def section_curve() -> None:
    out: dict[str, Any] = {"loadavg_start": loadavg()}
    full = load_mmlu_pro(MMLU)
    test, train = split_train_val(full, 0.8, 0)
    pw, ps = test.model(MMLU_WEAK).pass_rate, test.model(MMLU_STRONG).pass_rate
    order = np.random.default_rng(1).permutation(len(train))
    mm: dict[str, dict[str, float]] = {}
    for n in (250, 500, 1000, 2000, 5000, 8000):
        sub = train.take(np.sort(order[: min(n, len(train))]))
        for name in ("ridge", "knn", "irt"):
            for k, s in pair_scores(name, sub, list(test.prompts), MMLU_WEAK, MMLU_STRONG).items():
                mm.setdefault(k, {})[str(len(sub))] = round(metrics.mean_apgr(s, pw, ps), 2)
        print("mmlu", len(sub), {k: v.get(str(len(sub))) for k, v in mm.items()}, flush=True)
    out["mmlu_pro"] = mm
    from firewall_routing.experiment.sweep import select_pairs

    tr_file = ROOT / "data" / "routerdc" / "gsm8k-train.json"
    gtrain = load_routerdc(tr_file, benchmark="gsm8k-train")
    gtest = load_routerdc(ROOT / "data" / "routerdc" / "gsm8k-test.json", benchmark="gsm8k")
    pairs = select_pairs(tr_file, 0.10)
    gorder = np.random.default_rng(1).permutation(len(gtrain))
    gs: dict[str, dict[str, float]] = {}
    for n in (250, 500, 1000):
        sub = gtrain.take(np.sort(gorder[:n]))
        per: dict[str, list[float]] = {}
        irt = make_router("irt")
        irt.fit_table(sub)
        pred = irt.predict_models(list(gtest.prompts))
        names = list(irt.model_names)
        for p in pairs:
            pw_, ps_ = gtest.model(p.weak).pass_rate, gtest.model(p.strong).pass_rate
            s_irt = pair_label("soft-block", pred[:, names.index(p.weak)], pred[:, names.index(p.strong)])
            per.setdefault("irt", []).append(metrics.mean_apgr(s_irt, pw_, ps_))
            for name in ("ridge", "knn"):
                for k, s in pair_scores(name, sub, list(gtest.prompts), p.weak, p.strong).items():
                    per.setdefault(k, []).append(metrics.mean_apgr(s, pw_, ps_))
        for k, v in per.items():
            gs.setdefault(k, {})[str(n)] = round(float(np.mean(v)), 2)
        print("gsm8k", n, {k: v[str(n)] for k, v in gs.items()}, flush=True)
    out["gsm8k_mean_15_pairs"] = gs
    out["loadavg_end"] = loadavg()
    save_section("learning_curve", out)
    plot_curve(out)


COLORS = {"ridge": "C0", "knn": "C1", "knn (soft-block label)": "C2", "irt": "C3"}


def plot_curve(out: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, key, title in (
        (axes[0], "mmlu_pro", "MMLU-Pro, Llama-3.1-8B → 70B (2,000 test questions)"),
        (axes[1], "gsm8k_mean_15_pairs", "GSM8K test, mean over the 15 RouterDC pairs"),
    ):
        for name in sorted(out[key]):
            curve = out[key][name]
            xs = [int(x) for x in curve]
            ax.plot(xs, list(curve.values()), marker="o", label=name, color=COLORS.get(name))
        ax.axhline(50, color="grey", lw=0.8, ls="--", label="random")
        ax.set_xscale("log")
        xs = sorted({int(x) for c in out[key].values() for x in c})
        ax.set_xticks(xs, [f"{x:,}" for x in xs], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("training questions")
        ax.set_ylabel("soft-block APGR")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    dest = ROOT / "docs" / "img" / "learning-curve.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    print(f"wrote {dest}")


def section_timing() -> None:
    src = ROOT / "data" / "local" / "triviaqa-smollm2-135m-vs-gemma-3-270m.jsonl"
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "t300.jsonl"
        table.write_text("".join(src.read_text().splitlines(keepends=True)[:300]))
        for options in ("{}", '{"prior": "none"}'):
            cache = Path(tmp) / f"cache{len(runs)}"
            env = os.environ | {"FIREWALL_ROUTING_CACHE": str(cache)}
            before = loadavg()
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "firewall_routing.cli", "train", str(table)]
            cmd += ["--out", str(Path(tmp) / f"r{len(runs)}"), "--router-options", options]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            runs.append(
                {
                    "router_options": options,
                    "wall_seconds": round(wall, 2),
                    "loadavg_before": before,
                    "loadavg_after": loadavg(),
                    "stdout": proc.stdout.strip().splitlines(),
                }
            )
            print(runs[-1])
    save_section(
        "train_timing_300_rows_empty_cache", {"table": f"first 300 rows of {src.name}", "runs": runs}
    )


def section_prefix() -> None:
    """Prompt features + GSM8K prior predictions (what ridge adds after the embedding) for a
    short prompt and a 1 MB one, median of 20 calls each."""
    from firewall_routing.routers.ridge import GSM8K_PRIOR, WORDS, group_columns, gsm8k_prior

    prior = gsm8k_prior(["not a gsm8k question"])
    short = "Tom has 3 apples and buys 4 more each day for a week. How many apples does he have?"
    huge = (short + " ") * (1_000_000 // (len(short) + 1))
    out: dict[str, Any] = {"loadavg_before": loadavg()}
    for name, text in (("short", short), ("1MB", huge)):
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            group_columns([text], (WORDS, GSM8K_PRIOR), prior)
            times.append((time.perf_counter() - t0) * 1000)
        out[f"{name}_ms_p50"] = round(float(np.median(times)), 3)
    out["chars"] = {"short": len(short), "1MB": len(huge)}
    out["loadavg_after"] = loadavg()
    save_section("prompt_features_bounded_prefix", out)
    print(out)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    what = sys.argv[1]
    if what == "sweep":
        section_sweep(Path(sys.argv[2]))
    elif what == "mmlu":
        section_mmlu()
    elif what == "curve":
        section_curve()
    elif what == "prefix":
        section_prefix()
    elif what == "plot":
        plot_curve(json.loads(OUT.read_text())["learning_curve"])
    elif what == "timing":
        section_timing()
    else:
        raise SystemExit(f"unknown section {what!r}\n{__doc__}")


if __name__ == "__main__":
    main()
