"""Model-name parsing, scored text, config files and the Python Controller (no model)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from firewall_routing.calibration import calibrate, router_fingerprint, save_calibration
from firewall_routing.errors import InputError
from firewall_routing.routers.random import RandomRouter
from firewall_routing.serve.config import ENV_AUTH_KEYS, ENV_STRONG_KEY, load_config, with_overrides
from firewall_routing.serve.controller import Controller
from firewall_routing.serve.routing import (
    Decider,
    UnknownModel,
    build_decider,
    default_model_for,
    parse_model,
    threshold_outside_scores,
)
from firewall_routing.serve.scoring import (
    completion_prompt_text,
    content_text,
    scored_text,
    user_turns,
)

from .conftest import KeywordScorer, word_count


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [
        ("firewall@30%", "fraction", 30.0),
        ("firewall@0%", "fraction", 0.0),
        ("firewall@100%", "fraction", 100.0),
        ("firewall@t=0.42", "threshold", 0.42),
        ("firewall@t=1", "threshold", 1.0),
        ("firewall@t=.5", "threshold", 0.5),
        ("weak", "weak", None),
        ("strong", "strong", None),
    ],
)
def test_parse_model(name: str, kind: str, value: float | None) -> None:
    op = parse_model(name)
    assert (op.name, op.kind, op.value) == (name, kind, value)


@pytest.mark.parametrize(
    "name", ["firewall@101%", "firewall@30.5%", "firewall@-1%", "firewall@t=", "gpt-4o", "Firewall@30%"]
)
def test_parse_model_rejects(name: str) -> None:
    with pytest.raises(UnknownModel):
        parse_model(name)


def test_scored_text_newest_first_within_budget() -> None:
    turns = ["one two three", "four five", "six"]
    assert scored_text(turns, 100, word_count) == "six\n\nfour five\n\none two three"
    assert scored_text(turns, 3, word_count) == "six\n\nfour five"
    assert scored_text(turns, 1, word_count) == "six"  # the last turn always counts


def test_scored_text_stops_at_first_turn_that_does_not_fit() -> None:
    turns = ["a", "b c d e f", "g"]
    assert scored_text(turns, 3, word_count) == "g"  # no gap-skipping to older turns


def test_user_turns_and_content_parts() -> None:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "u2"}, {"type": "image_url", "image_url": {"url": "x"}}],
        },
        {"role": "user", "content": None},
    ]
    assert user_turns(msgs) == ["u1", "u2"]
    assert content_text(42) == ""
    assert completion_prompt_text(["a", "b"]) == "a\n\nb"
    with pytest.raises(ValueError):
        completion_prompt_text([1, 2])


def test_decider_thresholds_and_forced_sides() -> None:
    cal = calibrate(np.linspace(0, 1, 101))
    d = Decider(KeywordScorer(), cal, "firewall@40%", 256, word_count)
    hard = [{"role": "user", "content": "hard"}]
    dec = d.route(hard)
    assert (dec.route, dec.operating_point, dec.score) == ("strong", "firewall@40%", 0.1)
    assert dec.threshold == pytest.approx(0.395)  # 40.4 of 101 → k = 40: (0.39 + 0.40) / 2
    assert d.route(hard, "firewall@t=0.05").route == "weak"
    forced = d.route(hard, "weak")
    assert forced.forced and forced.route == "weak" and forced.threshold is None
    assert d.route([], "strong").route == "strong"  # forced: nothing to score


def test_decider_0_and_100_percent_are_all_or_nothing() -> None:
    d = Decider(KeywordScorer(), calibrate([0.1, 0.9]), "firewall@t=0.5", 256, word_count)
    easy = [{"role": "user", "content": "easy"}]
    assert d.route([{"role": "user", "content": "hard"}], "firewall@0%").route == "weak"
    assert d.route(easy, "firewall@100%").route == "strong"


def test_default_percent_without_calibration_fails_at_startup(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path)
    with pytest.raises(InputError, match="default_model"):
        build_decider(tmp_path, None, default_model="firewall@30%")


# --------------------------------------------------------------------------- config

YAML = """
router: router
weak: {base_url: "http://127.0.0.1:8080/v1", model: smol}
strong:
  base_url: http://127.0.0.1:8081/v1
  model: big
  api_key: from-file
  timeout: 5
auth_keys: [k1]
default_model: firewall@t=0.3
fallback: true
backend: torch
context_tokens: 128
"""

TOML = """
router = "router"
default_model = "firewall@t=0.3"
[weak]
base_url = "http://127.0.0.1:8080/v1"
model = "smol"
[strong]
base_url = "http://127.0.0.1:8081/v1"
model = "big"
"""


def test_yaml_config_with_relative_router_and_calibration_default(tmp_path: Path) -> None:
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "calibration.json").write_text("{}")
    (tmp_path / "c.yaml").write_text(YAML)
    cfg = load_config(tmp_path / "c.yaml", env={})
    assert cfg.router == tmp_path / "router"
    assert cfg.calibration == tmp_path / "router" / "calibration.json"
    assert cfg.strong.api_key is not None and cfg.strong.api_key.get_secret_value() == "from-file"
    assert (cfg.fallback, cfg.backend, cfg.context_tokens, cfg.strong.timeout) == (True, "torch", 128, 5.0)
    assert "from-file" not in repr(cfg)  # secrets are masked


def test_toml_config_and_env_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(TOML)
    env = {ENV_STRONG_KEY: "sk-env", ENV_AUTH_KEYS: "a, b"}
    cfg = load_config(tmp_path / "c.toml", env=env)
    assert cfg.strong.api_key is not None and cfg.strong.api_key.get_secret_value() == "sk-env"
    assert cfg.auth_secrets() == ["a", "b"]
    assert cfg.weak.api_key is None and cfg.calibration is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "router: r\nweak: {base_url: x, model: m}\nstrong: {base_url: http://s, model: m}\n",
            "field 'weak.base_url': .*http://",
        ),
        ("router: r\nweak: {base_url: http://w, model: m}\n", "field 'strong': required"),
        (
            "router: r\nweak: {base_url: http://w, model: m}\nstrong: {base_url: http://s, model: m}\n"
            "backend: cuda\n",
            "field 'backend'",
        ),
        (
            "router: r\nweak: {base_url: http://w, model: m}\nstrong: {base_url: http://s, model: m}\n"
            "default_model: gpt-4\n",
            "field 'default_model': unknown model",
        ),
        (
            "router: r\nweak: {base_url: http://w, model: m}\nstrong: {base_url: http://s, model: m}\n"
            "max_body_bytes: 0\n",
            "field 'max_body_bytes'",
        ),
        (
            "router: r\nweak: {base_url: http://w, model: m}\nstrong: {base_url: http://s, model: m}\n"
            "colour: blue\n",
            "field 'colour'",
        ),
        ("[not yaml", "cannot parse"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(tmp_path / "c.yaml", env={})


def test_bad_config_lists_every_bad_field_at_once(tmp_path: Path) -> None:
    """Issue 12: the check used to stop at the first bad field, so users fixed one per run."""
    (tmp_path / "c.yaml").write_text(
        "weak: {base_url: http://w, model: m}\nstrong: {base_url: http://s, model: m}\n"
        "port: 99999\ncolour: blue\n"
    )
    with pytest.raises(InputError) as e:
        load_config(tmp_path / "c.yaml", env={})
    msg = str(e.value)
    assert "3 bad settings" in msg and "\n" not in msg
    assert "field 'router': required setting is missing" in msg
    assert "field 'port'" in msg and "field 'colour'" in msg


def test_serve_help_example_is_a_valid_config_and_names_every_setting(tmp_path: Path) -> None:
    """`serve --help` is all a pip user has (docs/ is not installed): its example must load."""
    from firewall_routing.serve.commands import SERVE_EPILOG
    from firewall_routing.serve.config import ServeConfig

    example = [ln[2:] for ln in SERVE_EPILOG.splitlines() if ln.startswith("  ")]
    (tmp_path / "routers" / "mine").mkdir(parents=True)
    (tmp_path / "c.yaml").write_text("\n".join(example).replace("firewall@30%", "firewall@t=0.5"))
    cfg = load_config(tmp_path / "c.yaml", env={})
    assert cfg.weak.model == "small" and cfg.strong.model == "big"
    for name in ServeConfig.model_fields:
        assert name in SERVE_EPILOG, name


def test_config_suffix_must_be_yaml_or_toml(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(InputError, match="yaml"):
        load_config(tmp_path / "c.json")


# --------------------------------------------------------------------------- Controller


def test_controller_routes_and_calls_chosen_upstream(monkeypatch: Any) -> None:
    seen: list[tuple[str, str]] = []

    import httpx2  # what the openai client speaks

    def handler(request: httpx2.Request) -> httpx2.Response:
        import json

        body = json.loads(request.content)
        seen.append((request.url.host, body["model"]))
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
                ],
            },
        )

    import openai

    real = openai.OpenAI

    def patched(**kw: Any) -> Any:
        return real(**kw, http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))

    monkeypatch.setattr(openai, "OpenAI", patched)
    decider = Decider(KeywordScorer(), calibrate(np.linspace(0, 1, 11)), "firewall@t=0.5", 256, word_count)
    ctl = Controller(
        router="unused",
        weak={"base_url": "http://w.test/v1", "model": "small"},
        strong={"base_url": "http://s.test/v1", "model": "big"},
        decider=decider,
    )
    msgs = [{"role": "user", "content": "easy"}]
    assert ctl.route(msgs, operating_point="firewall@30%").route == "weak"
    out = ctl.chat.completions.create(model="firewall@95%", messages=msgs)
    assert out.choices[0].message.content == "ok" and out.model == "big"
    ctl.chat.completions.create(model="firewall@t=0.5", messages=msgs)
    assert seen == [("s.test", "big"), ("w.test", "small")]


def test_docs_config_example_is_valid(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    block = docs.split("`serve.yaml` (relative paths")[1].split("```yaml\n")[1].split("```")[0]
    (tmp_path / "serve.yaml").write_text(block)
    cfg = load_config(tmp_path / "serve.yaml", env={ENV_STRONG_KEY: "sk-x"})
    assert cfg.router == tmp_path / "runs" / "r1"
    assert (cfg.default_model, cfg.backend, cfg.fallback) == ("firewall@30%", "onnx", False)
    assert cfg.strong.api_key is not None and cfg.auth_secrets() == ["change-me"]


class _HeadLike(RandomRouter):
    """Looks like an embedding-head router to make_scorer, without any model."""

    scores_embeddings = True
    encoder = "all-MiniLM-L6-v2"

    def score_embeddings(self, emb: Any, texts: Any = None) -> Any:
        return np.zeros(len(emb))


def test_onnx_backend_without_runtime_is_a_clear_input_error(monkeypatch: Any) -> None:
    import sys

    from firewall_routing.serve.scoring import make_scorer

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(InputError, match="onnxruntime"):
        make_scorer(_HeadLike(), "onnx")


def test_onnx_backend_refuses_other_encoders_and_other_routers_use_score() -> None:
    from firewall_routing.serve.scoring import make_scorer

    router = _HeadLike()
    router.encoder = "intfloat/e5-small"
    with pytest.raises(InputError, match="set backend to torch"):
        make_scorer(router, "onnx")
    plain = make_scorer(RandomRouter(seed=2), "onnx")
    assert plain.backend == "router:random"
    assert np.array_equal(plain(["a", "b"]), RandomRouter(seed=2).score(["a", "b"]))


# --------------------------------------------------------------------------- issue 12: defaults, warnings


SERVE_YAML = """
router: r
weak: {base_url: "http://127.0.0.1:8080/v1", model: smol}
strong: {base_url: "http://127.0.0.1:8081/v1", model: big}
"""


def test_default_model_is_30_percent_when_calibrated_and_an_error_otherwise(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path / "r")
    (tmp_path / "c.yaml").write_text(SERVE_YAML)
    cfg = load_config(tmp_path / "c.yaml", env={})
    assert cfg.default_model is None  # was firewall@t=0.5, whatever the router's scores
    with pytest.raises(InputError, match=r"default_model.*calibrate"):
        build_decider(cfg.router, cfg.calibration, default_model=cfg.default_model)
    cal = calibrate(np.linspace(0.0, 1.0, 101))
    assert default_model_for(None, calibrated=True) == "firewall@30%"
    assert build_decider(cfg.router, cal, default_model=None).default.name == "firewall@30%"
    assert build_decider(cfg.router, cal, default_model="firewall@t=0.2").default.name == "firewall@t=0.2"


def test_controller_default_follows_the_same_rule(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path)
    up = {"base_url": "http://w.test/v1", "model": "m"}
    ctl = Controller(router=tmp_path, calibration=calibrate(np.linspace(0, 1, 101)), weak=up, strong=up)
    assert ctl.decider.default.name == "firewall@30%"
    with pytest.raises(InputError, match="default_model"):
        Controller(router=tmp_path, weak=up, strong=up)


def test_controller_picks_up_the_routers_calibration_file_as_serve_does(tmp_path: Path) -> None:
    """Issue 25: ``Controller(router=dir)`` stopped with "run calibrate" though
    ``dir/calibration.json`` existed; ``serve`` used it."""
    RandomRouter().save(tmp_path)
    cal = calibrate(np.linspace(0, 1, 150), router=str(tmp_path), router_sha256=router_fingerprint(tmp_path))
    save_calibration(cal, tmp_path)
    up = {"base_url": "http://w.test/v1", "model": "m"}
    ctl = Controller(router=tmp_path, weak=up, strong=up)
    assert ctl.decider.default.name == "firewall@30%"
    assert ctl.decider.calibration is not None and ctl.decider.calibration.n == 150
    (tmp_path / "serve.yaml").write_text(f"router: {tmp_path}\nweak: {up}\nstrong: {up}\n")
    served = Controller.from_config(load_config(tmp_path / "serve.yaml", env={}))
    assert served.decider.calibration is not None and served.decider.calibration.n == 150


def test_threshold_outside_calibrated_scores_is_flagged() -> None:
    cal = calibrate(np.linspace(0.477, 0.512, 200))  # a router whose scores sit in a narrow band
    assert "all goes weak" in (threshold_outside_scores(0.42, cal) or "")
    assert "all goes weak" in (threshold_outside_scores(0.477, cal) or "")  # nothing is < min
    assert "all goes strong" in (threshold_outside_scores(0.6, cal) or "")
    assert threshold_outside_scores(0.5, cal) is None
    assert threshold_outside_scores(0.42, None) is None  # no calibration: no range known


def test_raw_default_threshold_outside_scores_warns_at_startup(tmp_path: Path, caplog: Any) -> None:
    RandomRouter().save(tmp_path)
    cal = calibrate(np.linspace(0.477, 0.512, 200))
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve"):
        build_decider(tmp_path, cal, default_model="firewall@t=0.42")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("firewall@t=0.42" in w and "[0.4770, 0.5120]" in w for w in warnings), warnings


def test_loaded_calibration_is_logged_and_a_changed_router_warned(tmp_path: Path, caplog: Any) -> None:
    RandomRouter(seed=1).save(tmp_path)
    cal = calibrate(np.linspace(0, 1, 150), router=str(tmp_path), router_sha256=router_fingerprint(tmp_path))
    path = save_calibration(cal, tmp_path)
    up = {"base_url": "http://w.test/v1", "model": "m"}
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve"):
        Controller(router=tmp_path, calibration=path, weak=up, strong=up)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(str(path) in m and "150 prompts" in m for m in infos), infos
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    RandomRouter(seed=2).save(tmp_path)  # retrained in place: the thresholds are stale
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve"):
        build_decider(tmp_path, path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("was made for router" in w for w in warnings), warnings


# --------------------------------------------------------------------------- issue 12: CLI overrides, keep-alive


def test_command_line_port_is_validated_like_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(SERVE_YAML)
    cfg = load_config(tmp_path / "c.yaml", env={})
    with pytest.raises(InputError, match=r"field '--port'.*65535"):
        with_overrides(cfg, port=99999)
    assert with_overrides(cfg, port=9001, host=None).port == 9001
    assert with_overrides(cfg, host=None, port=None) is cfg


def test_serve_cli_bad_port_is_one_line_exit_2(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path / "r")
    (tmp_path / "c.yaml").write_text(SERVE_YAML + "default_model: firewall@t=0.5\n")
    config = str(tmp_path / "c.yaml")
    cmd = [sys.executable, "-m", "firewall_routing.cli", "serve", "--config", config, "--port", "99999"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().count("\n") == 0 and "--port" in res.stderr


def test_serve_keeps_idle_connections_longer_than_client_pools(tmp_path: Path, monkeypatch: Any) -> None:
    """httpx/openai pools drop idle connections after 5 s; the server must not close first."""
    import uvicorn

    from firewall_routing.serve import app as app_module
    from firewall_routing.serve.commands import serve

    (tmp_path / "c.yaml").write_text(SERVE_YAML)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app_module, "create_app", lambda cfg: "app")
    monkeypatch.setattr(app_module, "configure_logging", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serve(config=tmp_path / "c.yaml", host=None, port=None)
    assert seen["timeout_keep_alive"] == 75 > httpx.Limits().keepalive_expiry  # type: ignore[operator]
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8000)


def test_upstream_pool_drops_idle_connections_before_the_upstream_does() -> None:
    """uvicorn and llama.cpp close idle connections after 5 s; httpx's default is also 5 s."""
    from firewall_routing.serve.config import UpstreamConfig
    from firewall_routing.serve.upstream import make_client

    cfg = UpstreamConfig(base_url="http://u.test/v1", model="m")
    client = make_client(cfg)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == cfg.keepalive_expiry == 2.0 < 5.0
    custom = make_client(UpstreamConfig(base_url="http://u.test/v1", model="m", keepalive_expiry=0.5))
    assert custom._transport._pool._keepalive_expiry == 0.5  # type: ignore[attr-defined]
