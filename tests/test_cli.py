"""The command line as a user meets it: help, exit codes, one-line errors, real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA

W, S = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _commands() -> list[str]:
    from firewall_routing.cli import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    return [n.replace("_", "-") for n in names]


def test_help_everywhere_and_lazy_imports() -> None:
    top = run("--help")
    assert top.returncode == 0 and "reproduce" in top.stdout
    for cmd in _commands():
        r = run(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert "Usage" in r.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, firewall_routing.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'fastapi') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "[]"


def _assert_clean_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_malformed_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "a", "weak_pass_rate": 0.5, "strong_pass_rate": 0.5}\n'
        '{"prompt": "b", "weak_pass_rate": 1.5, "strong_pass_rate": 0.5}\n'
    )
    _assert_clean_error(
        run("labels", str(bad), "--out", str(tmp_path / "l.jsonl")),
        f"{bad}:2",
        "weak_pass_rate",
        "outside [0, 1]",
    )


def test_empty_file_and_bad_json(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    _assert_clean_error(run("evaluate", "random", str(empty)), str(empty), "empty")
    broken = tmp_path / "b.json"
    broken.write_text("[{")
    _assert_clean_error(run("labels", str(broken), "--weak", W, "--strong", S), "invalid JSON")


def test_unknown_model_lists_available() -> None:
    f = DATA / "routerdc" / "mbpp.json"
    _assert_clean_error(
        run("labels", str(f), "--weak", "no/such", "--strong", S),
        "unknown model 'no/such'",
        "mistralai/Mistral-7B-v0.1",
    )


def test_unknown_design_and_router(tmp_path: Path) -> None:
    f = DATA / "routellm" / "gsm8k_responses.csv"
    _assert_clean_error(run("labels", str(f), "--design", "nope"), "unknown label design")
    _assert_clean_error(run("evaluate", str(tmp_path), str(f)), "not a saved router")


def test_labels_writes_every_row_and_reports_approximation(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    r = run(
        "labels",
        str(DATA / "routerdc" / "humaneval_test.json"),
        "--weak",
        W,
        "--strong",
        S,
        "--design",
        "hard",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 49 and {"id", "prompt", "label"} <= rows[0].keys()
    assert all(x["label"] in (0.0, 1.0) for x in rows)
    assert "approximation" in r.stderr and "majority" in r.stderr


def test_evaluate_oracle_and_random_on_routellm() -> None:
    f = str(DATA / "routellm" / "gsm8k_responses.csv")
    o = run("evaluate", "oracle", f, "--bootstrap", "200")
    assert o.returncode == 0, o.stderr
    assert "APGR (11-point)" in o.stdout and "both-fail" in o.stdout
    rnd = run("evaluate", "random", f, "--bootstrap", "0")
    assert rnd.returncode == 0
    apgr = lambda out: float(next(x for x in out.splitlines() if "APGR (11-point)" in x).split()[2])  # noqa: E731
    assert apgr(o.stdout) > apgr(rnd.stdout)


def test_train_then_evaluate_generic_file(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        rows.append(
            {
                "prompt": f"{'Prove the theorem' if hard else 'Add the numbers'} {i}",
                "weak_pass_rate": 0.1 if hard else 0.9,
                "strong_pass_rate": 0.9,
            }
        )
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("train", str(f), "--out", str(tmp_path / "router"), "--design", "soft-block")
    assert r.returncode == 0, r.stderr
    e = run("evaluate", str(tmp_path / "router"), str(f), "--json", str(tmp_path / "m.json"))
    assert e.returncode == 0, e.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["metrics"]["apgr"] > 60  # the two prompt kinds are easy to tell apart


def test_reproduce_small_run(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = run(
        "reproduce",
        "--out",
        str(out),
        "--datasets",
        "humaneval",
        "--designs",
        "soft-block,hard",
        "--seeds",
        "1",
        "--bootstrap",
        "100",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wall time:" in r.stdout
    res = json.loads((out / "results.json").read_text())
    names = {(x["router"], x["pair"]) for x in res["results"]}
    assert ("soft-block", "main") in names and ("oracle", "gen") in names
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report and "majority" in report
    for png in ("deferral-main.png", "bins-main-humaneval.png", "bins-gen-humaneval.png"):
        assert (out / "plots" / png).stat().st_size > 10_000
    assert (out / "routers" / "soft-block" / "router.json").exists()


@pytest.mark.parametrize("args", [["--datasets", "nope"], ["--designs", "nope"]])
def test_reproduce_bad_options(tmp_path: Path, args: list[str]) -> None:
    r = run("reproduce", "--out", str(tmp_path / "x"), *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_train_router_options(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "weak_pass_rate": (i % 3) / 2, "strong_pass_rate": 1.0} for i in range(20)]
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok = run("train", str(f), "--out", str(tmp_path / "r"), "--router-options", '{"epochs": 2, "hidden": 0}')
    assert ok.returncode == 0, ok.stderr
    cfg = json.loads((tmp_path / "r" / "router.json").read_text())["config"]
    assert cfg["epochs"] == 2 and cfg["hidden"] == 0
    _assert_clean_error(
        run("train", str(f), "--out", str(tmp_path / "x"), "--router-options", '{"epoch": 2}'),
        "epoch: unknown option",
        "valid options:",
        "epochs",
    )
    _assert_clean_error(
        run("train", str(f), "--out", str(tmp_path / "x"), "--router-options", "{bad"),
        "not valid JSON",
    )
