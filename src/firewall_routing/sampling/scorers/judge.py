"""An LLM as judge, through the upstreams the project already speaks to.

Two modes, both at temperature 0 with a versioned prompt template (``template: v1``; a new
wording is a new version, so cached verdicts of the old one are never mixed in):

* ``pointwise``: the judge rates the answer 1–10 (Hybrid LLM's GPT-4 evaluation, MT-bench's
  wording); quality = (rating − 1) / 9.
* ``pairwise``: the judge compares the answer with the reference answer, asked in both
  orders (AlpacaEval's way of cancelling position bias); each order scores 1 (answer wins),
  ½ (tie) or 0, quality is their mean. Both orders must parse, else the verdict is missing.

Parsing is strict (``[[7]]``, ``[[A]]``/``[[B]]``/``[[C]]`` for a tie, or a reply that is
only that token, bare or in single brackets); an unparseable reply is asked again with a reminder, up to
``max_attempts``; a verdict that never parses is recorded as missing, never as 0. An upstream
that is down or slow is retried with backoff (``upstream_attempts``); if it stays down the
sample is left unscored and *not cached*, so a rerun asks again and no finished verdict is
lost. Tokens (the response's ``usage``) and cost (``input_per_1m``/``output_per_1m`` USD,
or the judge's row of a cost table, ``prices``) are counted per verdict.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from firewall_routing.errors import InputError
from firewall_routing.sampling.scorers.base import ProgressFn, Score, ScoreJob, Scorer

TEMPLATES: dict[str, dict[str, str]] = {
    "v1": {
        "pointwise_system": (
            "Please act as an impartial judge and evaluate the quality of the response provided by "
            "an AI assistant to the user question displayed below. Your evaluation should consider "
            "factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of "
            "detail of the response. Be as objective as possible. Rate the response on a scale of 1 "
            'to 10 by strictly following this format: "[[rating]]", for example: "[[5]]". Output '
            "only the rating."
        ),
        "pointwise_user": (
            "[Question]\n{prompt}\n\n[The Start of Assistant's Answer]\n{answer}\n"
            "[The End of Assistant's Answer]"
        ),
        "pairwise_system": (
            "Please act as an impartial judge and evaluate the responses provided by two AI "
            "assistants to the user question displayed below. Choose the assistant that follows "
            "the user's instructions and answers the user's question better. Do not let the order "
            "of the responses, their length or the assistants' names influence you. Output only "
            'your verdict in this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B '
            'is better, and "[[C]]" for a tie.'
        ),
        "pairwise_user": (
            "[User Question]\n{prompt}\n\n[The Start of Assistant A's Answer]\n{a}\n"
            "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n"
            "[The End of Assistant B's Answer]"
        ),
        "reminder_pointwise": "Reply with the rating only, exactly in the format [[N]] with N from 1 to 10.",
        "reminder_pairwise": "Reply with the verdict only: exactly [[A]], [[B]] or [[C]].",
    }
}

_RATING = re.compile(r"\[\[\s*(10|[1-9])(?:\.0+)?\s*\]\]")
_BARE_RATING = re.compile(r"^\s*(?:rating\s*:?\s*)?\[?\s*(10|[1-9])\s*\]?\s*\.?\s*$", re.I)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BARE_VERDICT = re.compile(r"^\s*(?:verdict\s*:?\s*)?\[?\s*([ABC])\s*\]?\s*\.?\s*$")


def parse_rating(text: str) -> int | None:
    """The 1–10 rating of a pointwise reply, or None. Two different ``[[n]]`` → None."""
    found = {int(m) for m in _RATING.findall(text)}
    if len(found) == 1:
        return found.pop()
    if not found and (m := _BARE_RATING.match(text)):
        return int(m.group(1))
    return None


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``C`` (tie) of a pairwise reply, or None. Conflicting tokens → None."""
    found: set[str] = {str(v) for v in _VERDICT.findall(text)}
    if len(found) == 1:
        return found.pop()
    if not found and (m := _BARE_VERDICT.match(text)):
        return m.group(1)
    return None


class _Down(Exception):
    """The upstream kept failing (not the judge's answer): leave the sample unscored."""


class JudgeScorer(Scorer):
    name: ClassVar[str] = "judge"
    summary: ClassVar[str] = (
        "an LLM judge (OpenAI-compatible URL or LiteLLM model): pointwise 1-10 or pairwise vs reference"
    )
    calls_model: ClassVar[bool] = True

    model: str = Field(
        min_length=1, description="Judge model name sent upstream (a LiteLLM name for provider litellm)."
    )
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible /v1 root, e.g. http://127.0.0.1:8080/v1."
    )
    provider: Literal["openai", "litellm"] = Field(
        default="openai", description="openai (base_url) or litellm."
    )
    api_key_env: str | None = Field(
        default=None, description="Variable with the judge's key (default FIREWALL_ROUTING_JUDGE_API_KEY)."
    )
    mode: Literal["pointwise", "pairwise"] = Field(
        default="pointwise", description="Rate 1-10, or compare with the reference in both orders."
    )
    template: str = Field(default="v1", description=f"Prompt template version ({', '.join(TEMPLATES)}).")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Asks per verdict until it parses.")
    upstream_attempts: int = Field(
        default=4, ge=1, le=20, description="Tries per request when the upstream fails."
    )
    max_tokens: int = Field(default=16, ge=1, description="Judge reply limit (the verdict is one token-ish).")
    concurrency: int = Field(default=4, ge=1, le=256, description="Judge requests in flight.")
    timeout: float = Field(default=120.0, gt=0, description="Seconds per judge request.")
    input_per_1m: float = Field(default=0.0, ge=0, description="USD per million prompt tokens.")
    output_per_1m: float = Field(default=0.0, ge=0, description="USD per million completion tokens.")
    prices: Path | None = Field(
        default=None, description="Cost table CSV (costs format); the judge model's row sets both prices."
    )
    max_answer_chars: int = Field(
        default=6000, ge=100, description="Answers are cut to this many characters in the prompt."
    )

    _transport: Any = PrivateAttr(default=None)
    _retry_delay: float = PrivateAttr(default=0.5)

    @model_validator(mode="after")
    def _check(self) -> JudgeScorer:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown template '{self.template}'; known: {', '.join(TEMPLATES)}")
        if self.provider == "openai" and self.base_url is None:
            raise ValueError("base_url is required (provider 'openai')")
        return self

    def uncached_fields(self) -> set[str]:
        return {
            "api_key_env",
            "upstream_attempts",
            "concurrency",
            "timeout",
            "input_per_1m",
            "output_per_1m",
            "prices",
            "max_attempts",
            "reference_from",
        }

    def wants_reference(self) -> bool:
        return self.mode == "pairwise"

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        pin, pout = self._prices()
        return tokens_in * pin / 1e6 + tokens_out * pout / 1e6

    def _prices(self) -> tuple[float, float]:
        if self.prices is None:
            return self.input_per_1m, self.output_per_1m
        from firewall_routing.costs import load_costs

        table = load_costs(self.prices)
        row = next((c for c in table.costs if c.model == self.model), None)
        if row is None or row.input_per_1m is None or row.output_per_1m is None:
            raise InputError(
                f"no input_per_1m/output_per_1m row for judge model '{self.model}'", path=self.prices
            )
        return float(row.input_per_1m), float(row.output_per_1m)

    # ------------------------------------------------------------------------ requests

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        if self.mode == "pairwise":
            for j in jobs:
                if j.reference is None:
                    raise InputError(f"item '{j.item_id}': the pairwise judge needs a reference answer")
        if not jobs:
            return []
        return asyncio.run(self._score_all(jobs, progress))

    async def _score_all(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None) -> list[Score]:
        sem = asyncio.Semaphore(self.concurrency)
        rng = random.Random(0)
        async with self._client() as client:

            async def one(job: ScoreJob) -> Score:
                async with sem:
                    try:
                        s = await self._score_one(client, job, rng)
                    except _Down:
                        s = Score(None, None, final=False)
                if progress is not None:
                    progress(1)
                return s

            return list(await asyncio.gather(*(one(j) for j in jobs)))

    def _client(self) -> Any:
        """An httpx client for the judge: the OpenAI-compatible URL, or LiteLLM behind the
        transport ``serve`` uses (:mod:`firewall_routing.litellm_transport`)."""
        import httpx

        from firewall_routing.upstreams import UpstreamConfig, with_api_key

        cfg = with_api_key(
            UpstreamConfig(
                provider=self.provider,
                base_url=self.base_url,
                model=self.model,
                api_key_env=self.api_key_env,
                timeout=self.timeout,
            ),
            "judge",
        )
        if cfg.provider == "litellm":
            from firewall_routing.litellm_transport import make_litellm_client, require_litellm

            require_litellm("scorer_options.provider")
            return make_litellm_client(cfg)
        headers = {"content-type": "application/json"}
        if cfg.api_key is not None:
            headers["authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        assert cfg.base_url is not None
        return httpx.AsyncClient(
            base_url=cfg.base_url,
            headers=headers,
            transport=self._transport,
            timeout=httpx.Timeout(self.timeout),
        )

    async def _score_one(self, client: Any, job: ScoreJob, rng: random.Random) -> Score:
        t = TEMPLATES[self.template]
        answer = job.completion[: self.max_answer_chars]
        if self.mode == "pointwise":
            user = t["pointwise_user"].format(prompt=job.prompt, answer=answer)
            rating, usage = await self._ask(
                client, t["pointwise_system"], user, t["reminder_pointwise"], parse_rating, rng
            )
            q = None if rating is None else (rating - 1) / 9
            return Score(q, self.passed(q), True, *usage)
        ref = (job.reference or "")[: self.max_answer_chars]
        first, u1 = await self._ask(
            client,
            t["pairwise_system"],
            t["pairwise_user"].format(prompt=job.prompt, a=answer, b=ref),
            t["reminder_pairwise"],
            parse_verdict,
            rng,
        )
        second, u2 = await self._ask(
            client,
            t["pairwise_system"],
            t["pairwise_user"].format(prompt=job.prompt, a=ref, b=answer),
            t["reminder_pairwise"],
            parse_verdict,
            rng,
        )
        usage = (u1[0] + u2[0], u1[1] + u2[1], u1[2] + u2[2])
        if first is None or second is None:
            return Score(None, None, True, *usage)
        win = {"A": 1.0, "C": 0.5, "B": 0.0}
        q = (win[first] + (1.0 - win[second])) / 2
        return Score(q, self.passed(q), True, *usage)

    async def _ask(
        self, client: Any, system: str, user: str, reminder: str, parse: Any, rng: random.Random
    ) -> tuple[Any, tuple[int, int, int]]:
        """Ask until the reply parses (``max_attempts``): (parsed or None, (in, out, calls))."""
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        tin = tout = calls = 0
        for _ in range(self.max_attempts):
            text, i, o = await self._post(client, messages, rng)
            tin, tout, calls = tin + i, tout + o, calls + 1
            value = parse(text)
            if value is not None:
                return value, (tin, tout, calls)
            messages = [
                *messages[:2],
                {"role": "assistant", "content": text},
                {"role": "user", "content": reminder},
            ]
        return None, (tin, tout, calls)

    async def _post(
        self, client: Any, messages: list[dict[str, str]], rng: random.Random
    ) -> tuple[str, int, int]:
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        for attempt in range(1, self.upstream_attempts + 1):
            try:
                resp = await client.post("/chat/completions", content=json.dumps(body).encode())
                if resp.status_code == 200:
                    data = resp.json()
                    text = data["choices"][0]["message"].get("content") or ""
                    usage = data.get("usage") or {}
                    return (
                        str(text),
                        int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or 0),
                    )
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 429):
                    raise InputError(
                        f"judge upstream refused the request: HTTP {resp.status_code}: {resp.text[:200]}"
                    )
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                pass  # wire failure or a body that is not a chat completion: retried like a 5xx
            if attempt < self.upstream_attempts:
                await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1) * (0.5 + 0.5 * rng.random()))
        raise _Down
