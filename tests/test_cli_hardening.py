"""Issue 24, defect 7: every CLI case that gave a traceback, a silent mixed directory or a
useless exit 0 is now one line and exit 2 (in process through ``cli.main``, as installed)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.cli import main
from firewall_routing.routers.random import RandomRouter

ROUTERDC = Path(__file__).resolve().parents[1] / "data/routerdc/gsm8k-train.json"
PAIR = ["--weak", "HuggingFaceH4/zephyr-7b-beta", "--strong", "cognitivecomputations/dolphin-2.9-llama3-8b"]


def cli(monkeypatch: Any, capsys: Any, *args: str) -> tuple[int, str]:
    """(exit status, stderr) of ``firewall-routing ARGS``."""
    monkeypatch.setattr(sys, "argv", ["firewall-routing", *args])
    with pytest.raises(SystemExit) as e:
        main()
    code = e.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def table(path: Path, rows: int, weak: Any = None, strong: Any = 1.0) -> Path:
    with path.open("w") as f:
        for i in range(rows):
            w = (i % 3) / 2 if weak is None else weak
            f.write(
                json.dumps({"prompt": f"question {i}", "weak_pass_rate": w, "strong_pass_rate": strong})
                + "\n"
            )
    return path


# --------------------------------------------------------------------------- train --out


def test_train_refuses_an_existing_router_dir_without_force(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = table(tmp_path / "t.jsonl", 30)
    out = tmp_path / "r"
    assert cli(monkeypatch, capsys, "train", str(data), "--out", str(out), "--router", "knn")[0] == 0
    (out / "calibration.json").write_text("{}")  # a calibration for the old scores
    code, err = cli(monkeypatch, capsys, "train", str(data), "--out", str(out), "--router", "knn")
    assert code == 2 and "--force" in one_error_line(err)
    code, _ = cli(monkeypatch, capsys, "train", str(data), "--out", str(out), "--router", "knn", "--force")
    assert code == 0
    assert not (out / "calibration.json").exists()  # replaced whole: no mixed directory
    assert (out / "router.json").is_file()


def test_train_refuses_an_existing_file_and_a_foreign_directory(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = table(tmp_path / "t.jsonl", 30)
    (tmp_path / "file").write_text("precious")
    code, err = cli(monkeypatch, capsys, "train", str(data), "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file" in one_error_line(err)
    assert (tmp_path / "file").read_text() == "precious"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    code, err = cli(monkeypatch, capsys, "train", str(data), "--out", str(tmp_path / "mine"), "--force")
    assert code == 2 and "no saved router" in one_error_line(err)
    assert (tmp_path / "mine" / "notes.txt").exists()


@pytest.mark.parametrize("out", ["/proc/x", "/proc/x/y"])
def test_train_to_an_unwritable_place_fails_before_training(
    tmp_path: Path, monkeypatch: Any, capsys: Any, out: str
) -> None:
    data = table(tmp_path / "t.jsonl", 30)
    code, err = cli(monkeypatch, capsys, "train", str(data), "--out", out)
    assert code == 2 and "cannot write" in one_error_line(err)


def test_evaluate_json_to_an_unwritable_place_fails_before_the_metrics(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = table(tmp_path / "t.jsonl", 30)
    code, err = cli(monkeypatch, capsys, "evaluate", "random", str(data), "--json", "/proc/x.json")
    assert code == 2 and "cannot write" in one_error_line(err)
    assert "APGR" not in capsys.readouterr().out


@pytest.mark.parametrize("n", ["1000000000", "100001"])
def test_bootstrap_is_bounded(tmp_path: Path, monkeypatch: Any, capsys: Any, n: str) -> None:
    data = table(tmp_path / "t.jsonl", 30)
    code, err = cli(monkeypatch, capsys, "evaluate", "random", str(data), "--bootstrap", n)
    assert code == 2 and "bootstrap" in one_error_line(err)


def test_bootstrap_memory_is_bounded_by_rows_too() -> None:
    from firewall_routing.errors import MetricError
    from firewall_routing.metrics import MAX_DRAW_CELLS, bootstrap_draws

    with pytest.raises(MetricError, match="at most 500 here"):
        bootstrap_draws(MAX_DRAW_CELLS // 500, 501)


# --------------------------------------------------------------------------- nothing to learn


@pytest.mark.parametrize(
    ("rows", "weak", "strong", "why"),
    [(1, None, 1.0, "only 1 training rows"), (2, None, 1.0, "only"), (30, 0.0, 0.0, "nothing to learn")],
)
def test_train_on_too_few_rows_or_constant_labels_is_an_error(
    tmp_path: Path, monkeypatch: Any, capsys: Any, rows: int, weak: Any, strong: Any, why: str
) -> None:
    data = table(tmp_path / "t.jsonl", rows, weak, strong)
    code, err = cli(monkeypatch, capsys, "train", str(data), "--out", str(tmp_path / "r"), "--router", "knn")
    assert code == 2 and why in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_train_with_weak_equal_to_strong_is_an_error(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    model = PAIR[1]
    args = ["train", str(ROUTERDC), "--out", str(tmp_path / "r"), "--weak", model, "--strong", model]
    code, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and "both" in one_error_line(err)


def test_evaluate_on_one_row_is_an_error(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    data = table(tmp_path / "t.jsonl", 1)
    code, err = cli(monkeypatch, capsys, "evaluate", "random", str(data))
    assert code == 2 and "only 1 rows" in one_error_line(err)


# --------------------------------------------------------------------------- calibrate, serve


def test_calibrate_names_a_missing_prompts_file_first(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    RandomRouter(seed=0).save(tmp_path / "r")
    (tmp_path / "r" / "calibration.json").write_text("{}")
    code, err = cli(monkeypatch, capsys, "calibrate", str(tmp_path / "r"), str(tmp_path / "missing.txt"))
    line = one_error_line(err)
    assert code == 2 and "missing.txt" in line and "file not found" in line


def test_serve_on_a_port_in_use_is_one_line_before_the_router_loads(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    (tmp_path / "c.yaml").write_text(
        "router: nowhere\nweak: {base_url: 'http://127.0.0.1:1/v1', model: w}\n"
        "strong: {base_url: 'http://127.0.0.1:1/v1', model: s}\ndefault_model: firewall@t=0.5\n"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = cli(
            monkeypatch, capsys, "serve", "--config", str(tmp_path / "c.yaml"), "--port", str(port)
        )
    line = one_error_line(err)
    assert code == 2 and f"127.0.0.1:{port}" in line and "in use" in line  # not "router not found"
