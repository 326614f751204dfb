"""The router contract, for every registered router: train → save → load → score → evaluate,
through Python and through the command line; options, abilities and metadata are declared.

A router added to the registry without a fast test set-up in ``SETUPS`` fails
``test_every_router_has_a_setup``, so none can skip these checks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.experiment.evaluation import evaluate_router
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import load_table
from firewall_routing.routers import (
    REGISTRY,
    RouterMetadata,
    load_router,
    make_router,
    router_class,
    router_help,
)
from firewall_routing.routers.base import training_hash

from ..conftest import ToyEncoder
from .test_causal import build_tiny_llama
from .test_encoder import FAST, build_tiny_bert

SETUPS: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "embedding-head": lambda m: {"encoder": "toy", "epochs": 2},
    "random": lambda m: {"seed": 1},
    "oracle": lambda m: {},
    "encoder": lambda m: {"backbone": m["bert"], "epochs": 1, **FAST},
    "causal-lm": lambda m: {"backbone": m["llama"], "epochs": 1, **FAST},
    "mf": lambda m: {"encoder": "toy", "epochs": 2},
    "margin": lambda m: {},
    "knn": lambda m: {"encoder": "toy", "k": 5},
    "ridge": lambda m: {"encoder": "toy", "prior": "none"},
    "irt": lambda m: {"encoder": "toy", "prior": "none"},
}
"""Router name → fast options (toy encoder, tiny backbones) given the tiny model paths."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "bert": str(build_tiny_bert(tmp_path_factory.mktemp("bert"))),
        "llama": str(build_tiny_llama(tmp_path_factory.mktemp("llama"))),
    }


def _outcomes(path: Path) -> Path:
    """40 queries: 'hard' ones the weak model fails; a margin column for ``margin``."""
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        rows.append(
            {
                "id": str(i),
                "prompt": f"{'hard' if hard else 'easy'} question {i}",
                "weak_pass_rate": 0.1 if hard else 0.9,
                "strong_pass_rate": 0.9,
                "margin": 0.1 if hard else 0.8,
                "weak_model": "w",
                "strong_model": "s",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_router_has_a_setup() -> None:
    assert set(SETUPS) == set(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_python_train_save_load_score_evaluate(
    name: str, models: dict[str, str], toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    cls = router_class(name)
    table = load_table(_outcomes(tmp_path / "t.jsonl"))
    router = make_router(name, **SETUPS[name](models))
    labels = compute_labels(table, "soft-block").values
    if cls.trains and not cls.table_only:  # table-only routers learn every model from the table
        router.fit(table.prompts, labels)
    if cls.fits_table:
        router.fit_table(table)
        assert router.metadata.label_design is not None and router.metadata.weak == "w"
    meta = RouterMetadata.for_training(table.prompts, labels, label_design="soft-block", weak="w", strong="s")
    router.save(tmp_path / "r", meta)

    loaded = load_router(tmp_path / "r")
    assert type(loaded) is cls
    assert loaded.config() == router.config()
    if router.model_names:  # save records the models it predicts
        assert loaded.metadata.model_names == router.model_names
        meta = meta.model_copy(update={"model_names": router.model_names})
    meta = RouterMetadata.model_validate(meta.model_dump() | router.trained_info())  # e.g. feature groups
    assert loaded.metadata == meta and loaded.metadata.train_sha256 == training_hash(table.prompts, labels)
    scores = loaded.score_table(table)
    np.testing.assert_array_equal(scores, router.score_table(table))
    assert scores.shape == (40,) and ((scores >= 0) & (scores <= 1)).all()
    if cls.needs_table:
        with pytest.raises(InputError):
            loaded.score(table.prompts)
    else:
        np.testing.assert_array_equal(loaded.score(table.prompts), scores)
    if cls.scores_embeddings:
        from firewall_routing.embeddings import get_encoder

        emb = get_encoder(loaded.encoder).encode(table.prompts)
        np.testing.assert_array_equal(loaded.score_embeddings(emb, table.prompts), scores)
    else:
        with pytest.raises(InputError, match="does not"):
            loaded.score_embeddings(np.zeros((1, 8)))
    result = evaluate_router(loaded, table, n_boot=10)
    assert np.isfinite(result.ev.mean.apgr)


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``firewall-routing ARGS`` in this process (so the toy encoder is registered)."""
    from firewall_routing.cli import main

    monkeypatch.setattr(sys, "argv", ["firewall-routing", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.mark.parametrize("name", list(REGISTRY))
def test_cli_train_then_evaluate(
    name: str,
    models: dict[str, str],
    toy_encoder: ToyEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    f = _outcomes(tmp_path / "t.jsonl")
    opts = json.dumps(SETUPS[name](models))
    out = tmp_path / "r"
    code = _cli(monkeypatch, "train", str(f), "--out", str(out), "--router", name, "--router-options", opts)
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "router.json").read_text())
    assert saved["router"] == name
    assert (saved["metadata"]["weak"], saved["metadata"]["strong"]) == ("w", "s")
    trains = router_class(name).trains
    assert saved["metadata"]["label_design"] == ("soft-block" if trains else None)
    assert (saved["metadata"]["train_rows"] == 36) is trains  # 10 % held out for validation
    capsys.readouterr()
    code = _cli(
        monkeypatch, "evaluate", str(out), str(f), "--bootstrap", "10", "--json", str(tmp_path / "e.json")
    )
    assert code == 0, capsys.readouterr().err
    assert "APGR" in capsys.readouterr().out
    assert np.isfinite(json.loads((tmp_path / "e.json").read_text())["metrics"]["apgr"])


@pytest.mark.parametrize("name", list(REGISTRY))
def test_cli_unknown_option_is_one_line_naming_the_valid_ones(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _outcomes(tmp_path / "t.jsonl")
    args = ("train", str(f), "--out", str(tmp_path / "x"), "--router", name, "--router-options")
    assert _cli(monkeypatch, *args, '{"no_such_option": 1}') == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no_such_option: unknown option" in err and "valid options:" in err
    for option in router_class(name).Options.model_fields:
        assert option in err
    assert not (tmp_path / "x").exists()
    assert _cli(monkeypatch, *args, "help") == 0
    assert capsys.readouterr().out.strip() == router_help(name)


def test_invalid_option_value_and_help_text() -> None:
    with pytest.raises(InputError, match=r"router 'knn': k: .*greater than or equal to 1.*valid options: k"):
        make_router("knn", k=0)
    with pytest.raises(InputError, match="ties"):
        make_router("mf", ties="sometimes")
    text = router_help("mf")
    assert "fits_table" in text and "scores_embeddings" in text
    assert 'ties: "drop" | "half" = "drop"' in text and "epochs: int = 100" in text
    assert "(needs_table)" in router_help("oracle") and "(none)" in router_help("oracle")


def test_seeded_routers_are_those_with_a_seed_option() -> None:
    assert router_class("embedding-head").seeded() and router_class("random").seeded()
    assert not router_class("knn").seeded() and not router_class("oracle").seeded()


def test_old_router_json_with_label_design_in_config_still_loads(
    toy_encoder: ToyEncoder, tmp_path: Path
) -> None:
    """Files written before metadata existed kept ``label_design`` among the options."""
    r = make_router("embedding-head", encoder="toy", epochs=2)
    r.fit(["hard a", "easy b", "hard c", "easy d"], np.array([0.0, 1.0, 0.0, 1.0]))
    r.save(tmp_path / "h")
    doc = json.loads((tmp_path / "h" / "router.json").read_text())
    old = {"router": doc["router"], "config": doc["config"] | {"label_design": "soft-block"}}
    (tmp_path / "h" / "router.json").write_text(json.dumps(old))
    loaded = load_router(tmp_path / "h")
    assert loaded.metadata.label_design == "soft-block" and loaded.metadata.weak is None
    assert loaded.config() == r.config()
    np.testing.assert_array_equal(loaded.score(["hard x"]), r.score(["hard x"]))


def test_evaluate_notes_a_pair_other_than_the_trained_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: router.json records the training pair, and evaluate says when it differs."""
    f = _outcomes(tmp_path / "t.jsonl")
    assert _cli(monkeypatch, "train", str(f), "--out", str(tmp_path / "r"), "--router", "random") == 0
    other = tmp_path / "o.jsonl"
    other.write_text(f.read_text().replace('"weak_model": "w"', '"weak_model": "gpt-4o-mini"'))
    capsys.readouterr()
    assert _cli(monkeypatch, "evaluate", str(tmp_path / "r"), str(other), "--bootstrap", "0") == 0
    assert "trained on w → s (router.json); this table is gpt-4o-mini → s" in capsys.readouterr().err
    assert _cli(monkeypatch, "evaluate", str(tmp_path / "r"), str(f), "--bootstrap", "0") == 0
    assert "note:" not in capsys.readouterr().err


def test_training_hash_is_sha256_of_prompts_and_label_reprs() -> None:
    import hashlib

    expected = hashlib.sha256(b'[["a", "b"], ["0.5", "1.0"]]').hexdigest()
    assert training_hash(["a", "b"], np.array([0.5, 1.0])) == expected
    assert training_hash(["a", "b"], np.array([0.5, 0.9999])) != expected


def test_reproduce_baselines_train_on_the_table_or_not_at_all() -> None:
    from firewall_routing.experiment.run import check_baseline

    assert check_baseline("mf").fits_table and not check_baseline("margin").trains
    with pytest.raises(InputError, match="baseline 'knn' trains on label-design labels"):
        check_baseline("knn")


def test_docs_list_every_router_as_the_routers_command_prints_it() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "routers.md").read_text()
    for name in REGISTRY:
        assert router_help(name) in docs, f"docs/routers.md: rerun `firewall-routing routers` ({name})"
