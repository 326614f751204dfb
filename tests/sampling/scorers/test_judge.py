"""The judge scorer against a fake OpenAI-compatible judge (httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers import ScoreJob, make_scorer
from firewall_routing.sampling.scorers.cache import score_cached
from firewall_routing.sampling.scorers.judge import JudgeScorer, parse_rating, parse_verdict
from firewall_routing.sampling.store import SampleStore

Handler = Callable[[httpx.Request], httpx.Response]


def reply(text: str, tin: int = 10, tout: int = 2) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout},
        },
    )


def judge(handler: Handler, **opts: object) -> JudgeScorer:
    j = make_scorer("judge", {"model": "judge-m", "base_url": "http://judge.test/v1", **opts})
    assert isinstance(j, JudgeScorer)
    j._transport = httpx.MockTransport(handler)
    j._retry_delay = 0.0
    return j


def user_text(request: httpx.Request) -> str:
    return str(json.loads(request.content)["messages"][1]["content"])


def jobs(*answers: str, ref: str | None = "REF") -> list[ScoreJob]:
    return [ScoreJob(f"q{i}", "What is 2+2?", a, ref) for i, a in enumerate(answers)]


def test_parsers_are_strict() -> None:
    assert parse_rating("[[7]]") == 7 and parse_rating("Rating: [[10]]") == 10 and parse_rating(" 3 ") == 3
    assert (
        parse_rating("[[7]] or [[8]]") is None
        and parse_rating("seven") is None
        and parse_rating("[[11]]") is None
    )
    assert parse_rating("I give it 7 because 2+2=4") is None
    assert parse_rating("[5]") == 5 and parse_verdict("[B]") == "B"  # what Qwen2.5-0.5B writes
    assert parse_rating("[5] but maybe [6]") is None
    assert parse_verdict("[[A]]") == "A" and parse_verdict("B") == "B" and parse_verdict("[[C]]") == "C"
    assert parse_verdict("[[A]] no, [[B]]") is None and parse_verdict("A is better") is None


def test_pointwise_rating_maps_to_unit_interval_and_counts_tokens() -> None:
    def h(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        assert body["temperature"] == 0.0 and body["model"] == "judge-m"
        return reply("[[10]]" if "GOOD" in user_text(req) else "[[1]]")

    scores = judge(h).score_many(jobs("GOOD answer", "bad answer"))
    assert [s.quality for s in scores] == [1.0, 0.0]
    assert [s.passed for s in scores] == [True, False]
    assert all((s.tokens_in, s.tokens_out, s.calls) == (10, 2, 1) for s in scores)


def test_pairwise_asks_both_orders_and_cancels_position_bias() -> None:
    seen: list[str] = []

    def always_a(req: httpx.Request) -> httpx.Response:
        seen.append(user_text(req))
        return reply("[[A]]")

    (s,) = judge(always_a, mode="pairwise").score_many(jobs("mine"))
    assert s.quality == 0.5 and s.calls == 2  # A in both orders: one win, one loss
    a_first = [re.search(r"Assistant A's Answer\]\n(.*?)\n", t).group(1) for t in seen]  # type: ignore[union-attr]
    assert sorted(a_first) == ["REF", "mine"]

    def content(req: httpx.Request) -> httpx.Response:  # prefers GOOD wherever it stands
        t = user_text(req)
        a = t.split("Assistant A's Answer]")[1].split("[The End")[0]
        b = t.split("Assistant B's Answer]")[1].split("[The End")[0]
        return reply("[[C]]" if ("GOOD" in a) == ("GOOD" in b) else "[[A]]" if "GOOD" in a else "[[B]]")

    j = judge(content, mode="pairwise")
    assert [s.quality for s in j.score_many(jobs("GOOD", "meh", ref="okay"))] == [1.0, 0.5]  # win, tie
    assert [s.quality for s in j.score_many(jobs("meh", ref="GOOD"))] == [0.0]  # loses in both orders


def test_unparseable_is_retried_with_a_reminder_then_missing_never_zero() -> None:
    calls: list[int] = []

    def garbage(req: httpx.Request) -> httpx.Response:
        calls.append(len(json.loads(req.content)["messages"]))
        return reply("I think it is pretty good!")

    (s,) = judge(garbage, max_attempts=3).score_many(jobs("x"))
    assert s.quality is None and s.passed is None and s.final and s.calls == 3
    assert calls == [2, 4, 4]  # the retries carry the bad reply and a reminder

    answers = iter(["no idea", "[[6]]"])
    (s,) = judge(lambda r: reply(next(answers))).score_many(jobs("x"))
    assert s.quality == pytest.approx(5 / 9) and s.calls == 2


def test_upstream_errors_are_retried_and_a_dead_upstream_is_not_final() -> None:
    state = {"n": 0}

    def flaky(req: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            raise httpx.ConnectError("refused")
        if state["n"] == 2:
            return httpx.Response(503, text="busy")
        if state["n"] == 3:
            return httpx.Response(200, text="<html>not json</html>")
        return reply("[[9]]")

    (s,) = judge(flaky, upstream_attempts=4).score_many(jobs("x"))
    assert s.quality == pytest.approx(8 / 9) and state["n"] == 4

    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    (s,) = judge(down, upstream_attempts=2).score_many(jobs("x"))
    assert s.quality is None and not s.final


def test_client_error_is_one_line() -> None:
    with pytest.raises(InputError, match="HTTP 404"):
        judge(lambda r: httpx.Response(404, json={"error": "no such model"})).score_many(jobs("x"))


def test_cache_hits_cost_nothing_and_dead_upstream_is_retried_next_run(tmp_path: Path) -> None:
    n = {"calls": 0}

    def h(req: httpx.Request) -> httpx.Response:
        n["calls"] += 1
        pairwise = "two AI assistants" in json.loads(req.content)["messages"][0]["content"]
        return reply("[[A]]" if pairwise else "[[5]]", tin=100, tout=3)

    js = jobs("a", "b", "a")  # "a" twice: paid once
    with SampleStore(tmp_path / "s.sqlite") as st:
        j = judge(h, input_per_1m=1.0, output_per_1m=2.0)
        scores, stats = score_cached(j, js, st, progress=False)
        assert n["calls"] == 2 and stats.calls == 2 and stats.cached == 0
        assert stats.cost == pytest.approx((200 * 1.0 + 6 * 2.0) / 1e6)
        assert [s.quality for s in scores] == [pytest.approx(4 / 9)] * 3
    with SampleStore(tmp_path / "s.sqlite") as st:  # reopened: the verdicts are on disk
        again, stats2 = score_cached(judge(h, threshold=0.4), js, st, progress=False)
        assert n["calls"] == 2 and stats2.cached == 3 and stats2.calls == 0
        assert [s.passed for s in again] == [True] * 3  # pass recomputed at the new threshold
        # another template/mode is another cache key: asked again
        score_cached(judge(h, mode="pairwise"), js[:1], st, progress=False)
        assert n["calls"] == 4

        def down(req: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused")

        _, st3 = score_cached(judge(down, model="other", upstream_attempts=1), js[:1], st, progress=False)
        assert st3.unscored == 1
        _, st4 = score_cached(judge(h, model="other"), js[:1], st, progress=False)
        assert st4.cached == 0 and st4.scored == 1  # the failure was not cached


def test_bad_options_are_one_line() -> None:
    with pytest.raises(InputError, match="unknown scorer 'jugde'"):
        make_scorer("jugde")
    with pytest.raises(InputError, match=r"scorer_options.model.*scorer .judge.: required option is missing"):
        make_scorer("judge", {"base_url": "http://x/v1"})
    with pytest.raises(InputError, match="template"):
        make_scorer("judge", {"model": "m", "base_url": "http://x/v1", "template": "v9"})
    with pytest.raises(InputError, match="tempreature"):
        make_scorer("judge", {"model": "m", "base_url": "http://x/v1", "tempreature": 1})
    with pytest.raises(InputError, match=r"item .q0..*reference"):
        judge(lambda r: reply("[[A]]"), mode="pairwise").score_many(jobs("x", ref=None))
