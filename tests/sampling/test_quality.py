"""Token-F1 quality, stop sequences, grader override and the quality columns of `sample`."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import load_generic
from firewall_routing.sampling.client import SamplingParams
from firewall_routing.sampling.graders import grade, quality_triviaqa_f1, token_f1
from firewall_routing.sampling.run import (
    build_quality,
    build_table,
    load_items,
    make_config,
    sample_run,
    write_table,
)
from firewall_routing.sampling.store import SampleStore

UPSTREAMS = {
    "weak": {"base_url": "http://weak.test/v1", "model": "w"},
    "strong": {"base_url": "http://strong.test/v1", "model": "s"},
}


@pytest.mark.parametrize(
    ("prediction", "reference", "f1"),
    [
        ("David Seville", "David Seville", 1.0),
        ("Seville", "David Seville", 2 * (1 * 0.5) / 1.5),  # P = 1, R = 1/2 -> 2/3
        ("David Seville Jr", "Seville", 2 * (1 / 3) / (4 / 3)),  # P = 1/3, R = 1 -> 1/2
        ("The Beatles!", "beatles", 1.0),  # normalized: articles and punctuation go
        ("x y y", "y y z", 2 / 3),  # shared tokens count with multiplicity: P = R = 2/3
        ("Paris", "London", 0.0),
        ("", "London", 0.0),
        ("the", "The", 0.0),  # nothing left after normalization
    ],
)
def test_token_f1_hand_computed(prediction: str, reference: str, f1: float) -> None:
    assert token_f1(prediction, reference) == pytest.approx(f1)


def test_f1_quality_grades_the_same_text_as_exact_match() -> None:
    completion = " Campbell Bannerman\nQuestion: Who came next?\nAnswer: Asquith"
    assert grade("triviaqa-em", completion, "Campbell-Bannerman")
    assert quality_triviaqa_f1(completion, "Campbell-Bannerman") == 1.0  # the invented follow-up is cut
    assert quality_triviaqa_f1(" Henry Campbell-Bannerman", "Campbell-Bannerman") == pytest.approx(0.8)


def test_stop_is_sent_and_keyed_only_when_set() -> None:
    plain = SamplingParams(0.7, 1.0, 16, "completion")
    stopped = SamplingParams(0.7, 1.0, 16, "completion", stop=("\n",))
    assert "stop" not in plain.key() and "stop" not in plain.body("m", "p", 1)  # old stores still match
    assert stopped.key()["stop"] == ["\n"] and stopped.body("m", "p", 1)["stop"] == ["\n"]
    assert stopped.greedy().stop == ("\n",)


def _trivia_bench(tmp_path: Path) -> Path:
    path = tmp_path / "trivia.jsonl"
    rows = [
        {"id": "t0", "question": "Chipmunks?", "prompt": "shots\nQ: Chipmunks?\nA:", "grader": "triviaqa-contains",
         "reference": "David Seville"},
        {"id": "t1", "question": "Star sign?", "prompt": "shots\nQ: Star sign?\nA:", "grader": "triviaqa-contains",
         "reference": "Scorpio"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _fake_completions(request: httpx.Request) -> httpx.Response:
    """Strong answers exactly; weak says 'Seville' / a sentence containing the answer."""
    body = json.loads(request.content)
    assert body["stop"] == ["\n"] and "prompt" in body
    chipmunks = "Chipmunks" in body["prompt"]
    if request.url.host == "strong.test":
        text = " David Seville" if chipmunks else " Scorpio"
    else:
        text = " Seville" if chipmunks else " She is a Scorpio"
    return httpx.Response(200, json={"choices": [{"text": text, "index": i} for i in range(body["n"])]})


def test_sample_writes_quality_columns_and_rebuilds_them_from_the_store(tmp_path: Path) -> None:
    cfg = make_config(
        {
            **UPSTREAMS,
            "dataset": str(_trivia_bench(tmp_path)),
            "n": 2,
            "template": "completion",
            "stop": ["\n"],
            "grader": "triviaqa-em",
            "table_prompt": "question",
            "store": tmp_path / "s.sqlite",
        },
        {},
    )
    items = load_items(cfg)
    assert {it.grader for it in items} == {"triviaqa-em"}
    with SampleStore(cfg.store) as st:
        results, _ = asyncio.run(
            sample_run(
                cfg,
                items,
                st,
                progress=False,
                sampler_kwargs={"transport": httpx.MockTransport(_fake_completions)},
            )
        )
        # a rerun with the same store sends nothing (offline) and grades the same completions again
        again, stats = asyncio.run(sample_run(cfg, items, st, progress=False, offline=True))
    assert stats.requests == 0
    for res in (results, again):
        out = tmp_path / "t.jsonl"
        write_table(build_table(res, "w", "s", table_prompt="question"), build_quality(res), out)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["prompt"] for r in rows] == ["Chipmunks?", "Star sign?"]
        # exact match: weak wrong on both ("Seville", a sentence), strong right on both
        assert [r["weak_samples"] for r in rows] == [[0, 0], [0, 0]]
        assert [r["strong_samples"] for r in rows] == [[1, 1], [1, 1]]
        # F1: "Seville" vs "David Seville" = 2/3; "She is a Scorpio" vs "Scorpio": P = 1/3, R = 1 -> 1/2
        assert rows[0]["weak_quality"] == pytest.approx([2 / 3, 2 / 3])
        assert rows[1]["weak_greedy_quality"] == pytest.approx(0.5)
        assert [r["strong_quality"] for r in rows] == [[1.0, 1.0], [1.0, 1.0]]
        assert [r["strong_greedy_quality"] for r in rows] == [1.0, 1.0]
        loaded = load_generic(out)  # the extra columns do not stop the table from loading
        np.testing.assert_array_equal(loaded.strong.pass_rate, [1, 1])
    csv_out = tmp_path / "t.csv"
    write_table(build_table(again, "w", "s"), build_quality(again), csv_out)
    with csv_out.open(newline="") as f:
        first = next(csv.DictReader(f))
    assert [float(x) for x in first["weak_quality"].split(";")] == pytest.approx([2 / 3, 2 / 3])
    assert float(first["strong_greedy_quality"]) == 1.0


def test_no_quality_columns_for_graders_without_a_quality(tmp_path: Path) -> None:
    from ..conftest import write_gsm8k_bench

    cfg = make_config({**UPSTREAMS, "dataset": str(write_gsm8k_bench(tmp_path)), "n": 1}, {})

    class R:  # build_quality looks only at each result's item
        def __init__(self, item: Any) -> None:
            self.item = item

    assert build_quality([R(it) for it in load_items(cfg)]) is None  # type: ignore[arg-type,misc]


def test_unknown_grader_override_is_an_input_error(tmp_path: Path) -> None:
    cfg = make_config({**UPSTREAMS, "dataset": str(_trivia_bench(tmp_path)), "grader": "triviaqa-f2"}, {})
    with pytest.raises(InputError, match="unknown grader 'triviaqa-f2'"):
        load_items(cfg)
