"""The shared upstream model, its API-key rule, the config-file reader and the error helpers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from firewall_routing.configfiles import read_mapping
from firewall_routing.errors import InputError, input_error_from, validation_problems
from firewall_routing.upstreams import (
    UpstreamConfig,
    UpstreamError,
    default_key_env,
    resolve_api_key,
    warn_literal_keys,
    with_api_key,
)

URL = "http://127.0.0.1:8080/v1"


def test_named_variable_wins_over_the_default_variable_and_a_literal_key() -> None:
    cfg = UpstreamConfig(base_url=URL, model="m", api_key_env="MY_KEY", api_key=SecretStr("literal"))
    env = {"MY_KEY": "from-named", "FIREWALL_ROUTING_WEAK_API_KEY": "from-default"}
    assert resolve_api_key(cfg, "weak", env) == "from-named"


def test_default_variable_then_literal_then_none() -> None:
    assert default_key_env("strong") == "FIREWALL_ROUTING_STRONG_API_KEY"
    literal = UpstreamConfig(base_url=URL, model="m", api_key=SecretStr("literal"))
    assert resolve_api_key(literal, "strong", {"FIREWALL_ROUTING_STRONG_API_KEY": "env"}) == "env"
    assert resolve_api_key(literal, "strong", {"FIREWALL_ROUTING_WEAK_API_KEY": "other side"}) == "literal"
    assert resolve_api_key(UpstreamConfig(base_url=URL, model="m"), "strong", {}) is None


def test_named_variable_unset_or_empty_is_an_input_error_naming_it() -> None:
    cfg = UpstreamConfig(base_url=URL, model="m", api_key_env="MY_KEY")
    for env in ({}, {"MY_KEY": ""}):
        with pytest.raises(InputError, match="MY_KEY is not set") as e:
            resolve_api_key(cfg, "strong", env)
        assert e.value.field == "strong.api_key_env"


def test_with_api_key_stores_a_masked_secret() -> None:
    cfg = with_api_key(UpstreamConfig(base_url=URL, model="m", api_key_env="K"), "weak", {"K": "sk-1"})
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "sk-1"
    assert "sk-1" not in repr(cfg)


def test_openai_provider_needs_a_base_url_litellm_does_not() -> None:
    with pytest.raises(ValidationError, match="base_url is required"):
        UpstreamConfig(model="m")
    assert UpstreamConfig(provider="litellm", model="anthropic/claude").base_url is None
    with pytest.raises(ValidationError, match="http"):
        UpstreamConfig(base_url="ftp://x", model="m")
    assert UpstreamConfig(base_url=URL + "/", model="m").base_url == URL


def test_literal_key_in_a_file_logs_one_deprecation_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_literal_keys(
            {"weak": {"model": "m"}, "strong": {"model": "m", "api_key": "sk-SECRET"}}, "serve.yaml"
        )
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "serve.yaml" in line and "strong.api_key" in line and "api_key_env" in line
    assert "sk-SECRET" not in line


def test_upstream_error_is_one_line_input_error_with_an_openai_body() -> None:
    e = UpstreamError(504, "timeout", "weak upstream timed out")
    assert isinstance(e, InputError) and str(e) == "weak upstream timed out"
    assert e.body()["error"]["code"] == "upstream_timeout" and e.status == 504


# ----------------------------------------------------------------------------- config files


def test_yaml_and_toml_read_to_the_same_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("weak: {model: m}\nn: 2\n")
    (tmp_path / "a.toml").write_text("n = 2\n[weak]\nmodel = 'm'\n")
    assert (
        read_mapping(tmp_path / "a.yaml")
        == read_mapping(tmp_path / "a.toml")
        == {"weak": {"model": "m"}, "n": 2}
    )


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.json", "{}", r"\.yaml, \.yml or \.toml, got '\.json'"),
        ("c.yaml", "- a\n- b\n", "mapping of settings"),
        ("c.toml", "n = = 1", "invalid TOML, cannot parse"),
        ("c.yaml", "a:\n  b: 1\n c: [\n", "invalid YAML, cannot parse"),
    ],
)
def test_unreadable_config_is_one_input_error_naming_the_file(
    tmp_path: Path, name: str, text: str, match: str
) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError, match=match) as e:
        read_mapping(p)
    assert e.value.path == str(p)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_mapping(tmp_path / "none.yaml")


# ----------------------------------------------------------------------------- pydantic errors


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=1)
    name: str


def _error(data: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        _Opts.model_validate(data)
    return e.value


def test_one_bad_field_keeps_its_field_and_row() -> None:
    err = input_error_from(_error({"n": 0, "name": "x"}), path="f.jsonl", row=3)
    assert (err.path, err.row, err.field) == ("f.jsonl", 3, "n")
    assert err.message == "Input should be greater than or equal to 1"


def test_every_bad_field_is_listed_on_one_line() -> None:
    err = input_error_from(_error({"n": 0, "extra": 1}), missing="required setting is missing")
    assert err.field is None and "\n" not in str(err)
    assert str(err).startswith("3 bad settings: ")
    assert "field 'name': required setting is missing" in str(err)
    assert "field 'extra': Extra inputs are not permitted" in str(err)


def test_problems_rename_unknown_fields_on_request() -> None:
    assert validation_problems(_error({"n": 1, "name": "x", "zz": 1}), extra="unknown option") == [
        ("zz", "unknown option")
    ]


# ----------------------------------------------------------------------------- both loaders

SERVE_YAML = """
router: r
weak: {base_url: "http://127.0.0.1:8080/v1", model: small, api_key_env: FR_TEST_WEAK}
strong: {base_url: "http://127.0.0.1:8081/v1", model: big, api_key: sk-in-file}
default_model: firewall@t=0.3
"""


def test_serve_reads_keys_by_the_shared_rule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from firewall_routing.serve.config import load_config

    p = tmp_path / "serve.yaml"
    p.write_text(SERVE_YAML)
    with caplog.at_level(logging.WARNING):
        cfg = load_config(p, env={"FR_TEST_WEAK": "sk-weak"})
    assert cfg.weak.api_key is not None and cfg.weak.api_key.get_secret_value() == "sk-weak"
    assert cfg.strong.api_key is not None and cfg.strong.api_key.get_secret_value() == "sk-in-file"
    assert [r.getMessage() for r in caplog.records if "strong.api_key" in r.getMessage()]
    with pytest.raises(InputError, match="FR_TEST_WEAK is not set") as e:
        load_config(p, env={})
    assert (e.value.path, e.value.field) == (str(p), "weak.api_key_env")


def test_sample_refuses_litellm_and_serve_only_settings(tmp_path: Path) -> None:
    from firewall_routing.sampling.run import make_config

    strong = {"base_url": URL, "model": "s"}
    with pytest.raises(InputError, match="OpenAI-compatible") as e:
        make_config({"weak": {"provider": "litellm", "model": "anthropic/x"}, "strong": strong}, {})
    assert e.value.field == "weak"
    with pytest.raises(InputError, match="timeout: serve-only"):
        make_config({"weak": {"base_url": URL, "model": "w", "timeout": 5}, "strong": strong}, {})
