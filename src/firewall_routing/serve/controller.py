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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from firewall_routing.calibration import Calibration
from firewall_routing.errors import InputError
from firewall_routing.routers.base import Router
from firewall_routing.serve.config import ServeConfig
from firewall_routing.serve.routing import FIREWALL, Decider, Decision, build_decider
from firewall_routing.serve.scoring import Backend, completion_prompt_text
from firewall_routing.upstreams import UpstreamConfig, with_api_key

Upstream = UpstreamConfig | Mapping[str, Any]


def _upstream(cfg: Upstream, side: str) -> UpstreamConfig:
    """Validated, with the API key resolved like ``serve`` does (api_key_env, then
    FIREWALL_ROUTING_<SIDE>_API_KEY, then a key passed here)."""
    up = cfg if isinstance(cfg, UpstreamConfig) else UpstreamConfig.model_validate(dict(cfg))
    return with_api_key(up, side)


def _client(cfg: UpstreamConfig) -> Any:
    import openai

    if cfg.provider != "openai" or cfg.base_url is None:
        raise InputError(
            "the Python Controller calls OpenAI-compatible endpoints only: use `serve` for provider "
            "'litellm'",
            field="provider",
        )
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else "not-needed"
    return openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout)


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

    ``default_model`` (what ``firewall`` means) defaults to ``firewall@30%`` when a
    calibration is given; without one it must be set. Loading logs which calibration is
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
        self.decider = decider or build_decider(
            router,
            calibration,
            backend=backend,
            default_model=default_model,
            context_tokens=context_tokens,
            threads=encoder_threads,
        )
        self._upstreams = {"weak": _upstream(weak, "weak"), "strong": _upstream(strong, "strong")}
        self._clients = {side: _client(cfg) for side, cfg in self._upstreams.items()}
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
