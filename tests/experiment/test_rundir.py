"""staged_run_dir: ``reproduce --out`` holds one whole run, never a mix, never an empty folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall_routing.errors import InputError
from firewall_routing.experiment.rundir import staged_run_dir


def _previous_run(out: Path) -> None:
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "old-only.png").write_text("old plot")
    (out / "report.md").write_text("old report")
    (out / "scores").mkdir()
    (out / "scores" / "soft-block-seed0.json").write_text("old scores")


def test_fresh_run_appears_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a"
    with staged_run_dir(out) as work:
        assert work != out and not out.exists()
        (work / "report.md").write_text("new")
    assert (out / "report.md").read_text() == "new"
    assert [p.name for p in tmp_path.joinpath("runs").iterdir()] == ["a"]  # no staging left


def test_failed_fresh_run_leaves_no_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "a"
    with pytest.raises(RuntimeError), staged_run_dir(out) as work:
        (work / "report.md").write_text("half")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_failed_fresh_run_keeps_resumable_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a"
    with pytest.raises(KeyboardInterrupt), staged_run_dir(out) as work:
        (work / "scores").mkdir()
        (work / "scores" / "hard-seed0.json").write_text("s")
        (work / "plots").mkdir()
        raise KeyboardInterrupt
    assert [p.name for p in out.iterdir()] == ["scores"]
    assert (out / "scores" / "hard-seed0.json").read_text() == "s"
    assert "--resume" in capsys.readouterr().err


def test_non_empty_out_needs_resume_or_force(tmp_path: Path) -> None:
    out = tmp_path / "a"
    _previous_run(out)
    with pytest.raises(InputError, match="--force"), staged_run_dir(out):
        pass
    assert (out / "report.md").read_text() == "old report"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"), staged_run_dir(f):
        pass


def test_force_replaces_whole_run_no_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "a"
    _previous_run(out)
    with staged_run_dir(out, force=True) as work:
        assert (out / "report.md").read_text() == "old report"  # still there while running
        (work / "report.md").write_text("new report")
    assert (out / "report.md").read_text() == "new report"
    assert not (out / "plots").exists() and not (out / "scores").exists()  # nothing stale
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_force_failure_keeps_previous_run_untouched(tmp_path: Path) -> None:
    out = tmp_path / "a"
    _previous_run(out)
    with pytest.raises(RuntimeError), staged_run_dir(out, force=True) as work:
        (work / "scores").mkdir()
        (work / "scores" / "soft-block-seed0.json").write_text("other config")
        raise RuntimeError("boom")
    assert (out / "report.md").read_text() == "old report"
    assert (out / "scores" / "soft-block-seed0.json").read_text() == "old scores"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_resume_starts_from_previous_progress_and_adds_to_it(tmp_path: Path) -> None:
    out = tmp_path / "a"
    _previous_run(out)
    with pytest.raises(RuntimeError), staged_run_dir(out, resume=True) as work:
        assert (work / "scores" / "soft-block-seed0.json").read_text() == "old scores"
        assert not (work / "plots").exists()  # presentation is regenerated, not carried over
        (work / "scores" / "hard-seed0.json").write_text("new")
        raise RuntimeError("interrupted again")
    assert (out / "scores" / "hard-seed0.json").read_text() == "new"
    assert (out / "report.md").read_text() == "old report"
    with staged_run_dir(out, resume=True) as work:
        (work / "report.md").write_text("finished")
    assert sorted(p.name for p in (out / "scores").iterdir()) == ["hard-seed0.json", "soft-block-seed0.json"]
    assert not (out / "plots").exists()
