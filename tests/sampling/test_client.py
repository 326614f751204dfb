"""The async sampler against an in-process fake OpenAI server (httpx.MockTransport).

The fake records every request, so the tests assert exactly what went over the wire:
retries and their waits (no real sleeping: the sampler's ``sleep`` is recorded), n split
across requests when the server caps it, both logprob shapes, token counts, and that a
resumed run never asks for a sample the store already has.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.client import (
    RetryPolicy,
    Sampler,
    SamplingParams,
    Upstream,
    count_tokens,
    first_token_top_logprobs,
    margin,
    n_cap_from_error,
    parse_retry_after,
)
from firewall_routing.sampling.store import SampleStore
from firewall_routing.upstreams import UpstreamError

UP = Upstream("http://fake.test/v1", "m", api_key="sk-test")
CHAT = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=16, template="chat")
COMPLETION = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=16, template="completion")

Handler = Callable[[dict[str, Any], int], httpx.Response | None]


class FakeServer:
    """An OpenAI-compatible endpoint; ``behaviour(body, call_no)`` may answer instead."""

    def __init__(
        self, *, cap: int | None = None, cap_style: str = "truncate", behaviour: Handler | None = None
    ) -> None:
        self.cap = cap
        self.cap_style = cap_style
        self.behaviour = behaviour
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.counter = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.paths.append(request.url.path)
        self.auth.append(request.headers.get("authorization"))
        if self.behaviour is not None:
            forced = self.behaviour(body, len(self.bodies))
            if forced is not None:
                return forced
        n = body.get("n", 1)
        if self.cap is not None and n > self.cap:
            if self.cap_style == "reject":
                msg = f"Field 'n': Value must be between 1 <= value <= {self.cap}, but got {n}"
                return httpx.Response(400, json={"error": {"code": 400, "message": msg}})
            n = self.cap
        choices = []
        for i in range(n):
            self.counter += 1
            text = f"answer {self.counter}"
            if "messages" in body:
                c: dict[str, Any] = {"index": i, "message": {"role": "assistant", "content": text}}
            else:
                c = {"index": i, "text": text}
            choices.append(c)
        return httpx.Response(200, json={"choices": choices, "usage": {"completion_tokens": 2 * n}})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def samples_served(self) -> int:
        return self.counter


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _sample(
    store: SampleStore,
    server: FakeServer,
    n: int,
    params: SamplingParams = CHAT,
    prompt: str = "Q",
    sleeps: Sleeps | None = None,
    retry: RetryPolicy | None = None,
    concurrency: int = 4,
) -> tuple[list[Any], int]:
    async with Sampler(
        store,
        transport=server.transport(),
        sleep=sleeps or Sleeps(),
        seed=0,
        retry=retry,
        concurrency=concurrency,
    ) as s:
        out = await s.sample(UP, prompt, params, n)
        return out, s.requests_sent


@pytest.fixture
def store(tmp_path: Path) -> SampleStore:
    return SampleStore(tmp_path / "s.sqlite")


# ------------------------------------------------------------------------------ requests


def test_chat_and_completion_bodies(store: SampleStore) -> None:
    server = FakeServer()
    out, _ = run(_sample(store, server, 2, CHAT.greedy(top_logprobs=2)))
    run(_sample(store, server, 1, COMPLETION.greedy(top_logprobs=2)))
    chat, comp = server.bodies
    assert server.paths == ["/v1/chat/completions", "/v1/completions"]
    assert chat["messages"] == [{"role": "user", "content": "Q"}]
    assert (chat["temperature"], chat["top_p"], chat["n"]) == (0.0, 1.0, 2)
    assert chat["logprobs"] is True and chat["top_logprobs"] == 2
    assert comp["prompt"] == "Q" and comp["logprobs"] == 2 and "messages" not in comp
    assert server.auth[0] == "Bearer sk-test"
    assert [s.completion for s in out] == ["answer 1", "answer 2"]


# ------------------------------------------------------------------------------- retries


def test_retries_5xx_and_429_honouring_retry_after(store: SampleStore) -> None:
    def flaky(body: dict[str, Any], call: int) -> httpx.Response | None:
        if call == 1:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        if call == 2:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow"})
        return None

    sleeps = Sleeps()
    server = FakeServer(behaviour=flaky)
    out, sent = run(_sample(store, server, 1, sleeps=sleeps, retry=RetryPolicy(base_delay=0.5, max_delay=30)))
    assert sent == 3 and len(out) == 1
    first, second = sleeps.waits
    assert 0.25 <= first <= 0.5  # attempt 1: U(½, 1) · 0.5
    assert second == 7.0  # Retry-After (7 s) beats attempt 2's backoff (≤ 1 s)


def test_retries_connection_errors_and_timeouts(store: SampleStore) -> None:
    def broken(body: dict[str, Any], call: int) -> httpx.Response | None:
        if call == 1:
            raise httpx.ConnectError("connection refused")
        if call == 2:
            raise httpx.ReadTimeout("timed out")
        return None

    sleeps = Sleeps()
    out, sent = run(_sample(store, FakeServer(behaviour=broken), 1, sleeps=sleeps))
    assert sent == 3 and len(out) == 1 and len(sleeps.waits) == 2


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    import random

    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
        waits = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 4  # jitter really varies
    assert policy.delay(1, 1e9, rng) == policy.max_retry_after


def test_gives_up_after_max_attempts(store: SampleStore) -> None:
    server = FakeServer(behaviour=lambda b, c: httpx.Response(502, text="bad gateway"))
    with pytest.raises(UpstreamError, match=r"gave up after 3 attempts.*502"):
        run(_sample(store, server, 1, retry=RetryPolicy(max_attempts=3)))
    assert len(server.bodies) == 3
    assert store.count() == 0


def test_client_errors_are_not_retried(store: SampleStore) -> None:
    server = FakeServer(
        behaviour=lambda b, c: httpx.Response(401, json={"error": {"message": "invalid api key"}})
    )
    with pytest.raises(UpstreamError, match="401: invalid api key") as e:
        run(_sample(store, server, 1))
    assert len(server.bodies) == 1
    assert isinstance(e.value, InputError)  # the CLI prints it as one line


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


# ----------------------------------------------------------------------------- n splitting


def test_n_split_when_server_returns_fewer_choices(store: SampleStore) -> None:
    server = FakeServer(cap=2)
    out, sent = run(_sample(store, server, 5))
    assert [b["n"] for b in server.bodies] == [5, 2, 1]
    assert len({s.completion for s in out}) == 5 and server.samples_served == 5
    assert sent == 3


def test_n_split_when_server_rejects_large_n(store: SampleStore) -> None:
    server = FakeServer(cap=2, cap_style="reject")
    out, sent = run(_sample(store, server, 5, concurrency=1))
    ns = [b["n"] for b in server.bodies]
    assert ns[0] == 5 and sorted(ns[1:]) == [1, 2, 2]
    assert len(out) == 5 and server.samples_served == 5 and sent == 4


def test_learned_cap_is_reused(store: SampleStore, tmp_path: Path) -> None:
    server = FakeServer(cap=2, cap_style="reject")

    async def two_prompts() -> None:
        async with Sampler(store, transport=server.transport(), concurrency=1) as s:
            await s.sample(UP, "first", CHAT, 4)
            await s.sample(UP, "second", CHAT, 4)

    run(two_prompts())
    assert [b["n"] for b in server.bodies] == [4, 2, 2, 2, 2]


def test_n_cap_from_error_messages() -> None:
    llama = "Field 'n': Value must be between 1 <= value <= 4, but got 9"
    assert n_cap_from_error(400, llama, 9) == 4
    assert n_cap_from_error(400, "'n' must be 1 for this model", 3) == 1
    assert n_cap_from_error(400, "invalid model name", 3) is None
    assert n_cap_from_error(500, llama, 9) is None
    assert n_cap_from_error(400, llama, 1) is None


# -------------------------------------------------------------------------- logprobs/tokens


def _chat_logprobs_choice(lps: list[float]) -> dict[str, Any]:
    tops = [{"token": f"t{i}", "logprob": lp} for i, lp in enumerate(lps)]
    return {
        "message": {"content": "4 apples"},
        "logprobs": {
            "content": [
                {"token": "4", "logprob": lps[0], "top_logprobs": tops},
                {"token": " apples", "logprob": -0.1, "top_logprobs": []},
            ]
        },
    }


def test_margin_from_chat_shape() -> None:
    choice = _chat_logprobs_choice([-0.5, -1.5])
    top = first_token_top_logprobs(choice)
    assert top == (-0.5, -1.5)
    assert margin(top) == pytest.approx(math.exp(-0.5) - math.exp(-1.5))


def test_margin_from_completions_shape_unsorted() -> None:
    choice = {
        "text": "4",
        "logprobs": {"tokens": ["4"], "token_logprobs": [-0.2], "top_logprobs": [{" 5": -2.0, "4": -0.2}]},
    }
    top = first_token_top_logprobs(choice)
    assert top == (-0.2, -2.0)
    assert margin(top) == pytest.approx(math.exp(-0.2) - math.exp(-2.0))


def test_margin_edge_cases() -> None:
    assert first_token_top_logprobs({"text": "x"}) is None
    assert first_token_top_logprobs({"text": "x", "logprobs": None}) is None
    assert margin(None) is None
    assert margin((0.0,)) == 1.0


def test_margin_stored_through_sampler(store: SampleStore) -> None:
    def with_lp(body: dict[str, Any], call: int) -> httpx.Response:
        return httpx.Response(200, json={"choices": [_chat_logprobs_choice([-0.1, -3.0])]})

    out, _ = run(_sample(store, FakeServer(behaviour=with_lp), 1, CHAT.greedy(2)))
    assert out[0].top_logprobs == (-0.1, -3.0)
    assert store.get(next(iter(store.iter_all()))[0])[0].top_logprobs == (-0.1, -3.0)


def test_token_counting_sources() -> None:
    chat = _chat_logprobs_choice([-0.5, -1.0])
    assert count_tokens(chat, "4 apples", {"completion_tokens": 99}, 2) == (2, "logprobs")
    comp = {"text": "ab", "logprobs": {"tokens": ["a", "b", "c"]}}
    assert count_tokens(comp, "ab", None, 1) == (3, "logprobs")
    assert count_tokens({"usage": {"completion_tokens": 7}}, "x", None, 3) == (7, "choice-usage")
    assert count_tokens({}, "x" * 10, {"completion_tokens": 5}, 1) == (5, "usage")
    # multi-choice usage is ambiguous (sum or one choice): estimate from the text instead
    assert count_tokens({}, "x" * 10, {"completion_tokens": 5}, 2) == (3, "estimate")
    assert count_tokens({}, "", None, 2) == (0, "estimate")


def test_sampler_token_counts(store: SampleStore) -> None:
    out, _ = run(_sample(store, FakeServer(), 1))
    assert (out[0].tokens, out[0].token_source) == (2, "usage")
    out, _ = run(_sample(store, FakeServer(), 2, prompt="other"))
    assert {s.token_source for s in out} == {"estimate"}
    assert out[0].tokens == math.ceil(len("answer 1") / 4)


# ------------------------------------------------------------------------------- resuming


def test_resume_requests_only_missing_samples(store: SampleStore) -> None:
    def dies_after_two(body: dict[str, Any], call: int) -> httpx.Response | None:
        return httpx.Response(400, json={"error": {"message": "boom"}}) if call > 2 else None

    first = FakeServer(cap=1, behaviour=dies_after_two)
    with pytest.raises(UpstreamError):
        run(_sample(store, first, 5, concurrency=1))
    assert store.count() == 2
    kept = {i: s.completion for _, i, s in store.iter_all()}

    second = FakeServer(cap=1)
    out, sent = run(_sample(store, second, 5, concurrency=1))
    assert second.samples_served == 3  # only the 3 missing samples were asked for
    assert [out[i].completion for i in kept] == list(kept.values())
    assert [s.completion for s in out[2:]] == ["answer 1", "answer 2", "answer 3"]

    third = FakeServer()
    _, sent = run(_sample(store, third, 5))
    assert sent == 0 and third.bodies == []


def test_more_samples_extend_the_same_distribution(store: SampleStore) -> None:
    run(_sample(store, FakeServer(), 2))
    server = FakeServer()
    out, _ = run(_sample(store, server, 3))
    assert [b["n"] for b in server.bodies] == [1]
    assert len(out) == 3


def test_different_params_or_upstream_are_different_samples(store: SampleStore) -> None:
    run(_sample(store, FakeServer(), 1))
    server = FakeServer()
    run(_sample(store, server, 1, params=SamplingParams(0.7, 0.9, 16, "chat")))
    run(_sample(store, server, 1, params=SamplingParams(0.7, 1.0, 32, "chat")))
    run(_sample(store, server, 1, params=COMPLETION))
    assert len(server.bodies) == 3 and store.count() == 4


def test_offline_mode_sends_nothing(store: SampleStore) -> None:
    from firewall_routing.sampling.client import MissingSamples

    server = FakeServer()

    async def offline() -> None:
        async with Sampler(store, transport=server.transport(), offline=True) as s:
            await s.sample(UP, "Q", CHAT, 1)

    with pytest.raises(MissingSamples):
        run(offline())
    assert server.bodies == []


def test_concurrency_is_bounded_per_upstream(store: SampleStore) -> None:
    """Each upstream gets ``concurrency`` requests in flight, whatever the other one does."""
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def slow(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] = in_flight.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), in_flight[host])
        await asyncio.sleep(0.01 if host == "fast.test" else 0.05)
        in_flight[host] -= 1
        return httpx.Response(200, json={"choices": [{"message": {"content": "x"}}]})

    fast = Upstream("http://fast.test/v1", "f")
    slow_up = Upstream("http://slow.test/v1", "s")

    async def go() -> None:
        async with Sampler(store, transport=httpx.MockTransport(slow), concurrency=2) as s:
            await asyncio.gather(
                *(s.sample(up, f"p{i}", CHAT, 1) for i in range(8) for up in (fast, slow_up))
            )

    run(go())
    assert peak == {"fast.test": 2, "slow.test": 2}


# ------------------------------------------------------------------------- batched commits


def _committed(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    finally:
        db.close()


def test_many_samples_few_commits(tmp_path: Path) -> None:
    """1,000 single-sample requests against an instant server: a handful of commits, all
    committed when the sampler exits."""
    path = tmp_path / "s.sqlite"
    server = FakeServer()

    async def go() -> None:
        async with Sampler(SampleStore(path), transport=server.transport(), concurrency=8) as s:
            await asyncio.gather(*(s.sample(UP, f"p{i}", CHAT, 1) for i in range(1000)))
            commits = s.store.commits
        assert commits <= 1000 // 256 + 10, commits

    run(go())
    assert _committed(path) == 1000


def test_a_lone_sample_is_committed_within_max_delay(tmp_path: Path) -> None:
    """No further sample arrives to trigger the commit: the sampler's timer does it."""
    path = tmp_path / "s.sqlite"
    server = FakeServer()

    async def go() -> int:
        store = SampleStore(path, batch_size=1000, max_delay=0.05)
        async with Sampler(store, transport=server.transport()) as s:
            await s.sample(UP, "Q", CHAT, 1)
            assert store.pending == 1
            await asyncio.sleep(0.3)  # a slow server's next generation
            return _committed(path)

    assert run(go()) == 1


def test_a_failed_run_commits_what_it_got(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"

    def dies_after_two(body: dict[str, Any], call: int) -> httpx.Response | None:
        return httpx.Response(400, json={"error": {"message": "boom"}}) if call > 2 else None

    store = SampleStore(path, batch_size=1000, max_delay=3600)
    with pytest.raises(UpstreamError):
        run(_sample(store, FakeServer(cap=1, behaviour=dies_after_two), 5, concurrency=1))
    assert _committed(path) == 2
    store.close()
