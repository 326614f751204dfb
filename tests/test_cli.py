"""The command line as a user meets it: help, exit codes, one-line errors, real runs."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import pytest

from .conftest import DATA

W, S = "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.9-llama3-8b"


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _commands() -> list[str]:
    from firewall_routing.cli import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    return [n.replace("_", "-") for n in names]


def test_help_everywhere_and_lazy_imports() -> None:
    top = run("--help")
    assert top.returncode == 0 and "reproduce" in top.stdout
    for cmd in _commands():
        r = run(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert "Usage" in r.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, firewall_routing.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'fastapi') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "[]"


def _assert_clean_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_malformed_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "a", "weak_pass_rate": 0.5, "strong_pass_rate": 0.5}\n'
        '{"prompt": "b", "weak_pass_rate": 1.5, "strong_pass_rate": 0.5}\n'
    )
    _assert_clean_error(
        run("labels", str(bad), "--out", str(tmp_path / "l.jsonl")),
        f"{bad}:2",
        "weak_pass_rate",
        "outside [0, 1]",
    )


def test_empty_file_and_bad_json(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    _assert_clean_error(run("evaluate", "random", str(empty)), str(empty), "empty")
    broken = tmp_path / "b.json"
    broken.write_text("[{")
    _assert_clean_error(run("labels", str(broken), "--weak", W, "--strong", S), "invalid JSON")


def test_unknown_model_lists_available() -> None:
    f = DATA / "routerdc" / "mbpp.json"
    _assert_clean_error(
        run("labels", str(f), "--weak", "no/such", "--strong", S),
        "unknown model 'no/such'",
        "mistralai/Mistral-7B-v0.1",
    )


def test_unknown_design_and_router(tmp_path: Path) -> None:
    f = DATA / "routellm" / "gsm8k_responses.csv"
    _assert_clean_error(run("labels", str(f), "--design", "nope"), "unknown label design")
    _assert_clean_error(run("evaluate", str(tmp_path), str(f)), "not a saved router")


def test_labels_writes_every_row_and_reports_approximation(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    r = run(
        "labels",
        str(DATA / "routerdc" / "humaneval_test.json"),
        "--weak",
        W,
        "--strong",
        S,
        "--design",
        "hard",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 49 and {"id", "prompt", "label"} <= rows[0].keys()
    assert all(x["label"] in (0.0, 1.0) for x in rows)
    assert "approximation" in r.stderr and "majority" in r.stderr


def test_evaluate_oracle_and_random_on_routellm() -> None:
    f = str(DATA / "routellm" / "gsm8k_responses.csv")
    o = run("evaluate", "oracle", f, "--bootstrap", "200")
    assert o.returncode == 0, o.stderr
    assert "APGR (11-point)" in o.stdout and "both-fail" in o.stdout
    rnd = run("evaluate", "random", f, "--bootstrap", "0")
    assert rnd.returncode == 0

    def apgr(out: str) -> float:
        return float(next(x for x in out.splitlines() if "APGR (11-point)" in x).split()[2])

    assert apgr(o.stdout) > apgr(rnd.stdout)


def test_train_then_evaluate_generic_file(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        rows.append(
            {
                "prompt": f"{'Prove the theorem' if hard else 'Add the numbers'} {i}",
                "weak_pass_rate": 0.1 if hard else 0.9,
                "strong_pass_rate": 0.9,
            }
        )
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("train", str(f), "--out", str(tmp_path / "router"), "--design", "soft-block")
    assert r.returncode == 0, r.stderr
    e = run("evaluate", str(tmp_path / "router"), str(f), "--json", str(tmp_path / "m.json"))
    assert e.returncode == 0, e.stderr
    # issue 12: transformers' "Loading weights" bars leaked into every command's stderr
    assert "Loading weights" not in r.stderr + e.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["metrics"]["apgr"] > 60  # the two prompt kinds are easy to tell apart


def test_reproduce_small_run(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = run(
        "reproduce",
        "--out",
        str(out),
        "--datasets",
        "humaneval",
        "--designs",
        "soft-block,hard",
        "--seeds",
        "1",
        "--bootstrap",
        "100",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wall time:" in r.stdout
    res = json.loads((out / "results.json").read_text())
    names = {(x["router"], x["pair"]) for x in res["results"]}
    assert ("soft-block", "main") in names and ("oracle", "gen") in names
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report and "majority" in report
    for png in ("deferral-main.png", "bins-main-humaneval.png", "bins-gen-humaneval.png"):
        assert (out / "plots" / png).stat().st_size > 10_000
    assert (out / "routers" / "soft-block" / "router.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--datasets", "nope"],
        ["--designs", "nope"],
        ["--router-options", "[1]"],
        ["--router-options", '{"encoder": 3}'],
    ],
)
def test_reproduce_bad_options(tmp_path: Path, args: list[str]) -> None:
    r = run("reproduce", "--out", str(tmp_path / "x"), *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("paper", "key", "value"), [(False, "encoder", "static"), (True, "pooling", "cls")])
def test_reproduce_passes_router_options_to_the_trained_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper: bool, key: str, value: str
) -> None:
    """``--router-options '{"encoder": "static"}'`` reaches the experiment's router (the
    static encoder's APGR in docs/routers.md comes from exactly this)."""
    from typer.testing import CliRunner

    from firewall_routing.cli import app
    from firewall_routing.experiment import run as run_module

    seen: list[Any] = []
    monkeypatch.setattr(run_module, "run", lambda cfg, work, shown=None: seen.append(cfg))
    args = ["reproduce", "--out", str(tmp_path / "o"), "--router-options", json.dumps({key: value})]
    result = CliRunner().invoke(app, args + (["--paper"] if paper else []))
    assert result.exit_code == 0, result.output
    assert seen[0].router_options[key] == value
    assert seen[0].router == ("encoder" if paper else "ridge")


def test_train_router_options(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "weak_pass_rate": (i % 3) / 2, "strong_pass_rate": 1.0} for i in range(20)]
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok = run(
        "train",
        str(f),
        "--out",
        str(tmp_path / "r"),
        "--router",
        "embedding-head",
        "--router-options",
        '{"epochs": 2, "hidden": 0}',
    )
    assert ok.returncode == 0, ok.stderr
    cfg = json.loads((tmp_path / "r" / "router.json").read_text())["config"]
    assert cfg["epochs"] == 2 and cfg["hidden"] == 0
    _assert_clean_error(
        run(
            "train",
            str(f),
            "--out",
            str(tmp_path / "x"),
            "--router",
            "embedding-head",
            "--router-options",
            '{"epoch": 2}',
        ),
        "epoch: unknown option",
        "valid options:",
        "epochs",
    )
    _assert_clean_error(
        run("train", str(f), "--out", str(tmp_path / "x"), "--router-options", "{bad"),
        "not valid JSON",
    )


# --------------------------------------------------------------------------- issue 12: the installed script


def _installed_script() -> str:
    """The console script pip installed next to this interpreter (what a user runs)."""
    found = shutil.which("firewall-routing", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            f"no firewall-routing script next to {sys.executable}: install the package (make install)"
        )
    return found


def run_installed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed script on the source under test (PYTHONPATH first on sys.path)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    full = base | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": src} | (env or {})
    return subprocess.run([_installed_script(), *args], capture_output=True, text=True, timeout=120, env=full)


@dataclass(frozen=True)
class _Param:
    flag: str  # "--seed", or the argument's name
    kind: type
    required: bool
    argument: bool


def _params(callback: Callable[..., Any]) -> list[_Param]:
    """A command's parameters read from its signature (public typing, not typer internals)."""
    hints = get_type_hints(callback, include_extras=True)
    out = []
    for name, p in inspect.signature(callback).parameters.items():
        hint = hints[name]
        info = next((m for m in getattr(hint, "__metadata__", ()) if hasattr(m, "param_decls")), None)
        base = get_args(hint)[0] if get_origin(hint) is Annotated else hint
        kinds = [a for a in get_args(base) if a is not type(None)] or [base]
        argument = type(info).__name__ == "ArgumentInfo"
        decls = [d for d in (getattr(info, "param_decls", None) or ()) if d.startswith("--")]
        flag = name if argument else (decls[0] if decls else "--" + name.replace("_", "-"))
        out.append(_Param(flag, kinds[0], p.default is inspect.Parameter.empty, argument))
    return out


def _bad_invocations() -> list[tuple[str, list[str], str]]:
    """(command, argv, text the one-line error must contain) for every command of the app."""
    from firewall_routing.cli import app

    cases: list[tuple[str, list[str], str]] = []
    for info in app.registered_commands:
        assert info.callback is not None
        cmd = info.name or info.callback.__name__.replace("_", "-")
        params = _params(info.callback)
        cases.append((cmd, [cmd, "--no-such-option-xyz"], "--no-such-option-xyz"))
        cases.append((cmd, [cmd[:-1] + cmd[-1] * 2], "No such command"))
        if any(p.required for p in params):
            cases.append((cmd, [cmd], "Missing"))
        for p in params:
            if not p.argument and p.kind in (int, float):
                cases.append((cmd, [cmd, p.flag, "abc"], p.flag))
    return cases


_ISSUE_REPRODUCTIONS = [
    ("train", ["train", "my.jsonl"], "--out"),
    ("train", ["train", "x.jsonl", "--out", "r", "--sede", "3"], "--sede"),
    ("train", ["train", "x.jsonl", "--out", "r", "--seed", "abc"], "--seed"),
    ("traain", ["traain"], "No such command"),
    ("evaluate", ["evaluate", "routers/mine"], "Missing argument"),
    ("reproduce", ["reproduce", "--seeds", "0"], "--seeds"),
]


def _assert_usage_error(argv: list[str], code: int, stdout: str, stderr: str, needle: str) -> None:
    assert code == 2, (argv, code, stderr[-500:])
    assert "Traceback" not in stderr, (argv, stderr[-500:])
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, (argv, stderr)
    assert lines[0].startswith("error: ") and needle in lines[0], (argv, lines[0])
    assert stdout == "", (argv, stdout)


def test_installed_script_bad_arguments_one_line_exit_2() -> None:
    """Usage mistakes for every command, through the real console script.

    Before issue 12 each of these printed a ~40-line traceback and exited 1: typer 0.29
    vendors click, and cli.main caught only click.exceptions.ClickException. One kind of
    mistake per command here (a process each); all kinds run in-process below.
    """
    from concurrent.futures import ThreadPoolExecutor

    cases = [(argv, n) for _, argv, n in _bad_invocations() if argv[1:] == ["--no-such-option-xyz"]]
    assert {"labels", "train", "evaluate", "reproduce"} <= {argv[0] for argv, _ in cases}
    cases += [(argv, n) for _, argv, n in _ISSUE_REPRODUCTIONS]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: run_installed(*c[0]), cases))
    for (argv, needle), r in zip(cases, results, strict=True):
        _assert_usage_error(argv, r.returncode, r.stdout, r.stderr, needle)


def test_every_usage_mistake_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command × {unknown option, misspelt command, missing argument, each numeric
    option given 'abc'} through ``cli.main`` (what the console script calls)."""
    from firewall_routing import cli

    cases = _bad_invocations() + _ISSUE_REPRODUCTIONS
    assert len(cases) > 3 * len({c for c, _, _ in cases}) - 1
    for _, argv, needle in cases:
        monkeypatch.setattr(sys, "argv", ["firewall-routing", *argv])
        with pytest.raises(SystemExit) as e:
            cli.main()
        out = capsys.readouterr()
        _assert_usage_error(argv, int(e.value.code or 0), out.out, out.err, needle)


def test_usage_error_classes_cover_the_installed_typer() -> None:
    """The classes main() catches include the base of what the installed typer raises."""
    import typer.main

    from firewall_routing.cli import _usage_error_types, app

    group = typer.main.get_command(app)
    with pytest.raises(Exception) as e:
        group.main(["traain"], prog_name="firewall-routing", standalone_mode=False)
    assert isinstance(e.value, _usage_error_types()), type(e.value).__mro__


@pytest.mark.parametrize("columns", [None, "50"])
def test_help_is_plain_complete_and_self_contained(columns: str | None) -> None:
    """No "<bool>" on flags, no rich markup eating "[...]", no default cut at the width,
    designs listed (a pip install has no DESIGN.md); COLUMNS unset (as in a pipe) and narrow."""
    from concurrent.futures import ThreadPoolExecutor

    from firewall_routing.cli import app
    from firewall_routing.labels import DESIGNS

    env = {} if columns is None else {"COLUMNS": columns}
    cmds = [i.name or i.callback.__name__.replace("_", "-") for i in app.registered_commands if i.callback]
    argvs = [["--help"], *[[c, "--help"] for c in cmds]]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda argv: run_installed(*argv, env=env), argvs))
    texts: dict[str, str] = {}
    for argv, r in zip(argvs, results, strict=True):
        assert r.returncode == 0 and r.stderr == "", (argv, r.stderr)
        text = texts[argv[0]] = " ".join(r.stdout.split())
        assert "<bool>" not in text and "…" not in text, (argv, r.stdout)
        assert "DESIGN.md" not in text and "docs/" not in text, argv  # neither is installed
        for chunk in text.split("[default: ")[1:]:
            assert "]" in chunk, (argv, chunk[:80])
    for cmd in ("labels", "train"):
        for design in DESIGNS:
            assert f" {design} " in texts[cmd], (cmd, design)
    rep = texts["reproduce"].replace("- -paper", "--paper")
    assert "[default: (3; 1 with --paper)" in rep  # was: no default shown at all
    assert "'majority' (1[pass rate ≥ 0.5], reported)" in texts["train"]  # was eaten as markup
    top = texts["--help"]
    assert "Score a router on an outcome file and print the metrics table." in top
    assert "..." not in top.replace("[ARGS]...", "")  # no command summary cut short


def test_design_names_for_help_match_labels() -> None:
    from firewall_routing.designs import DESIGN_FORMULAS, DESIGN_NAMES
    from firewall_routing.labels import DESIGN_TITLES, DESIGNS

    assert list(DESIGN_FORMULAS) == list(DESIGNS) == list(DESIGN_TITLES) == list(DESIGN_NAMES)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["labels", "x.csv", "--greedy-approx", "mode"], "--greedy-approx"),
        (["labels", "x.csv", "--pairing-approx", "paired"], "--pairing-approx"),
        (["reproduce", "--greedy-approx", "mode"], "--greedy-approx"),
        (["calibrate", "r", "p.txt", "--backend", "tpu"], "--backend"),
    ],
)
def test_fixed_choices_are_checked_by_their_type(argv: list[str], option: str) -> None:
    """Literal-typed options: the command line rejects other values before any work, exit 2."""
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and option in r.output and "is not one of" in r.output, r.output


def test_labels_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    f = DATA / "routellm" / "gsm8k_responses.csv"
    out = tmp_path / "l.jsonl"
    out.write_text("precious\n")
    _assert_clean_error(run("labels", str(f), "--out", str(out)), str(out), "--force")
    assert out.read_text() == "precious\n"
    r = run("labels", str(f), "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) == 1319


def test_reproduce_refuses_non_empty_out_and_bad_seeds(tmp_path: Path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "report.md").write_text("previous run\n")
    _assert_clean_error(run("reproduce", "--out", str(out)), str(out), "--force", "--resume")
    _assert_clean_error(run("reproduce", "--out", str(out), "--resume", "--force"), "pass one")
    _assert_clean_error(run("reproduce", "--seeds", "0", "--out", str(tmp_path / "n")), "--seeds")
    assert (out / "report.md").read_text() == "previous run\n"
    assert not (tmp_path / "n").exists()


def test_evaluate_swapped_pair_is_undefined_not_negative() -> None:
    """Strong worse than weak: APGR used to print −106-ish numbers; now one clear line."""
    f = str(DATA / "routellm" / "gsm8k_responses.csv")
    w, s = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    _assert_clean_error(
        run("evaluate", "oracle", f, "--weak", s, "--strong", w, "--bootstrap", "0"),
        "undefined",
        "swap --weak and --strong",
    )


def test_evaluate_generic_file_checks_weak_strong(tmp_path: Path) -> None:
    f = tmp_path / "g.jsonl"
    row = {"prompt": "x", "weak_pass_rate": 0.2, "strong_pass_rate": 0.8}
    f.write_text(json.dumps(row) + "\n")
    _assert_clean_error(
        run("evaluate", "random", str(f), "--weak", "gpt-4o-mini", "--strong", "foo"),
        "does not name its models",
    )
    f.write_text(json.dumps(row | {"weak_model": "gpt-4o-mini", "strong_model": "gpt-4o"}) + "\n")
    _assert_clean_error(
        run("evaluate", "random", str(f), "--weak", "gpt-4o-mini", "--strong", "foo"),
        "--strong 'foo'",
        "gpt-4o",
    )


def test_evaluate_without_bootstrap_claims_no_ci() -> None:
    f = str(DATA / "routellm" / "gsm8k_responses.csv")
    r = run("evaluate", "oracle", f, "--bootstrap", "0")
    assert r.returncode == 0, r.stderr
    assert "bootstrap" not in r.stdout and "[" not in r.stdout
    r = run("evaluate", "oracle", f, "--bootstrap", "50")
    assert "(95 % bootstrap CI)" in r.stdout


def test_validation_errors_list_every_bad_option() -> None:
    from pydantic import BaseModel, Field, ValidationError

    from firewall_routing.cli import _validation_summary

    class Opts(BaseModel):
        port: int = Field(le=65535)
        workers: int = Field(ge=1)

    with pytest.raises(ValidationError) as e:
        Opts(port=99999, workers=0)
    line = _validation_summary(e.value)
    assert "option 'port'" in line and "option 'workers'" in line and "\n" not in line


def test_train_and_evaluate_say_what_runs_during_long_steps(tmp_path: Path, toy_encoder: Any) -> None:
    """Issue 25: ``train`` was silent for 14-43 s and neither command showed progress. Both
    name their long steps on stderr (stdout keeps the results) and embed with a bar."""
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    rows = [
        {"prompt": f"{'hard' if i % 2 else 'easy'} question {i}", "weak_pass_rate": 0.2 if i % 2 else 0.9}
        | {"strong_pass_rate": 0.8}
        for i in range(60)
    ]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opts = '{"encoder": "toy", "prior": "none"}'
    r = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), "--router-options", opts])
    assert r.exit_code == 0, r.output
    assert "training ridge on 54 queries (soft-block labels): embedding the prompts with toy" in r.stderr
    assert "embedding:" in r.stderr and "54/54" in r.stderr  # the tqdm bar
    assert "GSM8K solution prior" not in r.stderr  # prior none: not announced
    assert "trained ridge" in r.stdout and "embedding" not in r.stdout
    ev = CliRunner().invoke(app, ["evaluate", str(tmp_path / "r"), str(data), "--bootstrap", "50"])
    assert ev.exit_code == 0, ev.output
    assert "scoring 60 queries with ridge: embedding the prompts with toy" in ev.stderr
    assert "then 50 bootstrap resamples" in ev.stderr
    assert "6/6" in ev.stderr  # only the 6 validation prompts were not cached yet


def test_train_announces_the_gsm8k_prior_before_fitting_it() -> None:
    from firewall_routing.cli import _fit_steps
    from firewall_routing.routers import make_router

    assert "fitting its GSM8K solution prior" in _fit_steps(make_router("ridge"))
    assert "prior" not in _fit_steps(make_router("ridge", prior="none"))
    assert _fit_steps(make_router("random")) == ""
