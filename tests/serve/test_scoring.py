"""Serving a ``ridge`` router through the ONNX encoder (vectors + texts, no torch, no cache)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing import embeddings
from firewall_routing.embeddings import DEFAULT_ENCODER, CachedEncoder
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import load_table
from firewall_routing.routers import load_router
from firewall_routing.routers.ridge import RidgeRouter
from firewall_routing.serve.onnx_encoder import OnnxEncoder
from firewall_routing.serve.routing import Decider
from firewall_routing.serve.scoring import EmbeddingScorer, MicroBatcher, make_scorer

ROOT = Path(__file__).resolve().parents[2]
PAIR = ("HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b")


def test_ridge_is_served_from_onnx_vectors_and_the_prompt_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained on the int8 ONNX MiniLM's vectors (so no torch model is loaded here), the
    saved router scores through ``make_scorer(.., 'onnx')`` exactly as ``score`` does, and
    the request path never touches the training-time encoder or its on-disk cache."""
    onnx = OnnxEncoder()
    monkeypatch.setitem(embeddings._SHARED, DEFAULT_ENCODER, CachedEncoder(onnx, tmp_path / "cache"))
    train = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR).take(range(50))
    router = RidgeRouter(prior="none")
    router.fit(train.prompts, compute_labels(train, "soft-block").values)
    router.save(tmp_path / "r")
    probe = list(load_table(ROOT / "data/routerdc/gsm8k-test.json", *PAIR).prompts[:12])
    expected = router.score(probe)

    def no_cache(*_: Any, **__: Any) -> Any:
        raise AssertionError("the server must not use the embedding cache or the torch encoder")

    monkeypatch.setattr("firewall_routing.routers.base.get_encoder", no_cache)
    served = load_router(tmp_path / "r")
    scorer = make_scorer(served, "onnx")
    assert isinstance(scorer, EmbeddingScorer) and scorer.backend == "onnx"
    got = scorer(probe)
    np.testing.assert_allclose(got, expected, atol=1e-6)  # the cache stores float32
    one = np.concatenate([scorer([p]) for p in probe[:3]])
    np.testing.assert_allclose(one, got[:3], atol=1e-5)  # one at a time, as requests come


def test_torch_backend_encodes_with_the_configured_threads() -> None:
    """The server's encoder_threads reaches the torch encoder, which otherwise embeds on one
    thread (the cache's setting) whatever the process was told."""
    import torch

    from firewall_routing.embeddings import SentenceEncoder
    from firewall_routing.routers import make_router

    before = torch.get_num_threads()
    try:
        scorer = make_scorer(make_router("knn"), "torch", threads=2)
        assert isinstance(scorer, EmbeddingScorer) and scorer.backend == "torch"
        enc = scorer._encoder
        assert isinstance(enc, SentenceEncoder) and enc.threads == 2
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- micro-batching


class Gate:
    """A ``run`` for the batcher: records each batch, blocks the first until released."""

    def __init__(self, block_first: bool = True) -> None:
        self.batches: list[list[Any]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not block_first:
            self.release.set()

    def __call__(self, items: list[Any]) -> list[Any]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(10)
        return [ValueError(f"bad {x}") if isinstance(x, int) and x < 0 else f"r{x}" for x in items]


async def wait_started(gate: Gate) -> None:
    while not gate.started.is_set():
        await asyncio.sleep(0.001)


def run_batcher(gate: Gate, body: Any, **options: Any) -> Any:
    async def main() -> Any:
        with ThreadPoolExecutor(options.get("max_inflight", 1)) as pool:
            return await body(MicroBatcher(gate, pool, **options))

    return asyncio.run(main())


def test_batcher_hands_each_request_its_own_result_and_batches_what_queued() -> None:
    """While one batch runs, 40 requests queue; they go as batches of at most 16, and every
    caller gets the result computed for its own item."""
    gate = Gate()

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        first = asyncio.create_task(b.submit("first"))
        await wait_started(gate)
        rest = [asyncio.create_task(b.submit(i)) for i in range(40)]
        await asyncio.sleep(0.01)
        gate.release.set()
        return [await first, *await asyncio.gather(*rest)]

    got = run_batcher(gate, body, max_batch=16)
    assert got == ["rfirst"] + [f"r{i}" for i in range(40)]
    assert gate.batches[0] == ["first"]  # the lone first request went alone, at once
    assert [len(x) for x in gate.batches[1:]] == [16, 16, 8]  # the bound, then the rest
    assert sorted(x for batch in gate.batches[1:] for x in batch) == list(range(40))


def test_batcher_keeps_a_failure_with_its_own_request() -> None:
    gate = Gate()

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        first = asyncio.create_task(b.submit(0))
        await wait_started(gate)
        rest = [asyncio.create_task(b.submit(i)) for i in (1, -2, 3, -4)]
        await asyncio.sleep(0.01)
        gate.release.set()
        return [await first, *await asyncio.gather(*rest, return_exceptions=True)]

    got = run_batcher(gate, body)
    assert got[:2] == ["r0", "r1"] and got[3] == "r3"
    assert [str(x) for x in (got[2], got[4])] == ["bad -2", "bad -4"]
    assert all(isinstance(x, ValueError) for x in (got[2], got[4]))
    assert len(gate.batches) == 2  # one batch for the four, failures included


def test_batcher_fails_the_whole_batch_only_when_run_itself_raises() -> None:
    def broken(items: list[Any]) -> list[Any]:
        raise RuntimeError("boom")

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        return list(await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True))

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            return await body(MicroBatcher(broken, pool))

    got = asyncio.run(main())
    assert [str(x) for x in got] == ["boom", "boom"]


def test_a_lone_request_is_dispatched_at_once_even_with_a_gather_window() -> None:
    """An idle scorer never waits for company: the window applies only while a batch runs."""
    gate = Gate(block_first=False)

    async def body(b: MicroBatcher[Any, Any]) -> tuple[float, int, float, int]:
        start = time.perf_counter()
        task = asyncio.create_task(b.submit("alone"))
        await asyncio.sleep(0)  # the submit ran: dispatched without any timer
        dispatched = b.batches
        assert await task == "ralone"
        lone = time.perf_counter() - start
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await b.submit("again")
        return lone, dispatched, time.perf_counter() - start, b.batches

    lone, dispatched, again, batches = run_batcher(gate, body, window_s=2.0, max_inflight=2)
    assert dispatched == 1 and batches == 2
    assert lone < 1.0 and again < 1.0  # far below the 2 s window


def test_the_gather_window_collects_requests_while_a_batch_runs() -> None:
    """Two scoring threads, one busy: a free thread waits (bounded) to gather the next
    requests into one batch instead of taking them one by one."""
    gate = Gate()

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        first = asyncio.create_task(b.submit("first"))
        await wait_started(gate)
        rest = []
        for i in range(5):  # arriving 5 ms apart, within the 200 ms window
            rest.append(asyncio.create_task(b.submit(i)))
            await asyncio.sleep(0.005)
        got = await asyncio.gather(*rest)  # scored by the second thread while `first` blocks
        gate.release.set()
        return [await first, *got]

    got = run_batcher(gate, body, window_s=0.2, max_inflight=2)
    assert got == ["rfirst"] + [f"r{i}" for i in range(5)]
    assert gate.batches[1] == [0, 1, 2, 3, 4]


def test_a_request_cancelled_while_queued_is_not_scored() -> None:
    gate = Gate()

    async def body(b: MicroBatcher[Any, Any]) -> Any:
        first = asyncio.create_task(b.submit("first"))
        await wait_started(gate)
        gone = asyncio.create_task(b.submit("gone"))
        kept = asyncio.create_task(b.submit("kept"))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        gate.release.set()
        return await first, await kept

    assert run_batcher(gate, body) == ("rfirst", "rkept")
    assert gate.batches == [["first"], ["kept"]]


def test_batcher_options_are_checked() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError):
        MicroBatcher(Gate(), pool, max_batch=0)


# --------------------------------------------------------------------------- batched = single, per backend


def test_static_backend_scores_a_batch_as_it_scores_each_prompt(static_standin: Any, tmp_path: Path) -> None:
    from firewall_routing.static_encoder import StaticEncoder

    probe = list(load_table(ROOT / "data/routerdc/gsm8k-test.json", *PAIR).prompts[:70])
    enc = StaticEncoder()
    batched = enc.encode(probe)
    single = np.vstack([enc.encode([p]) for p in probe])
    np.testing.assert_allclose(batched, single, atol=1e-12)


def test_router_backend_scores_a_batch_as_it_scores_each_prompt(tmp_path: Path) -> None:
    """Routers without an embedding head (``RouterScorer``) take the whole batch too."""
    from firewall_routing.routers.random import RandomRouter

    from .conftest import word_count

    router = RandomRouter(seed=3)
    router.save(tmp_path / "r")
    decider = Decider(make_scorer(load_router(tmp_path / "r")), None, "firewall@t=0.5", 256, word_count)
    texts = [f"question {i}" for i in range(10)]
    ops = [decider.resolve("firewall@t=0.5")] * len(texts)
    many = decider.decide_many(list(zip(texts, ops, strict=True)))
    assert [d.score for d in many if not isinstance(d, Exception)] == [
        decider.decide(t, ops[0]).score for t in texts
    ]


def test_decide_many_isolates_the_prompt_that_breaks_the_scorer() -> None:
    """One 'explode' prompt makes the batched call raise: the batch is re-scored one by one,
    so only that request fails; a chat without user text fails alone too; forced sides are
    not scored."""
    from .conftest import KeywordScorer, word_count

    scorer = KeywordScorer()
    decider = Decider(scorer, None, "firewall@t=0.5", 256, word_count)
    op = decider.resolve("firewall@t=0.5")
    requests: list[Any] = [
        ("easy one", op),
        ("explode now", op),
        ([{"role": "system", "content": "no user"}], op),
        ([{"role": "user", "content": "hard chat"}], op),
        ("anything", decider.resolve("strong")),
    ]
    got = decider.decide_many(requests)
    assert isinstance(got[1], RuntimeError) and "scorer crashed" in str(got[1])
    assert isinstance(got[2], ValueError)
    ok = [got[i] for i in (0, 3, 4)]
    assert [(d.route, d.score) for d in ok if not isinstance(d, Exception)] == [
        ("weak", 0.9),
        ("strong", 0.1),
        ("strong", None),
    ]
    assert scorer.seen[:3] == ["easy one", "explode now", "hard chat"]  # first: one batched call


def test_inline_batcher_takes_what_queued_in_one_loop_iteration() -> None:
    """On the loop: requests whose handlers reach scoring in the same iteration go in one
    call (bounded by max_batch), each gets its own result, a failure stays with its item."""
    gate = Gate(block_first=False)

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        tasks = [asyncio.create_task(b.submit(i)) for i in (1, 2, -3, 4, 5)]
        first = await asyncio.gather(*tasks, return_exceptions=True)
        alone = await b.submit("alone")
        return [*first, alone]

    got = run_batcher(gate, body, inline=True, max_batch=4)
    assert got[:2] == ["r1", "r2"] and got[3:] == ["r4", "r5", "ralone"]
    assert isinstance(got[2], ValueError)
    assert gate.batches == [[1, 2, -3, 4], [5], ["alone"]]


def test_inline_batcher_fails_only_its_batch_when_run_raises() -> None:
    calls: list[list[Any]] = []

    def flaky(items: list[Any]) -> list[Any]:
        calls.append(items)
        if "bad" in items:
            raise RuntimeError("boom")
        return [f"r{x}" for x in items]

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            b: MicroBatcher[Any, Any] = MicroBatcher(flaky, pool, inline=True)
            first = await asyncio.gather(b.submit("bad"), b.submit("x"), return_exceptions=True)
            return [*first, await b.submit("y")]

    got = asyncio.run(main())
    assert [str(x) for x in got] == ["boom", "boom", "ry"]


def test_inline_batcher_with_batch_size_one_scores_without_yielding() -> None:
    gate = Gate(block_first=False)

    async def body(b: MicroBatcher[Any, Any]) -> list[Any]:
        task = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0)  # one step: the task ran to completion, nothing was queued
        done = task.done()
        with pytest.raises(ValueError, match="bad -2"):
            await b.submit(-2)
        return [done, await task, b.batches]

    assert run_batcher(gate, body, inline=True, max_batch=1) == [True, "r1", 0]
    assert gate.batches == [[1], [-2]]


def test_a_torch_head_scores_on_the_configured_threads(static_standin: Any, tmp_path: Path) -> None:
    """Static backend, MLP head: the head's batched matmuls run on encoder_threads threads,
    not torch's default of one per core."""
    import torch

    from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

    train = load_table(ROOT / "data/routerdc/gsm8k-train.json", *PAIR).take(range(40))
    router = EmbeddingHeadRouter(encoder="static", epochs=1)  # type: ignore[call-arg]
    router.fit(train.prompts, compute_labels(train, "soft-block").values)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make_scorer(router, "static", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
