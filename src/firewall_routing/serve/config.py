"""Server configuration: one YAML or TOML file, validated by pydantic, secrets from the env.

Secrets can stay out of the file (and out of version control): these environment variables
override the file when set —

* ``FIREWALL_ROUTING_WEAK_API_KEY``  → ``weak.api_key``
* ``FIREWALL_ROUTING_STRONG_API_KEY`` → ``strong.api_key``
* ``FIREWALL_ROUTING_AUTH_KEYS``      → ``auth_keys`` (comma-separated bearer tokens)

Relative paths in the file are relative to the file, so a config travels with its router.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
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

from firewall_routing.errors import InputError

ENV_WEAK_KEY = "FIREWALL_ROUTING_WEAK_API_KEY"
ENV_STRONG_KEY = "FIREWALL_ROUTING_STRONG_API_KEY"
ENV_AUTH_KEYS = "FIREWALL_ROUTING_AUTH_KEYS"


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible endpoint; ``model`` replaces the client's model name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="e.g. http://127.0.0.1:8080/v1 (the /v1 root).")
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    timeout: float = Field(default=60.0, gt=0, description="Seconds per connect/read.")
    keepalive_expiry: float = Field(
        default=2.0,
        ge=0,
        description="Seconds an idle pooled connection to this upstream is kept. Must stay "
        "below the upstream server's idle timeout (uvicorn and llama.cpp close after 5 s): "
        "a connection reused just as the server closes it fails the request.",
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


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
            from firewall_routing.calibration import CALIBRATION_FILE

            candidate = self.router / CALIBRATION_FILE
            if candidate.is_file():
                object.__setattr__(self, "calibration", candidate)
        return self

    def auth_secrets(self) -> list[str]:
        return [k.get_secret_value() for k in self.auth_keys]


def _read_mapping(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InputError("config must be .yaml, .yml or .toml", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", path=path) from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else _yaml(text)
    except Exception as e:  # TOMLDecodeError / yaml.YAMLError: report, never a traceback
        raise InputError(f"cannot parse: {e}", path=path) from None
    if not isinstance(data, dict):
        raise InputError("config must be a mapping of settings", path=path)
    return data


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay the secret environment variables on the raw config mapping."""
    out = dict(data)
    for side, var in (("weak", ENV_WEAK_KEY), ("strong", ENV_STRONG_KEY)):
        if env.get(var) and isinstance(out.get(side), dict):
            out[side] = {**out[side], "api_key": env[var]}
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
    """Validate a config mapping (env overrides applied); InputError names the bad field."""
    raw = apply_env(dict(data), os.environ if env is None else env)
    if base is not None:
        raw = _resolve_paths(raw, base)
    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as e:
        raise _input_error(e, source) from None


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(x) for x in loc)


def _option(loc: tuple[int | str, ...]) -> str:
    """A setting as the command-line option that overrides it (``--port``)."""
    return "--" + "-".join(str(x) for x in loc).replace("_", "-")


def _input_error(
    e: ValidationError, source: str, name: Callable[[tuple[int | str, ...]], str] = _dotted
) -> InputError:
    """Every bad setting in one line: a user fixing a config should not discover them one run at a time."""
    found = []
    for err in e.errors():
        fld = name(err["loc"]) or None
        msg = "required setting is missing" if err["type"] == "missing" else err["msg"]
        found.append((fld, msg.removeprefix("Value error, ")))
    if len(found) == 1:
        fld, msg = found[0]
        return InputError(msg, path=source or None, field=fld)
    listed = "; ".join(f"field '{f}': {m}" if f else m for f, m in found)
    return InputError(f"{len(found)} bad settings: {listed}", path=source or None)


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
        raise _input_error(e, "", name=_option) from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ServeConfig:
    """Read and validate a YAML/TOML config file."""
    p = Path(path)
    return config_from_mapping(_read_mapping(p), base=p.resolve().parent, env=env, source=str(p))
