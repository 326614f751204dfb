"""Python API: route in-process, call the chosen model with the official ``openai`` client.

For applications that do not want an extra HTTP hop::

    from firewall_routing.serve.controller import Controller

    ctl = Controller(router="runs/r1", calibration="runs/r1/calibration.json",
                     weak={"base_url": "http://127.0.0.1:8080/v1", "model": "small"},
                     strong={"base_url": "https://api.example.com/v1", "model": "big",
                             "api_key_env": "MY_PROVIDER_KEY"})
    ctl.route(messages, operating_point="firewall@30%")          # -> Decision
    ctl.chat.completions.create(model="firewall@30%", messages=messages, stream=True)

``chat.completions.create`` and ``completions.create`` mirror ``openai.OpenAI`` and return
its objects (``ChatCompletion`` or a ``Stream`` of chunks), so code written against the
client works unchanged; the routing decision is the same function the server uses.

It takes the settings ``serve`` takes, with the same rules (:mod:`firewall_routing.serve.config`):
``<router>/calibration.json`` is used when no calibration is named, and an upstream is an
OpenAI-compatible URL or, with ``provider: litellm``, any LiteLLM model name (called through
``litellm.completion`` / ``litellm.text_completion`` with the proxy's options; answers are
converted to the ``openai`` client's objects, and LiteLLM's errors subclass ``openai``'s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from firewall_routing.calibration import Calibration
from firewall_routing.routers.base import Router
from firewall_routing.serve.config import ServeConfig, check_provider, default_calibration
from firewall_routing.serve.litellm_upstream import call_options
from firewall_routing.serve.routing import FIREWALL, Decider, Decision, build_decider
from firewall_routing.serve.scoring import Backend, completion_prompt_text
from firewall_routing.upstreams import UpstreamConfig, with_api_key

Upstream = UpstreamConfig | Mapping[str, Any]


def _upstream(cfg: Upstream, side: str) -> UpstreamConfig:
    """Validated, with the API key resolved like ``serve`` does (api_key_env, then
    FIREWALL_ROUTING_<SIDE>_API_KEY, then a key passed here)."""
    up = cfg if isinstance(cfg, UpstreamConfig) else UpstreamConfig.model_validate(dict(cfg))
    return with_api_key(up, side)


def _client(cfg: UpstreamConfig, side: str) -> Any:
    """An ``openai.OpenAI`` client, or for ``provider: litellm`` one with the same surface."""
    check_provider(cfg, side)
    if cfg.provider == "litellm":
        return _LiteLLMClient(cfg)
    import openai

    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else "not-needed"
    return openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout)


class _LiteLLMClient:
    """``chat.completions.create`` / ``completions.create`` through LiteLLM, answering with the
    ``openai`` client's objects (a list-like iterator of chunks when streaming)."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        from firewall_routing.serve.litellm_upstream import litellm_module

        self.cfg = cfg
        self.litellm = litellm_module()
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._chat))
        self.completions = SimpleNamespace(create=self._text)

    def _chat(self, **body: Any) -> Any:
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        result = self.litellm.completion(**call_options(self.cfg, body))
        return _converted(result, ChatCompletionChunk if body.get("stream") else ChatCompletion, body)

    def _text(self, **body: Any) -> Any:
        from openai.types import Completion

        return _converted(self.litellm.text_completion(**call_options(self.cfg, body)), Completion, body)


def _converted(result: Any, kind: Any, body: Mapping[str, Any]) -> Any:
    """LiteLLM's response (or stream of chunks) as ``kind`` objects of the openai package."""
    if not body.get("stream"):
        return kind.model_validate(result.model_dump())
    return (kind.model_validate(chunk.model_dump(exclude_none=True)) for chunk in result)


class _ChatCompletions:
    def __init__(self, owner: Controller) -> None:
        self._owner = owner

    def create(
        self,
        *,
        model: str = FIREWALL,
        messages: Sequence[Mapping[str, Any]],
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Route ``messages`` at operating point ``model``, then call that upstream."""
        decision = self._owner.route(messages, operating_point=model)
        cfg, client = self._owner.upstream(decision)
        return client.chat.completions.create(
            model=cfg.model, messages=list(messages), stream=stream, **kwargs
        )


class _Chat:
    def __init__(self, owner: Controller) -> None:
        self.completions = _ChatCompletions(owner)


class _Completions:
    def __init__(self, owner: Controller) -> None:
        self._owner = owner

    def create(
        self, *, model: str = FIREWALL, prompt: str | list[str], stream: bool = False, **kwargs: Any
    ) -> Any:
        """Route a text prompt at operating point ``model``, then call that upstream."""
        decision = self._owner.route_text(completion_prompt_text(prompt), model)
        cfg, client = self._owner.upstream(decision)
        return client.completions.create(model=cfg.model, prompt=prompt, stream=stream, **kwargs)


class Controller:
    """Router + calibration + two upstreams, with an OpenAI-client-shaped surface.

    ``calibration`` defaults to ``<router>/calibration.json`` when that file exists (as for
    ``serve``); ``default_model`` (what ``firewall`` means) defaults to ``firewall@30%`` when
    calibrated; without a calibration it must be set. Loading logs which calibration is
    used and warns when it was made for another router (as ``serve`` does).
    """

    def __init__(
        self,
        *,
        router: str | Path | Router,
        calibration: str | Path | Calibration | None = None,
        weak: Upstream,
        strong: Upstream,
        backend: Backend = "onnx",
        default_model: str | None = None,
        context_tokens: int = 256,
        encoder_threads: int = 1,
        decider: Decider | None = None,
    ) -> None:
        if calibration is None and not isinstance(router, Router):
            calibration = default_calibration(router)  # as `serve` does
        self.decider = decider or build_decider(
            router,
            calibration,
            backend=backend,
            default_model=default_model,
            context_tokens=context_tokens,
            threads=encoder_threads,
        )
        self._upstreams = {"weak": _upstream(weak, "weak"), "strong": _upstream(strong, "strong")}
        self._clients = {side: _client(cfg, side) for side, cfg in self._upstreams.items()}
        self.chat = _Chat(self)
        self.completions = _Completions(self)

    @classmethod
    def from_config(cls, config: ServeConfig) -> Controller:
        """The same router, calibration and upstreams a ``serve`` config file describes."""
        return cls(
            router=config.router,
            calibration=config.calibration,
            weak=config.weak,
            strong=config.strong,
            backend=config.backend,
            default_model=config.default_model,
            context_tokens=config.context_tokens,
            encoder_threads=config.encoder_threads,
        )

    def route(self, messages: Sequence[Mapping[str, Any]], operating_point: str = FIREWALL) -> Decision:
        """The decision for a chat (user turns within the context budget are scored)."""
        return self.decider.route(messages, operating_point)

    def route_text(self, text: str, operating_point: str = FIREWALL) -> Decision:
        """The decision for one plain text (e.g. a completion prompt)."""
        return self.decider.decide(text, self.decider.resolve(operating_point))

    def upstream(self, decision: Decision) -> tuple[UpstreamConfig, Any]:
        """(config, openai client) of the side a decision chose."""
        return self._upstreams[decision.route], self._clients[decision.route]
