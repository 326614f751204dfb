"""The command line on real-valued quality: generic quality files and MixInstruct (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import run


def _quality_file(tmp_path: Path) -> Path:
    """Weak worse everywhere, by 0.3 on "hard" prompts and 0.1 on "easy" ones: r_prob is 0
    everywhere; y(t) is [0, 1, 0, 1, …] for 0.1 ≤ t < 0.3 (the largest spread: two equal
    groups), constant elsewhere, so t* is the grid point of [0.1, 0.3) nearest 0."""
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        gap = 0.3 if hard else 0.1
        w = [0.5, 0.5, 0.5]
        rows.append(
            {
                "prompt": f"{'Prove the theorem' if hard else 'Add the numbers'} {i}",
                "weak_quality": w,
                "strong_quality": [x + gap for x in w],
                "weak_greedy_quality": 0.5,
                "strong_greedy_quality": 0.5 + gap,
            }
        )
    f = tmp_path / "q.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def _labels(path: Path) -> list[float]:
    return [json.loads(line)["label"] for line in path.read_text().splitlines()]


def test_labels_hybrid_trans_on_quality_differs_from_soft_block(tmp_path: Path) -> None:
    f = _quality_file(tmp_path)
    trans = run("labels", str(f), "--design", "hybrid-trans", "--out", str(tmp_path / "t.jsonl"))
    assert trans.returncode == 0, trans.stderr
    assert "t* = " in trans.stdout
    t_star = float(trans.stdout.split("t* = ")[1].split()[0])
    assert 0.1 <= t_star < 0.3
    soft = run("labels", str(f), "--design", "soft-block", "--out", str(tmp_path / "s.jsonl"))
    assert soft.returncode == 0, soft.stderr
    assert "pass rate from quality ≥ 0.5" in soft.stderr  # which pass rate was used is said
    assert _labels(tmp_path / "t.jsonl") != _labels(tmp_path / "s.jsonl")
    # hard prompts (even rows) get 0, easy ones 1: the relaxation separates the two gaps
    assert _labels(tmp_path / "t.jsonl") == [0.0, 1.0] * 20


def test_train_and_evaluate_hybrid_design_on_quality(tmp_path: Path) -> None:
    f = _quality_file(tmp_path)
    r = run("train", str(f), "--out", str(tmp_path / "router"), "--design", "hybrid-trans")
    assert r.returncode == 0, r.stderr
    assert "t* = " in r.stdout
    meta = json.loads((tmp_path / "router" / "router.json").read_text())
    assert "hybrid-trans" in json.dumps(meta)
    e = run("evaluate", str(tmp_path / "router"), str(f), "--bootstrap", "0", "--quality-threshold", "0.6")
    assert e.returncode == 0, e.stderr
    assert "Hybrid LLM metric on real-valued quality" in e.stdout
    assert "quality ≥ 0.6" in e.stderr


def test_mixinstruct_one_command(tmp_path: Path) -> None:
    items = [
        {
            "id": f"m{i}",
            "instruction": "Answer.",
            "input": f"{'Explain quantum field theory' if i % 2 else 'Say hi'} {i}",
            "output": "",
            "candidates": [
                {
                    "model": "small",
                    "decoding_method": "top_p_sampling",
                    "scores": {"bartscore": -4.0 if i % 2 else -2.0},
                },
                {"model": "large", "decoding_method": "top_p_sampling", "scores": {"bartscore": -2.5}},
            ],
        }
        for i in range(30)
    ]
    f = tmp_path / "mix.json"
    f.write_text(json.dumps(items))
    base = ["--format", "mixinstruct", "--weak", "small", "--strong", "large", "--metric", "bartscore"]
    r = run("labels", str(f), "--design", "hybrid-prob", "--out", str(tmp_path / "l.jsonl"), *base)
    assert r.returncode == 0, r.stderr
    assert _labels(tmp_path / "l.jsonl")[:2] == [1.0, 0.0]
    bad = run("labels", str(f), "--out", str(tmp_path / "x.jsonl"), *base[:-1], "rougeL")
    assert bad.returncode == 2 and "no score 'rougeL'" in bad.stderr and "Traceback" not in bad.stderr
    # Hybrid LLM's experiment in one command: train on the first 20, test on the last 10
    md = tmp_path / "hybrid.md"
    e = run(
        "hybrid-llm",
        str(f),
        *base,
        "--test-last",
        "10",
        "--bootstrap",
        "50",
        "--baselines",
        "random,oracle",
        "--quality-threshold",
        "-3",
        "--report",
        str(md),
    )
    assert e.returncode == 0, e.stderr
    text = md.read_text()
    for row in (
        "Hybrid LLM r_det",
        "Hybrid LLM r_prob",
        "Hybrid LLM r_trans",
        "Soft Block",
        "random",
        "oracle",
    ):
        assert f"| {row}" in text
    assert "trained on 20 queries, evaluated on 10" in text and "quality drop" in text and "t* = " in text
