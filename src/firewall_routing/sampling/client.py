"""Async sampler for any OpenAI-compatible endpoint (vLLM, llama.cpp server, TGI, OpenAI).

What it does for one ``(upstream, prompt, parameters, n)`` request (DESIGN.md §6):

* asks the :class:`~firewall_routing.sampling.store.SampleStore` first and requests only the
  samples it lacks; finished samples are committed in batches (at most ``max_delay``
  old, a timer task here, and on exit), so a rerun never pays twice for a committed one;
* splits ``n`` across requests when the server caps it: some servers silently return fewer
  choices than asked (the rest is requested again), llama.cpp rejects ``n`` above its slot
  count with a 400 naming the limit (the limit is learned once per upstream);
* bounds the requests in flight per upstream (one FIFO semaphore each), so a fast upstream
  never takes the slots of a slow one, and queued requests do not time out on a busy server;
* retries 429, 5xx, timeouts and connection errors with exponential backoff and jitter,
  waiting at least as long as a ``Retry-After`` header asks;
* reads the first generated token's top log-probabilities in both response shapes
  (completions ``logprobs.top_logprobs[0]`` = ``{token: logprob}``; chat and llama.cpp
  ``logprobs.content[0].top_logprobs`` = ``[{token, logprob}]``) for the margin
  p(top1) − p(top2);
* counts completion tokens per sample itself, because ``usage`` may describe the whole
  response (OpenAI: the sum over choices) or one choice only (some servers):
  :func:`count_tokens` documents the order of sources.

Network errors that persist and non-retryable answers (401, 404, a bad model name) raise
:class:`UpstreamError`, which the CLI prints as one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx

from firewall_routing.errors import InputError
from firewall_routing.sampling.store import SampleKey, SampleStore, StoredSample
from firewall_routing.upstreams import UpstreamError

Template = Literal["chat", "completion"]

CHARS_PER_TOKEN = 4.0
"""Tokenizer-free estimate (OpenAI's rule of thumb for English text), used only when the
response gives no per-choice token count; marked ``estimate`` in the store."""

RETRY_STATUSES = frozenset({408, 409, 425, 429})
"""Retried besides every 5xx: timeouts, conflicts and rate limits are transient."""


class MissingSamples(Exception):
    """Raised in offline mode when the store lacks samples (nothing is requested)."""


@dataclass(frozen=True)
class Upstream:
    """One OpenAI-compatible endpoint and model. ``base_url`` includes ``/v1``."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)

    def url(self, template: Template) -> str:
        path = "chat/completions" if template == "chat" else "completions"
        return f"{self.base_url.rstrip('/')}/{path}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def ident(self) -> tuple[str, str]:
        """What per-upstream state (semaphore, learned n cap) is keyed by."""
        return (self.base_url, self.model)


@dataclass(frozen=True)
class SamplingParams:
    """Everything in a request that changes the distribution of completions.

    ``top_logprobs`` > 0 asks for that many first-token alternatives (2 for the margin).
    All fields go into the store key (``key``), so changing one never mixes samples.
    """

    temperature: float
    top_p: float
    max_tokens: int
    template: Template = "chat"
    top_logprobs: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "template": self.template,
            "top_logprobs": self.top_logprobs,
        }
        if self.stop:  # only when set, so stores written before stop sequences existed still match
            key["stop"] = list(self.stop)
        return key

    def greedy(self, top_logprobs: int = 0) -> SamplingParams:
        """Temperature 0 (top-p 1: irrelevant at T=0, fixed so the key does not vary)."""
        return replace(self, temperature=0.0, top_p=1.0, top_logprobs=top_logprobs)

    def body(self, model: str, prompt: str, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "n": n,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        if self.stop:
            body["stop"] = list(self.stop)
        if self.template == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if self.top_logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = self.top_logprobs
        else:
            body["prompt"] = prompt
            if self.top_logprobs:
                body["logprobs"] = self.top_logprobs
        return body


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": attempt k waits U(½, 1)·min(cap, base·2^(k−1)).

    A ``Retry-After`` is a lower bound (the server knows its queue), capped at
    ``max_retry_after`` so a bogus header cannot stall a run for hours.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        wait = backoff * (0.5 + 0.5 * rng.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - (time.time() if now is None else now))


# ----------------------------------------------------------------------- response parsing


def choice_text(choice: Mapping[str, Any]) -> str:
    """The completion text of a chat (``message.content``) or completions (``text``) choice."""
    msg = choice.get("message")
    if isinstance(msg, Mapping):
        content = msg.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def first_token_top_logprobs(choice: Mapping[str, Any]) -> tuple[float, ...] | None:
    """Top log-probabilities of the first generated token, descending; None if absent."""
    lp = choice.get("logprobs")
    if not isinstance(lp, Mapping):
        return None
    values: list[float] = []
    content = lp.get("content")
    tops = lp.get("top_logprobs")
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        for alt in content[0].get("top_logprobs") or []:
            if isinstance(alt, Mapping) and isinstance(alt.get("logprob"), int | float):
                values.append(float(alt["logprob"]))
    elif isinstance(tops, list) and tops and isinstance(tops[0], Mapping):
        values = [float(v) for v in tops[0].values() if isinstance(v, int | float)]
    return tuple(sorted(values, reverse=True)) if values else None


def margin(top_logprobs: Sequence[float] | None) -> float | None:
    """p(top1) − p(top2) = exp(lp1) − exp(lp2); with one alternative p(top2) = 0."""
    if not top_logprobs:
        return None
    p1 = math.exp(top_logprobs[0])
    p2 = math.exp(top_logprobs[1]) if len(top_logprobs) > 1 else 0.0
    return min(1.0, max(0.0, p1 - p2))


def count_tokens(
    choice: Mapping[str, Any], text: str, usage: Mapping[str, Any] | None, n_choices: int
) -> tuple[int, str]:
    """Completion tokens of one choice and where the number came from.

    In order: the per-token logprobs list (``logprobs``: exact), a per-choice ``usage``
    (``choice-usage``), the response ``usage`` when the response has exactly one choice
    (``usage``), else ``ceil(len(text) / 4)`` (``estimate``). The response-level usage of a
    multi-choice response is not used: OpenAI sums it over choices, other servers report
    one choice, and nothing in the response says which.
    """
    lp = choice.get("logprobs")
    if isinstance(lp, Mapping):
        seq = lp.get("content") if isinstance(lp.get("content"), list) else lp.get("tokens")
        if isinstance(seq, list):
            return len(seq), "logprobs"
    cu = choice.get("usage")
    if isinstance(cu, Mapping) and isinstance(cu.get("completion_tokens"), int):
        return int(cu["completion_tokens"]), "choice-usage"
    if n_choices == 1 and isinstance(usage, Mapping):
        ct = usage.get("completion_tokens")
        if isinstance(ct, int) and not isinstance(ct, bool):
            return ct, "usage"
    return math.ceil(len(text) / CHARS_PER_TOKEN), "estimate"


def parse_choices(data: Any, url: str) -> list[StoredSample]:
    """Samples of one response, ordered by choice ``index`` (when given)."""
    choices = data.get("choices") if isinstance(data, Mapping) else None
    if not isinstance(choices, list):
        raise UpstreamError(502, "invalid", f"{url}: response has no 'choices' list")
    valid = [c for c in choices if isinstance(c, Mapping)]
    valid.sort(key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else None
    out = []
    for c in valid:
        text = choice_text(c)
        tokens, source = count_tokens(c, text, usage, len(valid))
        out.append(StoredSample(text, tokens, source, first_token_top_logprobs(c)))
    return out


_N_LIMIT = re.compile(r"""['"]?\bn\b['"]?.*?<=\s*value\s*<=\s*(\d+)""", re.S)
_N_MENTION = re.compile(r"""(['"`]n['"`]|\bn must\b|\bn\s*(?:>|<=|should|cannot)\b)""")


def n_cap_from_error(status: int, message: str, n_asked: int) -> int | None:
    """The per-request ``n`` limit a 400 reveals (llama.cpp: ``Field 'n': … <= value <= 2``).

    A 400 that mentions ``n`` without a number means "n > 1 unsupported": cap 1.
    """
    if status != 400 or n_asked <= 1:
        return None
    m = _N_LIMIT.search(message)
    if m:
        cap = int(m.group(1))
        return cap if 1 <= cap < n_asked else None
    return 1 if _N_MENTION.search(message) else None


class _NCap(Exception):
    def __init__(self, cap: int) -> None:
        self.cap = cap


def _error_message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300]
    err = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(err, Mapping) and isinstance(err.get("message"), str):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return resp.text[:300]


# ---------------------------------------------------------------------------- the sampler

SampleCallback = Callable[[StoredSample], None]
Sleep = Callable[[float], Awaitable[None]]


class Sampler:
    """Fetches samples through the store; one instance per run (it holds the per-upstream
    semaphores and the learned ``n`` caps).

    Use as ``async with Sampler(store) as s: await s.sample(upstream, prompt, params, n)``.
    ``concurrency`` is the number of requests in flight *per upstream*; ``timeout`` the
    seconds one request may take (a local CPU server can need many minutes for n long
    completions: a request that times out is retried and its work is lost).
    ``transport`` and ``sleep`` exist for tests (an in-process fake server, no real waits);
    ``offline`` never sends a request and raises :class:`MissingSamples` instead.
    ``requests_sent`` counts every HTTP attempt, retries included.
    """

    def __init__(
        self,
        store: SampleStore,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        timeout: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        seed: int | None = None,
        on_sample: SampleCallback | None = None,
        offline: bool = False,
    ) -> None:
        if concurrency < 1:
            raise InputError(f"concurrency must be ≥ 1, got {concurrency}", field="concurrency")
        self.store = store
        self.retry = retry or RetryPolicy()
        self.offline = offline
        self.on_sample = on_sample
        self.requests_sent = 0
        self._concurrency = concurrency
        self._timeout = timeout
        self._transport = transport
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._caps: dict[tuple[str, str], int] = {}
        self._sems: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._client: httpx.AsyncClient | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._served: set[tuple[tuple[str, str], str]] = set()

    async def __aenter__(self) -> Sampler:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self._client = httpx.AsyncClient(timeout=self._timeout, limits=limits, transport=self._transport)
        self._flusher = asyncio.create_task(self._flush_periodically())
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Commit every pending sample, also when the run failed or was cancelled (Ctrl-C)."""
        try:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
                self._flusher = None
        finally:
            self.store.flush()
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    async def _flush_periodically(self) -> None:
        """Bound how long a finished sample stays uncommitted when no further sample
        arrives to trigger the commit (a slow server between two long generations)."""
        while True:
            await asyncio.sleep(max(self.store.max_delay, 0.01))
            self.store.flush()

    async def sample(
        self, upstream: Upstream, prompt: str, params: SamplingParams, n: int
    ) -> list[StoredSample]:
        """Samples 0..n−1 of this distribution: from the store, else requested and stored."""
        key = SampleKey.make(upstream.base_url, upstream.model, prompt, params.key())
        have = self.store.get(key)
        missing = [i for i in range(n) if i not in have]
        if missing and self.offline:
            raise MissingSamples(f"{len(missing)} of {n} samples not in the store")
        while missing:
            cap = self._caps.get(upstream.ident, len(missing))
            chunks = [missing[i : i + cap] for i in range(0, len(missing), cap)]
            results = await asyncio.gather(
                *(self._fill(upstream, prompt, params, key, c, have) for c in chunks),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            missing = [i for i in range(n) if i not in have]
        return [have[i] for i in range(n)]

    async def _fill(
        self,
        upstream: Upstream,
        prompt: str,
        params: SamplingParams,
        key: SampleKey,
        indices: list[int],
        have: dict[int, StoredSample],
    ) -> None:
        """One request for ``indices``; stores what comes back, learns the n cap."""
        cap_key = upstream.ident
        try:
            samples = await self._request(upstream, params, params.body(upstream.model, prompt, len(indices)))
        except _NCap as e:
            self._caps[cap_key] = min(e.cap, self._caps.get(cap_key, e.cap))
            return
        if not samples:
            raise UpstreamError(502, "invalid", f"{upstream.url(params.template)}: response has no choices")
        if len(samples) < len(indices):
            self._caps[cap_key] = min(len(samples), self._caps.get(cap_key, len(samples)))
        for idx, s in zip(indices, samples, strict=False):
            self.store.put(key, idx, s)
            have[idx] = s
            if self.on_sample is not None:
                self.on_sample(s)

    async def _request(
        self, upstream: Upstream, params: SamplingParams, body: dict[str, Any]
    ) -> list[StoredSample]:
        """POST with retries; the semaphore is held only while a request is in flight."""
        assert self._client is not None, "use 'async with Sampler'"
        url = upstream.url(params.template)
        sem = self._sems.setdefault(upstream.ident, asyncio.Semaphore(self._concurrency))
        err = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after: float | None = None
            async with sem:
                self.requests_sent += 1
                try:
                    resp = await self._client.post(url, json=body, headers=upstream.headers())
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    err = f"{type(e).__name__}: {e}".rstrip(": ")
                else:
                    if resp.status_code == 200:
                        data = _json(resp, url)
                        self._note_served(upstream, data)
                        return parse_choices(data, url)
                    msg = _error_message(resp)
                    cap = n_cap_from_error(resp.status_code, msg, int(body.get("n", 1)))
                    if cap is not None:
                        raise _NCap(cap)
                    if resp.status_code < 500 and resp.status_code not in RETRY_STATUSES:
                        raise UpstreamError(502, "status", f"{url} answered {resp.status_code}: {msg}")
                    err = f"HTTP {resp.status_code}: {msg}"
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
            if attempt < self.retry.max_attempts:
                await self._sleep(self.retry.delay(attempt, retry_after, self._rng))
        raise UpstreamError(
            502, "unavailable", f"{url}: gave up after {self.retry.max_attempts} attempts ({err})"
        )

    def _note_served(self, upstream: Upstream, data: Any) -> None:
        """Store the model name the endpoint says it served (for the provenance file):
        an alias like ``small`` may stand for any GGUF, ``gpt-4o-mini`` for a dated snapshot."""
        served = data.get("model") if isinstance(data, Mapping) else None
        if isinstance(served, str) and served and (upstream.ident, served) not in self._served:
            self._served.add((upstream.ident, served))
            self.store.note_served(upstream.base_url, upstream.model, served)


def _json(resp: httpx.Response, url: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise UpstreamError(502, "invalid", f"{url}: response is not JSON: {resp.text[:200]!r}") from None
