"""Server configuration: one YAML or TOML file, validated by pydantic, secrets from the env.

API keys follow the rule of :mod:`firewall_routing.upstreams` (``api_key_env`` names the
variable; ``FIREWALL_ROUTING_WEAK_API_KEY`` / ``FIREWALL_ROUTING_STRONG_API_KEY`` are read
when it is not set), resolved once when the config is loaded. Client bearer tokens can stay
out of the file too: ``FIREWALL_ROUTING_AUTH_KEYS`` (comma-separated) overrides ``auth_keys``.

Relative paths in the file are relative to the file, so a config travels with its router.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from firewall_routing.configfiles import read_mapping
from firewall_routing.errors import InputError, Loc, input_error_from
from firewall_routing.upstreams import (
    SIDES,
    UpstreamConfig,
    default_key_env,
    warn_literal_keys,
    with_api_key,
)

__all__ = [
    "ENV_AUTH_KEYS",
    "ENV_STRONG_KEY",
    "ENV_WEAK_KEY",
    "ServeConfig",
    "UpstreamConfig",
    "check_provider",
    "default_calibration",
    "load_config",
]

ENV_WEAK_KEY = default_key_env("weak")
ENV_STRONG_KEY = default_key_env("strong")
ENV_AUTH_KEYS = "FIREWALL_ROUTING_AUTH_KEYS"


def default_calibration(router: str | Path) -> Path | None:
    """``<router>/calibration.json`` when it exists: what ``serve`` and the Python
    ``Controller`` use when no calibration is named."""
    from firewall_routing.calibration import CALIBRATION_FILE

    candidate = Path(router) / CALIBRATION_FILE
    return candidate if candidate.is_file() else None


def check_provider(cfg: UpstreamConfig, side: str) -> None:
    """A ``provider: litellm`` upstream needs the extra: one line naming the field, at load."""
    if cfg.provider == "litellm":
        from firewall_routing.serve.litellm_upstream import require_litellm

        require_litellm(f"{side}.provider")


class ServeConfig(BaseModel):
    """Everything ``firewall-routing serve`` needs (see docs/serving.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: Path
    calibration: Path | None = Field(
        default=None, description="Default: <router>/calibration.json when it exists."
    )
    weak: UpstreamConfig
    strong: UpstreamConfig
    auth_keys: list[SecretStr] = Field(default_factory=list)
    default_model: str | None = Field(
        default=None,
        description="What model 'firewall' means. Default: firewall@30% when calibrated; "
        "without a calibration it must be set.",
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    fallback: bool = False
    backend: Literal["onnx", "torch", "static"] = Field(
        default="onnx",
        description="Encoder for embedding routers: onnx (int8 MiniLM), torch (MiniLM as "
        "trained), static (model2vec distilled from MiniLM; routers trained with encoder static).",
    )
    context_tokens: int = Field(default=256, gt=0)
    scoring_threads: int = Field(
        default=2,
        gt=0,
        le=64,
        description="Prompts scored at the same time (onnxruntime releases the GIL): 2 keeps "
        "both cores of a small machine scoring when requests arrive together.",
    )
    scoring_batch_size: int = Field(
        default=64,
        gt=0,
        le=1024,
        description="Most prompts scored in one batched encoder + router call: requests "
        "waiting for a scoring thread are scored together, up to this many.",
    )
    scoring_batch_window_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=50.0,
        description="While a batch is being scored, how long a free scoring thread may wait "
        "for more requests before scoring what is queued (0: score what is queued now). A "
        "request that finds the scorer idle is scored at once either way.",
    )
    scoring_inline: bool | None = Field(
        default=None,
        description="Score on the event loop instead of scoring threads. Default: yes for the "
        "static backend (a prompt costs ~0.2 ms, less than the hand-off to a thread), no for "
        "onnx, torch and routers without an embedding head.",
    )
    encoder_threads: int = Field(
        default=1,
        gt=0,
        le=64,
        description="Intra-op threads per scoring call: 2 cuts one prompt's latency on an idle "
        "2-core machine, 1 gives the most requests/s under concurrency.",
    )
    keep_alive_timeout: int = Field(
        default=75,
        gt=0,
        description="Seconds the server keeps an idle client connection open. Clients "
        "(httpx/openai 5 s, aiohttp 15 s) must give up on idle connections before the "
        "server closes them, or a request sent on a closing connection fails.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes on the one port (about one per core): each loads the "
        "router and scores on its own; /metrics sums them all.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("default_model")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        from firewall_routing.serve.routing import UnknownModel, parse_model

        if v is None:
            return v
        try:
            parse_model(v)
        except UnknownModel as e:
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _default_calibration(self) -> ServeConfig:
        if self.calibration is None:
            object.__setattr__(self, "calibration", default_calibration(self.router))
        return self

    def auth_secrets(self) -> list[str]:
        return [k.get_secret_value() for k in self.auth_keys]


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``FIREWALL_ROUTING_AUTH_KEYS`` on the raw config mapping (upstream keys are
    resolved after validation, by :func:`firewall_routing.upstreams.with_api_key`)."""
    out = dict(data)
    if env.get(ENV_AUTH_KEYS):
        out["auth_keys"] = [k.strip() for k in env[ENV_AUTH_KEYS].split(",") if k.strip()]
    return out


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(data)
    for key in ("router", "calibration"):
        if isinstance(out.get(key), str):
            p = Path(out[key]).expanduser()
            out[key] = p if p.is_absolute() else base / p
    return out


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "",
) -> ServeConfig:
    """Validate a config mapping (env overrides applied, upstream keys resolved from the
    environment); InputError names the bad field."""
    env = os.environ if env is None else env
    raw = apply_env(dict(data), env)
    if base is not None:
        raw = _resolve_paths(raw, base)
    try:
        cfg = ServeConfig.model_validate(raw)
    except ValidationError as e:
        raise input_error_from(e, path=source, missing="required setting is missing") from None
    if source:  # a key passed in Python code is fine; in a file it is deprecated
        warn_literal_keys(raw, source)
    try:
        for side in SIDES:
            check_provider(getattr(cfg, side), side)
        keyed: dict[str, Any] = {side: with_api_key(getattr(cfg, side), side, env) for side in SIDES}
    except InputError as e:
        raise InputError(e.message, path=source or None, field=e.field) from None
    return cfg.model_copy(update=keyed)


def _option(loc: Loc) -> str:
    """A setting as the command-line option that overrides it (``--port``)."""
    return "--" + "-".join(str(x) for x in loc).replace("_", "-")


def with_overrides(config: ServeConfig, **overrides: Any) -> ServeConfig:
    """``config`` with command-line overrides (None = keep), validated like the file's values.

    ``model_copy(update=...)`` would skip validation: ``--port 99999`` then reached the
    socket layer as an OverflowError traceback.
    """
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return config
    try:
        return ServeConfig.model_validate({**dict(config), **changes})
    except ValidationError as e:
        raise input_error_from(e, name=_option, missing="required setting is missing") from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ServeConfig:
    """Read and validate a YAML/TOML config file."""
    p = Path(path)
    return config_from_mapping(read_mapping(p), base=p.resolve().parent, env=env, source=str(p))
