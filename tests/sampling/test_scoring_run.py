"""``sample`` with a scorer: one path from samples to outcomes, cached verdicts, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from firewall_routing.errors import InputError
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
from firewall_routing.sampling.scorers.judge import JudgeScorer
from firewall_routing.sampling.store import SampleStore

from ..conftest import write_gsm8k_bench
from .test_e2e_sample import UPSTREAMS, _fake_model


def _sampled(tmp_path: Path, **cfg: Any) -> tuple[Any, list[Any]]:
    c = make_config(
        {
            **UPSTREAMS,
            "dataset": str(write_gsm8k_bench(tmp_path)),
            "n": 2,
            "store": tmp_path / "s.sqlite",
            **cfg,
        },
        {},
    )
    with SampleStore(c.store) as st:
        results, _ = asyncio.run(
            sample_run(
                c,
                load_items(c),
                st,
                progress=False,
                sampler_kwargs={"transport": httpx.MockTransport(_fake_model)},
            )
        )
    return c, results


def _judge(handler: Any, **opts: Any) -> JudgeScorer:
    j = make_scorer("judge", {"model": "j", "base_url": "http://judge.test/v1", **opts})
    assert isinstance(j, JudgeScorer)
    j._transport = httpx.MockTransport(handler)
    j._retry_delay = 0.0
    return j


def _answer(req: httpx.Request) -> str:
    return str(json.loads(req.content)["messages"][1]["content"]).split("Assistant's Answer]\n")[1]


def test_exact_scorer_path_is_the_old_grading(tmp_path: Path) -> None:
    _, results = _sampled(tmp_path)
    table = build_table(results, "w", "s")  # default: the exact graders
    np.testing.assert_array_equal(table.strong.pass_rate, [1, 1, 1])
    np.testing.assert_array_equal(table.weak.pass_rate, [0, 0, 0])
    assert build_quality(results) is None  # GSM8K has no real-valued quality


def test_judge_scores_become_quality_columns_and_are_never_paid_twice(tmp_path: Path) -> None:
    cfg, results = _sampled(tmp_path)
    calls = {"n": 0}

    def judge(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        text = "[[9]]" if "answer is" in _answer(req) else "[[2]]"
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": text}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 3},
            },
        )

    with SampleStore(cfg.store) as st:
        scored = score_results(results, _judge(judge), st)
    # 3 items x 2 models x (2 samples + greedy) = 18 completions, but the fake weak model
    # always says "No idea." and the strong one the same per item: 2 distinct (prompt,
    # answer) pairs per item, each judged once
    assert calls["n"] == 6 and scored.stats.calls == 6 and scored.stats.jobs == 18
    table = build_table(results, "w", "s", scored=scored)
    out = tmp_path / "t.jsonl"
    write_table(table, build_quality(results, scored), out)
    loaded = load_generic(out)
    assert loaded.weak.quality is not None and loaded.strong.quality is not None
    np.testing.assert_allclose([q.mean() for q in loaded.strong.quality], [8 / 9] * 3)
    np.testing.assert_allclose([q.mean() for q in loaded.weak.quality], [1 / 9] * 3)
    np.testing.assert_array_equal(loaded.strong.pass_rate, [1, 1, 1])  # 8/9 ≥ 0.5
    with SampleStore(cfg.store) as st:
        again = score_results(results, _judge(judge), st)
    assert calls["n"] == 6 and again.stats.cached == 18


def test_missing_verdicts_are_left_out_never_zero(tmp_path: Path) -> None:
    _, results = _sampled(tmp_path)

    def judge(req: httpx.Request) -> httpx.Response:  # cannot judge the weak model's text
        text = "[[7]]" if "answer is" in _answer(req) else "hmm"
        return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})

    scored = score_results(results, _judge(judge, max_attempts=1))
    assert scored.stats.missing == 9  # the weak side's 9 completions (3 items x (2 + greedy))
    with pytest.raises(InputError, match="no item has all its samples"):
        build_table(results, "w", "s", scored=scored)


def test_missing_reference_names_the_item(tmp_path: Path) -> None:
    bench = tmp_path / "open.jsonl"
    bench.write_text(json.dumps({"prompt": "Write a haiku.", "id": "h1"}) + "\n")
    cfg = make_config({**UPSTREAMS, "dataset": str(bench), "scorer": "reference"}, {})
    with pytest.raises(InputError, match=r"item 'h1'.*reference"):
        load_items(cfg)
    ok = make_config(
        {
            **UPSTREAMS,
            "dataset": str(bench),
            "scorer": "judge",
            "scorer_options": {"model": "m", "base_url": "http://j/v1"},
        },
        {},
    )
    assert [it.id for it in load_items(ok)] == ["h1"]  # a pointwise judge needs no answer key
    with pytest.raises(InputError, match="no grader"):
        load_items(make_config({**UPSTREAMS, "dataset": str(bench)}, {}))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--scorer", "jugde"], "unknown scorer 'jugde'"),
        (["--scorer", "judge", "--scorer-options", "{bad"], "--scorer-options is not valid JSON"),
        (["--scorer", "reference", "--scorer-options", '{"method": "bleu"}'], "scorer_options.method"),
    ],
)
def test_bad_scorer_is_one_line_exit_2(tmp_path: Path, extra: list[str], needle: str) -> None:
    r = _cli(
        "sample",
        "--weak-url",
        "http://127.0.0.1:9/v1",
        "--weak-model",
        "w",
        "--strong-url",
        "http://127.0.0.1:9/v1",
        "--strong-model",
        "s",
        "--dataset",
        str(write_gsm8k_bench(tmp_path)),
        "--store",
        str(tmp_path / "s.sqlite"),
        *extra,
    )
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_scorers_command_lists_them() -> None:
    r = _cli("scorers", "judge")
    assert r.returncode == 0 and r.stdout.startswith("judge (calls_model)") and "pairwise" in r.stdout
