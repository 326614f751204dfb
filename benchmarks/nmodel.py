"""N-model routing benchmark (issue 22): quality against cost over every model of a table.

Data sets, each with its shipped cost table (data/costs/, relative cost per query):

* ``mmlu-pro``: data/mmlu-pro/outcomes.jsonl, 23 models, rows lacking a model's answer
  dropped; a seeded question split, half to train, half to test.
* ``routerdc``: RouterDC's 7 models, trained on GSM8K train (data/routerdc/gsm8k-train.json),
  tested on GSM8K test (in distribution) and on HumanEval + MBPP (out of distribution).

Routers (every one predicts every model's success, ``fit_models``, on the per-model pass
rate — for MMLU-Pro the 0/1 correctness of the one answer): ``ridge`` on MiniLM embeddings
(its hand features and GSM8K prior off: they describe GSM8K word problems), ``knn`` and
``mf`` (RouteLLM's factorisation with one embedding per model) — kNN and MF are the
baselines the issue names. Policies: cheapest model ≥ τ, success − λ·cost, each with
N-model blocking (every prediction < β → the cheapest model).

Nothing is tuned on a test row. Per router the policy, β and kNN's k and weighting are chosen by the area
over the hull of 5-fold out-of-fold predictions on the *training* rows; the knob value of
each quality target (95/99/100 % of the best single model's quality) is the cheapest one
whose out-of-fold operating point reaches it. The final router is fitted on all training
rows and scored on the test rows, where the benchmark reports: the curve over the knob (its
frontier), single models, their hull, random, the oracle, the area over the hull, the cost
at each target read off the test curve *and* the test point of the knob chosen on training
rows, with paired bootstrap CIs (queries resampled).

Item 5 (a model the router has not seen): on MMLU-Pro the router is retrained with one
model's training labels kept on only 10 % / 25 % of the training rows (NaN elsewhere).

Prints tables, writes ``benchmarks/results/nmodel.json`` and the plot
``docs/nmodel-mmlu-pro.png``. Usage (embeddings come from the shared cache):
``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/nmodel.py [--only mmlu-pro|routerdc]
[--draws 1000] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "nmodel.json"
PLOT = ROOT / "docs" / "nmodel-mmlu-pro.png"
SEED = 0
FOLDS = 5
HOPELESS = (0.0, 0.05, 0.1, 0.2, 0.3)
KNN_K = (25, 50, 100, 200, 400)
UNSEEN_MODEL = "gemini-1.5-pro-002"
UNSEEN_FRACTIONS = (0.1, 0.25)
TARGETS = (0.95, 0.99, 1.0)

FloatArray = Any


@dataclass
class Split:
    """One data set: training rows, named test sets, the models and their costs."""

    name: str
    train: Any  # OutcomeTable
    tests: dict[str, Any]
    costs: Any  # CostTable
    router_options: dict[str, dict[str, Any]]


def load_mmlu_pro() -> Split:
    from firewall_routing.costs import load_costs, shipped_costs
    from firewall_routing.outcomes import load_mmlu_pro as load

    table = load(ROOT / "data" / "mmlu-pro" / "outcomes.jsonl").complete(drop=True)
    costs = load_costs(shipped_costs("mmlu-pro"))
    costs.check_models(table.model_names, "data/mmlu-pro/outcomes.jsonl")
    perm = np.random.default_rng(SEED).permutation(len(table))
    half = len(table) // 2
    ridge = {"features": False, "prior": "none"}
    return Split(
        "mmlu-pro",
        table.take(np.sort(perm[:half])),
        {"mmlu-pro": table.take(np.sort(perm[half:]))},
        costs,
        {"ridge": ridge},
    )


def load_routerdc() -> Split:
    from firewall_routing.costs import load_costs, shipped_costs
    from firewall_routing.outcomes import concat
    from firewall_routing.outcomes import load_routerdc as load

    d = ROOT / "data" / "routerdc"
    train = load(d / "gsm8k-train.json").complete(drop=True)
    costs = load_costs(shipped_costs("routerdc"))
    costs.check_models(train.model_names, "data/routerdc/gsm8k-train.json")
    gsm8k = load(d / "gsm8k-test.json").complete(drop=True)
    code = concat([load(d / "humaneval_test.json"), load(d / "mbpp.json")], "humaneval+mbpp").complete(
        drop=True
    )
    ridge = {"features": False, "prior": "none"}
    return Split(
        "routerdc", train, {"gsm8k (in)": gsm8k, "humaneval+mbpp (out)": code}, costs, {"ridge": ridge}
    )


# --------------------------------------------------------------------------- routers


def make(name: str, split: Split, **extra: Any) -> Any:
    from firewall_routing.routers import make_router

    opts: dict[str, Any] = dict(split.router_options.get(name, {}))
    if name == "mf":
        opts = {"epochs": 30, "lr": 3e-3, "dim": 64, "weight_decay": 1e-5, "noise": 0.05, **opts}
    opts.update(extra)
    return make_router(name, **opts)


def fit_predict(name: str, split: Split, prompts: list[str], y: Any, test: list[str], **extra: Any) -> Any:
    r = make(name, split, **extra)
    r.fit_models(prompts, y, split.train.model_names)
    return r.predict_models(test)


def out_of_fold(name: str, split: Split, y: Any, **extra: Any) -> Any:
    """5-fold out-of-fold predictions on the training rows (rows seeded-shuffled)."""
    prompts = list(split.train.prompts)
    folds = np.array_split(np.random.default_rng(SEED + 1).permutation(len(prompts)), FOLDS)
    out = np.empty(y.shape)
    for held in folds:
        keep = np.setdiff1d(np.arange(len(prompts)), held)
        out[held] = fit_predict(
            name, split, [prompts[i] for i in keep], y[keep], [prompts[i] for i in held], **extra
        )
    return out


# --------------------------------------------------------------------------- evaluation


def curve_of(
    pred: Any, success: Any, cost: Any, policy: str, hopeless: float, knobs: Any = None
) -> tuple[Any, list[Any], Any, Any]:
    from firewall_routing.metrics.nmodel import frontier, points_of
    from firewall_routing.routers.policies import sweep

    grid, choices = sweep(policy, pred, cost, knobs, hopeless)  # type: ignore[arg-type]
    c, q = points_of(choices, success, cost)
    return grid, choices, (c, q), frontier(c, q)


def choose_on_train(pred: Any, success: Any, cost: Any) -> dict[str, Any]:
    """Policy and β by out-of-fold area; per quality target the cheapest knob reaching it."""
    from firewall_routing.metrics.nmodel import reference, summarize

    ref = reference(success, cost)
    best: dict[str, Any] | None = None
    for policy in ("threshold", "utility"):
        for beta in HOPELESS:
            grid, _, (c, q), fr = curve_of(pred, success, cost, policy, beta)
            summ = summarize(fr, ref)
            # the area over the hull; where the best model is also the cheapest, the gain
            area = summ.gain if np.isnan(summ.area) else summ.area
            if best is None or area > best["oof_area"]:
                best = {"policy": policy, "hopeless": beta, "oof_area": area, "grid": grid, "c": c, "q": q}
    assert best is not None
    best_q = float(ref.single_quality[ref.best])
    knobs: dict[str, float | None] = {}
    for t in TARGETS:
        ok = best["q"] >= t * best_q - 1e-12
        knobs[f"{t:g}"] = (
            float(best["grid"][np.flatnonzero(ok)[np.argmin(best["c"][ok])]]) if ok.any() else None
        )
    return {
        "policy": best["policy"],
        "hopeless": best["hopeless"],
        "oof_area": best["oof_area"],
        "knobs": knobs,
    }


def evaluate(
    pred: Any, success: Any, cost: Any, chosen: dict[str, Any], draws: int
) -> tuple[dict[str, Any], Any]:
    from firewall_routing.metrics.nmodel import COST_GRID, bootstrap_curve, points_of, reference, summarize
    from firewall_routing.routers.policies import choose

    ref = reference(success, cost)
    _, choices, (c, q), fr = curve_of(pred, success, cost, chosen["policy"], chosen["hopeless"])
    summ = summarize(fr, ref, TARGETS, COST_GRID)
    boot = bootstrap_curve(choices, success, cost, draws=draws, seed=SEED)
    best_q, best_c = float(ref.single_quality[ref.best]), ref.hi
    at_knob: dict[str, dict[str, float] | None] = {}
    for t, k in chosen["knobs"].items():
        if k is None:
            at_knob[t] = None
            continue
        ch = choose(chosen["policy"], pred, cost, k, chosen["hopeless"])
        kc, kq = points_of([ch], success, cost)
        at_knob[t] = {
            "knob": k,
            "cost_fraction": float(kc[0]) / best_c,
            "quality_fraction": float(kq[0]) / best_q,
            "accuracy": float(kq[0]),
        }
    lower = np.quantile(boot.above_hull, 0.025, axis=0)
    upper = np.quantile(boot.above_hull, 0.975, axis=0)
    out = {
        **summ.as_dict(),
        "policy": chosen["policy"],
        "hopeless": chosen["hopeless"],
        "oof_area": chosen["oof_area"],
        "area_ci": boot.ci(boot.area),
        "gain_ci": boot.ci(boot.gain),
        "cost_fraction_ci": {f"{t:g}": _ci(boot, boot.cost_fraction_at[t]) for t in TARGETS},
        "above_hull_ci": {
            f"{g:g}": [float(lo), float(hi)] for g, lo, hi in zip(boot.grid, lower, upper, strict=True)
        },
        "excludes_hull_middle": boot.excludes_hull(),
        "at_train_chosen_knob": at_knob,
        "points": {"cost": c.tolist(), "accuracy": q.tolist()},
    }
    return out, boot


def _ci(boot: Any, values: Any) -> list[float | None]:
    lo, hi = boot.ci(values)
    return [lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None]


def references(success: Any, cost: Any, names: tuple[str, ...]) -> dict[str, Any]:
    from firewall_routing.metrics.nmodel import oracle_choice, points_of, reference, summarize

    ref = reference(success, cost)
    oc, oq = points_of([oracle_choice(success, cost)], success, cost)
    best_q = float(ref.single_quality[ref.best])
    return {
        "rows": len(success),
        "single": {
            n: {"cost": float(c), "accuracy": float(q)}
            for n, c, q in zip(names, ref.single_cost, ref.single_quality, strict=True)
        },
        "best": names[ref.best],
        "cheapest": names[ref.cheapest],
        "hull": {"cost": ref.hull.cost.tolist(), "accuracy": ref.hull.quality.tolist()},
        "hull_cost_fraction_at": {f"{t:g}": ref.hull.cost_for(t * best_q) / ref.hi for t in TARGETS},
        "oracle": {"cost": float(oc[0]), "accuracy": float(oq[0]), "cost_fraction": float(oc[0]) / ref.hi},
        "random": {"cost": float(ref.single_cost.mean()), "accuracy": float(ref.single_quality.mean())},
        "hull_summary": summarize(ref.hull, ref, TARGETS).as_dict(),
    }


def run_split(split: Split, routers: list[str], draws: int, log: Callable[[str], None]) -> dict[str, Any]:
    from firewall_routing.labels import model_success

    names = split.train.model_names
    y = model_success(split.train, names, "pass-rate").values
    train_cost = split.costs.query_costs(names, len(split.train))
    preds: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for r in routers:
        t0 = time.perf_counter()
        candidates = [{"k": k, "weighted": w} for k in KNN_K for w in (False, True)] if r == "knn" else [{}]
        best: tuple[dict[str, Any], dict[str, Any]] | None = None
        for extra in candidates:
            oof = out_of_fold(r, split, y, **extra)
            chosen = choose_on_train(oof, y, train_cost)
            log(
                f"  {split.name} {r} {extra or ''}: out-of-fold area {chosen['oof_area']:.3f} ({chosen['policy']}, β {chosen['hopeless']})"
            )
            if best is None or chosen["oof_area"] > best[1]["oof_area"]:
                best = (extra, chosen)
        assert best is not None
        preds[r] = best
        log(f"  {split.name} {r}: chose {best[0] or 'defaults'} in {time.perf_counter() - t0:.0f} s")
    out: dict[str, Any] = {
        "costs": split.costs.describe(),
        "cost_provenance": split.costs.provenance(),
        "models": list(names),
        "train_rows": len(split.train),
        "tests": {},
    }
    prompts = list(split.train.prompts)
    boots: dict[str, Any] = {}
    for test_name, test in split.tests.items():
        success = test.pass_rate_matrix(names)
        cost = split.costs.query_costs(names, len(test))
        res: dict[str, Any] = {"reference": references(success, cost, names), "routers": {}}
        for r, (extra, chosen) in preds.items():
            pred = fit_predict(r, split, prompts, y, list(test.prompts), **extra)
            res["routers"][r], boots[f"{test_name}/{r}"] = evaluate(pred, success, cost, chosen, draws)
            res["routers"][r]["options"] = extra
        if "ridge" in preds and "knn" in preds:
            d = boots[f"{test_name}/ridge"].area - boots[f"{test_name}/knn"].area
            d = d[~np.isnan(d)]  # draws where the best single model is also the cheapest: no area
            res["ridge_minus_knn_area"] = {
                "mean": float(d.mean()) if len(d) else None,
                "ci": [float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))] if len(d) else None,
                "draws": len(d),
            }
        out["tests"][test_name] = res
    return out


def unseen_model(split: Split, draws: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 5: ridge retrained with one model's labels on a fraction of the training rows."""
    from firewall_routing.labels import model_success

    names = split.train.model_names
    j = names.index(UNSEEN_MODEL)
    y_full = model_success(split.train, names, "pass-rate").values
    train_cost = split.costs.query_costs(names, len(split.train))
    ((_, test),) = split.tests.items()
    success = test.pass_rate_matrix(names)
    cost = split.costs.query_costs(names, len(test))
    out: dict[str, Any] = {"model": UNSEEN_MODEL, "router": "ridge", "fractions": {}}
    rng = np.random.default_rng(SEED + 2)
    for frac in (*UNSEEN_FRACTIONS, 1.0):
        y = y_full.copy()
        if frac < 1.0:
            hide = rng.permutation(len(y))[round(frac * len(y)) :]
            y[hide, j] = np.nan
        oof = out_of_fold("ridge", split, y)
        known = ~np.isnan(y[:, j])
        chosen = choose_on_train(oof[known], y_full[known], train_cost[known])
        pred = fit_predict("ridge", split, list(split.train.prompts), y, list(test.prompts))
        res, _ = evaluate(pred, success, cost, chosen, draws)
        share = float(
            np.mean(
                choose(chosen["policy"], pred, cost, chosen["knobs"]["0.99"] or 0.0, chosen["hopeless"]) == j
            )
        )
        truth = success[:, j]
        corr = float(np.corrcoef(pred[:, j], truth)[0, 1])
        out["fractions"][f"{frac:g}"] = {
            "labelled_rows": int(known.sum()),
            "area": res["area"],
            "area_ci": res["area_ci"],
            "cost_fraction_at": res["cost_fraction_at"],
            "at_train_chosen_knob": res["at_train_chosen_knob"],
            "share_routed_to_model_at_99": share,
            "prediction_vs_outcome_correlation": corr,
        }
        log(f"  unseen {UNSEEN_MODEL} with {frac:.0%} labels: area {res['area']:.3f}, corr {corr:.3f}")
    return out


def choose(policy: str, pred: Any, cost: Any, knob: float, hopeless: float) -> Any:
    from firewall_routing.routers.policies import choose as pick

    return pick(policy, pred, cost, knob, hopeless)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output


def fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.1%}"


def num(x: float | None) -> str:
    return "  n/a " if x is None or x != x else f"{x:+.3f}"


def table_rows(result: dict[str, Any]) -> list[str]:
    lines = []
    for test_name, res in result["tests"].items():
        ref = res["reference"]
        lines.append(
            f"\n{test_name}: {ref['rows']} test rows; best single {ref['best']} ({ref['single'][ref['best']]['accuracy']:.3f}), cheapest {ref['cheapest']}"
        )
        lines.append(
            f"  oracle: accuracy {ref['oracle']['accuracy']:.3f} at {ref['oracle']['cost_fraction']:.1%} of the best model's cost; random: {ref['random']['accuracy']:.3f}"
        )
        h = ref["hull_cost_fraction_at"]
        lines.append(
            f"  hull: cost at 95/99/100 % of best = {h['0.95']:.1%} / {h['0.99']:.1%} / {h['1']:.1%}"
        )
        lines.append(
            "  router   policy(β)   area [95% CI]             gain@best cost [95% CI]    curve cost@95/99/100%       train-chosen knob @99%: cost, quality  CI excl. hull mid"
        )
        for r, v in res["routers"].items():
            cf = v["cost_fraction_at"]
            k99 = v["at_train_chosen_knob"].get("0.99")
            k = f"{k99['cost_fraction']:.1%}, {k99['quality_fraction']:.1%}" if k99 else "not reached"
            lines.append(
                f"  {r:8s} {v['policy'][:4]}({v['hopeless']:.2f})  {num(v['area'])} [{num(v['area_ci'][0])}, {num(v['area_ci'][1])}]  "
                f"{num(v['gain'])} [{num(v['gain_ci'][0])}, {num(v['gain_ci'][1])}]   "
                f"{fmt(cf['0.95'])} / {fmt(cf['0.99'])} / {fmt(cf['1'])}      {k:30s}  {v['excludes_hull_middle']}"
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/nmodel.md, from the JSON (``--render``)."""
    out = ["<!-- written by benchmarks/nmodel.py --render from benchmarks/results/nmodel.json -->"]
    for name in ("mmlu-pro", "routerdc"):
        if name not in results:
            continue
        res = results[name]
        out.append(f"\n### {name} (costs: {res['costs']}; {res['train_rows']} training rows)\n")
        for test_name, t in res["tests"].items():
            ref = t["reference"]
            best = ref["single"][ref["best"]]
            h = ref["hull_cost_fraction_at"]
            out.append(
                f"**{test_name}**: {ref['rows']} test rows. Best single model {ref['best']} "
                f"(accuracy {best['accuracy']:.3f}, cost {best['cost']:g}); cheapest {ref['cheapest']}. "
                f"Oracle (cheapest correct model): {ref['oracle']['accuracy']:.3f} at "
                f"{ref['oracle']['cost_fraction']:.1%} of the best model's cost; random model per query: "
                f"{ref['random']['accuracy']:.3f}. Hull of single models: cost at 95/99/100 % of the best "
                f"model's accuracy = {fmt(h['0.95'])} / {fmt(h['0.99'])} / {fmt(h['1'])} of its cost.\n"
            )
            out.append(
                "| router | policy (β) | area over hull [95 % CI] | gain at best cost [95 % CI] "
                "| curve: cost at 95 / 99 / 100 % | knob chosen on train, @99 %: cost, accuracy (share of best) "
                "| CI above hull over the middle |"
            )
            out.append("|---|---|---|---|---|---|---|")
            for r, v in t["routers"].items():
                cf = v["cost_fraction_at"]
                k99 = v["at_train_chosen_knob"].get("0.99")
                k = (
                    f"{k99['cost_fraction']:.1%}, {k99['accuracy']:.3f} ({k99['quality_fraction']:.1%})"
                    if k99
                    else "not reached on train"
                )
                opts = ", ".join(f"{a}={b}" for a, b in v.get("options", {}).items())
                out.append(
                    f"| {r}{f' ({opts})' if opts else ''} | {v['policy']} ({v['hopeless']:g}) "
                    f"| {num(v['area'])} [{num(v['area_ci'][0])}, {num(v['area_ci'][1])}] "
                    f"| {num(v['gain'])} [{num(v['gain_ci'][0])}, {num(v['gain_ci'][1])}] "
                    f"| {fmt(cf['0.95'])} / {fmt(cf['0.99'])} / {fmt(cf['1'])} | {k} "
                    f"| {'yes' if v['excludes_hull_middle'] else 'no'} |"
                )
            if t.get("ridge_minus_knn_area", {}).get("mean") is not None:
                d = t["ridge_minus_knn_area"]
                out.append(
                    f"\nridge − knn area: {d['mean']:+.4f} [95 % CI {d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] (paired bootstrap)\n"
                )
        if "unseen_model" in res:
            u = res["unseen_model"]
            out.append(
                f"\n**A model with few labels** ({u['router']}; {u['model']}'s training labels kept on a fraction of the rows):\n"
            )
            out.append(
                "| labelled share | rows | area [95 % CI] | curve cost at 99 % | corr(prediction, outcome) | share routed to it at the 99 % knob |"
            )
            out.append("|---|---|---|---|---|---|")
            for f, v in u["fractions"].items():
                out.append(
                    f"| {float(f):.0%} | {v['labelled_rows']} | {num(v['area'])} [{num(v['area_ci'][0])}, {num(v['area_ci'][1])}] "
                    f"| {fmt(v['cost_fraction_at']['0.99'])} | {v['prediction_vs_outcome_correlation']:.3f} "
                    f"| {v['share_routed_to_model_at_99']:.1%} |"
                )
    m = results.get("machine", {})
    out.append(
        f"\nMachine: load average {m.get('load_average')}, {m.get('seconds', 0):.0f} s, {m.get('draws')} bootstrap draws."
    )
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], test_name: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = result["tests"][test_name]
    ref = res["reference"]
    top = ref["single"][ref["best"]]["cost"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [v["cost"] / top for v in ref["single"].values()]
    ys = [v["accuracy"] for v in ref["single"].values()]
    ax.scatter(xs, ys, c="grey", s=18, label="single models", zorder=3)
    for n, v in ref["single"].items():
        if v["accuracy"] >= sorted(ys)[-4] or v["cost"] == min(u["cost"] for u in ref["single"].values()):
            ax.annotate(
                n, (v["cost"] / top, v["accuracy"]), fontsize=7, xytext=(3, -8), textcoords="offset points"
            )
    hc = np.array(ref["hull"]["cost"]) / top
    ax.plot(
        np.append(hc, 1.05 * max(1.0, hc.max())),
        np.append(ref["hull"]["accuracy"], ref["hull"]["accuracy"][-1]),
        "k--",
        lw=1.2,
        label="hull of single models (random mixes)",
    )
    colours = {"ridge": "tab:red", "knn": "tab:blue", "mf": "tab:green"}
    from firewall_routing.metrics.nmodel import frontier

    for r, v in res["routers"].items():
        fr = frontier(np.array(v["points"]["cost"]), np.array(v["points"]["accuracy"]))
        label = f"{r} ({v['policy']}" + (f", area {v['area']:+.3f})" if v["area"] is not None else ")")
        ax.plot(
            np.append(fr.cost / top, 1.05),
            np.append(fr.quality, fr.quality[-1]),
            color=colours.get(r),
            lw=1.8,
            label=label,
        )
    ax.scatter(
        [ref["oracle"]["cost"] / top],
        [ref["oracle"]["accuracy"]],
        marker="*",
        s=160,
        c="gold",
        edgecolors="k",
        label="oracle (cheapest correct model)",
        zorder=4,
    )
    ax.scatter(
        [ref["random"]["cost"] / top],
        [ref["random"]["accuracy"]],
        marker="x",
        s=50,
        c="k",
        label="random model per query",
        zorder=4,
    )
    best_q = ref["single"][ref["best"]]["accuracy"]
    ax.axhline(0.99 * best_q, color="grey", lw=0.6, ls=":")
    ax.text(0.0, 0.99 * best_q, " 99 % of the best model", fontsize=7, va="bottom", color="grey")
    ax.set_xlim(0, 1.05)
    ax.set_xlabel(f"mean cost per query (fraction of {ref['best']}'s)")
    ax.set_ylabel("accuracy on the test questions")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["mmlu-pro", "routerdc"], default=None)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--routers", default="ridge,knn,mf")
    ap.add_argument("--no-unseen", action="store_true", help="skip item 5 (a model with few labels)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--render", action="store_true", help="only redraw the plots and tables from --out")
    args = ap.parse_args()
    if args.render:
        render(json.loads(args.out.read_text()))
        return 0
    import torch

    torch.set_num_threads(1)
    started = time.time()
    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())  # one data set at a time keeps the other's
    routers = args.routers.split(",")
    for name, loader in (("mmlu-pro", load_mmlu_pro), ("routerdc", load_routerdc)):
        if args.only not in (None, name):
            continue
        log(f"{name}: loading")
        split = loader()
        res = run_split(split, routers, args.draws, log)
        if name == "mmlu-pro" and not args.no_unseen:
            res["unseen_model"] = unseen_model(split, min(args.draws, 300), log)
        results[name] = res
        print("\n".join([f"== {name} (costs: {res['costs']})", *table_rows(res)]))
        if name == "mmlu-pro":
            plot(
                res,
                "mmlu-pro",
                PLOT,
                f"MMLU-Pro, 23 models, {res['tests']['mmlu-pro']['reference']['rows']} held-out questions (benchmarks/nmodel.py)",
            )
        else:
            plot(
                res,
                "gsm8k (in)",
                ROOT / "docs" / "nmodel-routerdc-gsm8k.png",
                "RouterDC's 7 models, GSM8K test (benchmarks/nmodel.py)",
            )
    results["machine"] = {
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "seconds": time.time() - started,
        "draws": args.draws,
        "seed": SEED,
        "folds": FOLDS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out}")
    render(results)
    return 0


def render(results: dict[str, Any]) -> None:
    """Plots into docs/ and the Markdown tables beside the JSON."""
    if "mmlu-pro" in results:
        res = results["mmlu-pro"]
        rows = res["tests"]["mmlu-pro"]["reference"]["rows"]
        plot(res, "mmlu-pro", PLOT, f"MMLU-Pro, 23 models, {rows} held-out questions (benchmarks/nmodel.py)")
    if "routerdc" in results:
        plot(
            results["routerdc"],
            "gsm8k (in)",
            ROOT / "docs" / "nmodel-routerdc-gsm8k.png",
            "RouterDC's 7 models, GSM8K test (benchmarks/nmodel.py)",
        )
    RESULTS.with_suffix(".md").write_text(markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
