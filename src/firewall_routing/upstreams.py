"""The model endpoints both ``sample`` and ``serve`` talk to: one config model, one key rule,
one error type.

API keys come from the environment only, so config files can be committed without secrets:

* ``api_key_env: NAME`` — the key is read from ``$NAME`` (unset or empty: an error naming
  ``NAME``, raised when the config is loaded for ``serve`` and before the first request for
  ``sample``);
* without ``api_key_env``, ``$FIREWALL_ROUTING_WEAK_API_KEY`` / ``$FIREWALL_ROUTING_STRONG_API_KEY``
  is used when set;
* otherwise no key is sent (a local server); for ``provider: litellm`` LiteLLM then reads its
  provider's own variable (``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``, ...).

``api_key:`` with the key itself in a file still loads (older ``serve`` configs) but logs a
deprecation warning; in Python code (``Controller``) passing ``api_key`` is fine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from firewall_routing.errors import InputError

log = logging.getLogger(__name__)

Side = Literal["weak", "strong"]
Provider = Literal["openai", "litellm"]
SIDES: tuple[Side, Side] = ("weak", "strong")


def default_key_env(side: str) -> str:
    """The variable read when ``api_key_env`` is not set: ``FIREWALL_ROUTING_WEAK_API_KEY``."""
    return f"FIREWALL_ROUTING_{side.upper()}_API_KEY"


class UpstreamConfig(BaseModel):
    """One model endpoint: an OpenAI-compatible URL, or a LiteLLM model name (``serve`` only).

    ``model`` is the name sent upstream (for ``provider: litellm`` a LiteLLM name such as
    ``anthropic/claude-3-5-haiku-latest``); ``name`` is what ``sample`` writes to its table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = Field(
        default="openai",
        description="openai: any OpenAI-compatible base_url. litellm: any LiteLLM model name "
        "(needs the [litellm] extra); base_url is then optional (the provider's API base).",
    )
    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8080/v1 (the /v1 root).")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, min_length=1, description="Name of the environment variable holding the API key."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The key itself: for Python callers. Deprecated in config files (use api_key_env).",
    )
    name: str | None = Field(default=None, description="Name written to sample's table.")
    timeout: float = Field(default=60.0, gt=0, description="serve: seconds per connect/read.")
    keepalive_expiry: float = Field(
        default=2.0,
        ge=0,
        description="serve: seconds an idle pooled connection to this upstream is kept. Must stay "
        "below the upstream server's idle timeout (uvicorn and llama.cpp close after 5 s): "
        "a connection reused just as the server closes it fails the request.",
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _url_for_openai(self) -> UpstreamConfig:
        if self.provider == "openai" and self.base_url is None:
            raise ValueError("base_url is required (provider 'openai')")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.model


def resolve_api_key(cfg: UpstreamConfig, side: str, env: Mapping[str, str] | None = None) -> str | None:
    """The key for ``cfg`` under the rule in this module's docstring (None: send none)."""
    env = os.environ if env is None else env
    if cfg.api_key_env:
        key = env.get(cfg.api_key_env)
        if not key:
            raise InputError(
                f"environment variable {cfg.api_key_env} is not set", field=f"{side}.api_key_env"
            )
        return key
    key = env.get(default_key_env(side))
    if key:
        return key
    return cfg.api_key.get_secret_value() if cfg.api_key is not None else None


def with_api_key(cfg: UpstreamConfig, side: str, env: Mapping[str, str] | None = None) -> UpstreamConfig:
    """``cfg`` with ``api_key`` set to the resolved key (read once, at load time)."""
    key = resolve_api_key(cfg, side, env)
    return cfg.model_copy(update={"api_key": SecretStr(key) if key is not None else None})


def warn_literal_keys(data: Mapping[str, Any], source: str) -> None:
    """Log one deprecation line per upstream whose file holds the key itself."""
    for side in SIDES:
        up = data.get(side)
        if isinstance(up, Mapping) and up.get("api_key") is not None:
            where = f"{source}: " if source else ""
            log.warning(
                "warning: %sfield '%s.api_key': a key in the config file is deprecated; put it in an "
                "environment variable and name that with '%s.api_key_env' (or set %s)",
                where,
                side,
                side,
                default_key_env(side),
            )


class UpstreamError(InputError):
    """An upstream refused or kept failing (bad URL, key or model name, an outage).

    ``status`` is what a ``serve`` client sees (502, or 504 on a timeout); ``kind`` is the
    short code in ``upstream_<kind>`` error bodies and metrics. ``sample`` prints it as one
    line like any InputError.
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status = status
        self.kind = kind
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, dict[str, str]]:
        return {
            "error": {
                "message": self.message,
                "type": "upstream_error",
                "code": f"upstream_{self.kind}",
            }
        }
