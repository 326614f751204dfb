"""An output folder that only ever holds one whole run.

``reproduce --out DIR`` used to write into DIR in place: a second run with other options left
the first run's plots, routers and scores beside the new report, and a run that failed early
left an empty folder. :func:`staged_run_dir` writes into a hidden sibling folder and moves it
to DIR only when the run succeeds, so DIR is either the previous run, untouched, or the new
one, whole. Resumable progress (per-seed scores) is never thrown away: a failed run keeps it
where ``--resume`` looks for it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firewall_routing.errors import InputError

PROGRESS_DIRS = ("scores", "routers")
"""Subfolders a resumed run reuses (scores of finished routers, their saved models)."""


def _has_files(d: Path) -> bool:
    return any(p.is_file() for p in d.rglob("*"))


@contextmanager
def staged_run_dir(out: Path, *, resume: bool = False, force: bool = False) -> Iterator[Path]:
    """Yield a fresh folder to write a run into; on success it becomes ``out``.

    * ``out`` missing or empty: the run goes there; a failed run leaves nothing, or only
      its resumable progress (``scores/``) with a note to ``--resume``.
    * ``out`` holds files: refused unless ``resume`` (its progress is copied in first and
      the run continues it) or ``force`` (replaced, but only once the new run succeeded).
      If the run fails, ``out`` is left as it was (a resumed run adds its new scores).
    """
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", path=out, field="--out")
    previous = out.is_dir() and any(out.iterdir())
    if previous and not (resume or force):
        raise InputError(
            "folder is not empty (a previous run?); pass --resume to continue it, --force to "
            "replace it once the new run succeeds, or choose another --out",
            path=out,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    if previous and resume:
        for sub in PROGRESS_DIRS:
            if (out / sub).is_dir():
                shutil.copytree(out / sub, work / sub, symlinks=True)
    try:
        yield work
    except BaseException:
        _keep_progress(work, out, previous, resume)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    work.rename(out)
    if old.exists():
        shutil.rmtree(old)


def _keep_progress(work: Path, out: Path, previous: bool, resume: bool) -> None:
    """After a failure: keep per-seed scores where ``--resume`` finds them, drop the rest.

    A replaced (``--force``) previous run is another configuration: its scores are not
    touched, and the failed run's progress is dropped with the staging folder.
    """
    scores = work / "scores"
    if scores.is_dir() and _has_files(scores) and (resume or not previous):
        (out / "scores").mkdir(parents=True, exist_ok=True)
        for f in scores.iterdir():
            shutil.copy2(f, out / "scores" / f.name)
        print(
            f"partial progress kept in {out / 'scores'}: rerun with --resume --out {out} to continue",
            file=sys.stderr,
        )
    shutil.rmtree(work, ignore_errors=True)
