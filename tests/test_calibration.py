"""Calibration math on hand-computed cases, the files it reads/writes, and the CLI command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.calibration import (
    CONVENTION,
    achievable_counts,
    calibrate,
    check_enough_prompts,
    format_table,
    load_calibration,
    missed_percents,
    read_prompts,
    router_fingerprint,
    save_calibration,
    strong_fraction,
    thresholds_for_fractions,
)
from firewall_routing.errors import InputError
from firewall_routing.routers.random import RandomRouter

ROOT = Path(__file__).resolve().parents[1]
ABOVE_ONE = math.nextafter(1.0, 2.0)


# --------------------------------------------------------------------------- math


def test_achievable_counts_are_tie_group_boundaries() -> None:
    assert achievable_counts(np.array([0.1, 0.2, 0.2, 0.4])).tolist() == [0, 1, 3, 4]
    assert achievable_counts(np.array([0.5, 0.5, 0.5])).tolist() == [0, 3]


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, 0.0),  # nothing below 0: always weak
        (0.25, 0.15),  # k = 1: midpoint of 0.1 and 0.2
        (0.5, 0.15),  # target 2 is unreachable (tie at 0.2): 1 and 3 equally far → 1
        (0.6, 0.3),  # target 2.4: 3 is closer than 1 → midpoint of 0.2 and 0.4
        (0.75, 0.3),  # k = 3
        (0.9, ABOVE_ONE),  # target 3.6 → 4: everything strong
        (1.0, ABOVE_ONE),
    ],
)
def test_thresholds_hand_computed_with_ties(fraction: float, expected: float) -> None:
    scores = [0.4, 0.2, 0.1, 0.2]
    (t,) = thresholds_for_fractions(scores, [fraction])
    assert t == pytest.approx(expected, abs=1e-12)


def test_threshold_reproduces_count_under_strict_less_than() -> None:
    scores = [0.4, 0.2, 0.1, 0.2]
    fractions = [0.25, 0.6, 0.9]
    got = [strong_fraction(scores, t) for t in thresholds_for_fractions(scores, fractions)]
    assert got == [0.25, 0.75, 1.0]


def test_all_tied_scores_only_allow_all_or_nothing() -> None:
    t30, t60 = thresholds_for_fractions([0.5] * 4, [0.3, 0.6])
    assert (t30, t60) == (0.0, ABOVE_ONE)


def test_score_of_exactly_one_still_goes_strong_at_100_percent() -> None:
    (t,) = thresholds_for_fractions([1.0, 1.0], [1.0])
    assert strong_fraction([1.0, 1.0], t) == 1.0


def test_thresholds_do_not_depend_on_input_order() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 200) / 20  # many ties
    fr = np.linspace(0, 1, 11)
    a = thresholds_for_fractions(scores, fr)
    b = thresholds_for_fractions(rng.permutation(scores), fr)
    assert np.array_equal(a, b)


def test_calibrate_distinct_scores_hits_every_percent_exactly() -> None:
    scores = (np.arange(100) + 0.5) / 100  # 0.005 … 0.995
    cal = calibrate(scores, router="r", backend="b", source="s")
    assert [p.percent for p in cal.points] == list(range(101))
    assert all(p.observed == p.percent / 100 for p in cal.points)
    assert cal.threshold(30) == pytest.approx(0.30)  # midpoint of 0.295 and 0.305
    ts = [p.threshold for p in cal.points]
    assert ts == sorted(ts)
    assert cal.convention == CONVENTION and cal.n == 100


def test_calibrate_rejects_empty_and_nan() -> None:
    with pytest.raises(InputError):
        calibrate([])
    with pytest.raises(InputError):
        calibrate([0.1, float("nan")])


def test_format_table_has_10_to_90() -> None:
    table = format_table(calibrate((np.arange(100) + 0.5) / 100))
    rows = table.splitlines()[1:]
    assert [int(r.split()[0]) for r in rows] == list(range(10, 100, 10))
    # margin: 1.96 * sqrt(0.3 * 0.7 / 100) = 0.0898 → 9.0 points
    assert rows[2].split() == ["30", "0.3000", "30.0", "9.0"]


def test_calibrate_records_score_range_margins_and_router() -> None:
    cal = calibrate([0.2, 0.4, 0.6, 0.8], router="runs/r1", router_sha256="abc")
    assert (cal.score_min, cal.score_max, cal.n) == (0.2, 0.8, 4)
    assert (cal.router, cal.router_sha256) == ("runs/r1", "abc") and cal.created
    by = {p.percent: p for p in cal.points}
    assert by[50].observed == 0.5 and by[50].margin == pytest.approx(1.96 * 0.5 / 2)  # sqrt(.25/4)
    assert by[0].margin == 0.0 and by[100].margin == 0.0  # all-or-nothing is exact


def test_too_few_prompts_are_refused() -> None:
    with pytest.raises(InputError, match=r"at least 100 prompts.*got 5.*multiples of 20 %"):
        check_enough_prompts(5)
    check_enough_prompts(100)


def test_missed_percents_reports_what_ties_make_unreachable() -> None:
    assert missed_percents(calibrate((np.arange(100) + 0.5) / 100)) == []
    tied = calibrate([0.5] * 50 + list(np.linspace(0.6, 0.9, 50)))
    assert missed_percents(tied)[:2] == [1, 2]  # 0 or 50 of 100 go strong, nothing between


# --------------------------------------------------------------------------- files


def test_read_prompts_text_jsonl_and_routerdc(tmp_path: Path) -> None:
    txt = tmp_path / "p.txt"
    txt.write_text("first\n\nsecond\n")
    assert read_prompts(txt) == ["first", "second"]
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "a", "x": 1}\n\n{"prompt": "b"}\n')
    assert read_prompts(jl) == ["a", "b"]
    rdc = read_prompts(ROOT / "data/routerdc/gsm8k-test.json")
    assert len(rdc) == 1319 and rdc[0].startswith("Janet")


def test_read_prompts_errors_name_the_row(tmp_path: Path) -> None:
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(InputError, match=r"p.jsonl:2 field 'prompt'"):
        read_prompts(jl)
    with pytest.raises(InputError, match="file not found"):
        read_prompts(tmp_path / "missing.txt")
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no prompts"):
        read_prompts(empty)


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    cal = calibrate([0.1, 0.2, 0.3], router="r", backend="onnx")
    path = save_calibration(cal, tmp_path)
    assert path == tmp_path / "calibration.json"
    assert load_calibration(tmp_path) == cal
    assert load_calibration(path).threshold(50) == cal.threshold(50)


def test_save_never_overwrites_without_being_asked(tmp_path: Path) -> None:
    first, second = calibrate([0.1, 0.2]), calibrate([0.7, 0.9])
    save_calibration(first, tmp_path)
    with pytest.raises(InputError, match=r"already exists.*--force"):
        save_calibration(second, tmp_path)
    assert load_calibration(tmp_path) == first
    save_calibration(second, tmp_path, overwrite=True)
    assert load_calibration(tmp_path) == second


def test_old_calibration_files_without_new_fields_still_load(tmp_path: Path) -> None:
    data = json.loads(calibrate([0.1, 0.2]).model_dump_json())
    for key in ("router_sha256", "created", "score_min", "score_max"):
        del data[key]
    for point in data["points"]:
        del point["margin"]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    assert load_calibration(tmp_path).score_min is None


def test_router_fingerprint_follows_router_files_not_calibration(tmp_path: Path) -> None:
    RandomRouter(seed=1).save(tmp_path)
    before = router_fingerprint(tmp_path)
    save_calibration(calibrate([0.1, 0.2]), tmp_path)
    assert router_fingerprint(tmp_path) == before and len(before) == 64
    RandomRouter(seed=2).save(tmp_path)
    assert router_fingerprint(tmp_path) != before
    assert router_fingerprint(tmp_path / "missing") == ""


def test_load_rejects_missing_and_incomplete(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no calibration"):
        load_calibration(tmp_path)
    data = json.loads(calibrate([0.1, 0.2]).model_dump_json())
    data["points"] = data["points"][:50]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="every percent"):
        load_calibration(tmp_path)


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_calibrate_writes_file_and_prints_table(tmp_path: Path) -> None:
    router = RandomRouter(seed=3)
    router.save(tmp_path / "r")
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(200)))
    res = run_cli("calibrate", str(tmp_path / "r"), str(prompts))
    assert res.returncode == 0, res.stderr
    cal = load_calibration(tmp_path / "r")
    assert cal.backend == "router:random" and cal.n == 200
    assert cal.router == str((tmp_path / "r").resolve())
    assert cal.router_sha256 == router_fingerprint(tmp_path / "r") and cal.source == str(prompts.resolve())
    expected = thresholds_for_fractions(router.score(prompts.read_text().splitlines()), [0.3])
    assert cal.threshold(30) == pytest.approx(expected[0])
    assert "      30" in res.stdout and "30.0" in res.stdout


def test_cli_calibrate_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path / "r")
    res = run_cli("calibrate", str(tmp_path / "r"), str(tmp_path / "none.txt"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "file not found" in res.stderr


def test_cli_calibrate_refuses_too_few_prompts(tmp_path: Path) -> None:
    RandomRouter().save(tmp_path / "r")
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(5)))
    res = run_cli("calibrate", str(tmp_path / "r"), str(prompts))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "at least 100 prompts" in res.stderr
    assert not (tmp_path / "r" / "calibration.json").exists()


def test_cli_calibrate_needs_force_to_replace(tmp_path: Path) -> None:
    RandomRouter(seed=1).save(tmp_path / "r")
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(150)))
    save_calibration(calibrate([0.1, 0.2]), tmp_path / "r")
    old = (tmp_path / "r" / "calibration.json").read_text()
    res = run_cli("calibrate", str(tmp_path / "r"), str(prompts))
    assert res.returncode == 2 and "--force" in res.stderr and res.stderr.strip().count("\n") == 0
    assert (tmp_path / "r" / "calibration.json").read_text() == old
    res = run_cli("calibrate", str(tmp_path / "r"), str(prompts), "--force")
    assert res.returncode == 0, res.stderr
    assert load_calibration(tmp_path / "r").n == 150
