"""The embedding cache: written as it goes, so an interrupted first run resumes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.embeddings import COMMIT_EVERY_TEXTS, CachedEncoder
from tests.conftest import ToyEncoder


class FailsAfter(ToyEncoder):
    """Embeds ``k`` texts, then raises (a crash, Ctrl-C, an OOM in the model...)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.progress_args: list[bool] = []

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.progress_args.append(progress)
        if self.calls + len(texts) > self.k:
            raise KeyboardInterrupt
        return super().encode(texts, progress)


def _rows(directory: Path) -> int:
    db = sqlite3.connect(directory / "embeddings.sqlite")
    try:
        return int(db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
    finally:
        db.close()


PROMPTS = [f"prompt {i}" for i in range(200)]


@pytest.mark.parametrize("k", [0, 1, 7, COMMIT_EVERY_TEXTS + 5, 135])
def test_failure_after_k_texts_keeps_k_rows(tmp_path: Path, k: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        CachedEncoder(FailsAfter(k), tmp_path).encode(PROMPTS)
    assert _rows(tmp_path) == k


def test_rerun_embeds_only_what_is_missing_and_results_are_identical(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        CachedEncoder(FailsAfter(135), tmp_path).encode(PROMPTS)
    fresh = ToyEncoder()
    resumed = CachedEncoder(fresh, tmp_path).encode(PROMPTS)
    assert fresh.calls == len(PROMPTS) - 135
    np.testing.assert_array_equal(resumed, ToyEncoder().encode(PROMPTS).astype(np.float32))


def test_kill_9_loses_at_most_one_commit_interval(tmp_path: Path) -> None:
    """The reported case: killed after 135 of 2,982 prompts, 0 rows were cached."""
    root = str(Path(__file__).resolve().parents[1])
    code = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from pathlib import Path\n"
        "from tests.conftest import ToyEncoder\n"
        "from firewall_routing.embeddings import CachedEncoder\n"
        "class Killed(ToyEncoder):\n"
        "    def encode(self, texts, progress=False):\n"
        "        if self.calls + len(texts) > 135:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        return super().encode(texts, progress)\n"
        f"CachedEncoder(Killed(), Path({str(tmp_path)!r})).encode(['p%d' % i for i in range(2982)])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, timeout=120)
    assert proc.returncode == -9
    assert 135 - COMMIT_EVERY_TEXTS < _rows(tmp_path) <= 135


def test_one_honest_progress_bar(tmp_path: Path, capsys: Any) -> None:
    """One bar counting the prompts embedded (not the inner encoder's 'Batches')."""
    enc = FailsAfter(10**6)
    cached = CachedEncoder(enc, tmp_path)
    cached.encode(PROMPTS[:2])
    capsys.readouterr()
    cached.encode(PROMPTS[:5], progress=True)
    err = capsys.readouterr().err
    assert "embedding" in err and "3/3" in err and "prompt" in err, err
    assert set(enc.progress_args) == {False}


class OtherToy(ToyEncoder):
    """Another encoder (another model id) whose vectors differ from ToyEncoder's."""

    model_id = "other-toy"

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return -2.0 * super().encode(texts, progress)


def test_vectors_are_keyed_by_encoder(tmp_path: Path) -> None:
    """Two encoders sharing one cache file never read each other's vectors."""
    CachedEncoder(ToyEncoder(), tmp_path).encode(PROMPTS[:20])
    other = OtherToy()
    got = CachedEncoder(other, tmp_path).encode(PROMPTS[:20])
    assert other.calls == 20  # nothing reused from the toy encoder's rows
    np.testing.assert_array_equal(got, OtherToy().encode(PROMPTS[:20]).astype(np.float32))
    assert _rows(tmp_path) == 40


def test_a_new_process_reads_vectors_from_disk_and_embeds_duplicates_once(tmp_path: Path) -> None:
    first = ToyEncoder()
    CachedEncoder(first, tmp_path).encode(["a", "b", "a", "b", "c"])
    assert first.calls == 3
    again = ToyEncoder()  # a fresh CachedEncoder has an empty in-memory dict: all from SQLite
    got = CachedEncoder(again, tmp_path).encode(["c", "a"])
    assert again.calls == 0
    np.testing.assert_array_equal(got, ToyEncoder().encode(["c", "a"]).astype(np.float32))


def record_commit_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets the row count of every non-empty commit of the embedding cache."""
    sizes: list[int] = []
    real = CachedEncoder._save

    def spy(self: CachedEncoder, rows: list[tuple[str, bytes]]) -> None:
        if rows:
            sizes.append(len(rows))
        real(self, rows)

    monkeypatch.setattr(CachedEncoder, "_save", spy)
    return sizes


def test_commits_come_in_chunks_of_commit_every_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 new prompts with the time trigger off: commits after 64, 128, 192 and the last 8."""
    import firewall_routing.embeddings as emb

    monkeypatch.setattr(emb, "COMMIT_EVERY_S", 1e9)
    sizes = record_commit_sizes(monkeypatch)
    CachedEncoder(ToyEncoder(), tmp_path).encode(PROMPTS)
    assert sizes == [COMMIT_EVERY_TEXTS] * 3 + [200 - 3 * COMMIT_EVERY_TEXTS]
    assert _rows(tmp_path) == 200


def test_commits_also_after_commit_every_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow encoder commits by time even before COMMIT_EVERY_TEXTS texts: here every text."""
    import firewall_routing.embeddings as emb

    monkeypatch.setattr(emb, "COMMIT_EVERY_S", 0.0)
    sizes = record_commit_sizes(monkeypatch)
    CachedEncoder(ToyEncoder(), tmp_path).encode(PROMPTS[:5])
    assert sizes == [1] * 5
