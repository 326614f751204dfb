"""The SQLite sample store: keys, durability across processes, first-write-wins."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling.store import (
    SampleKey,
    SampleStore,
    StoredSample,
    canonical_json,
    prompt_sha256,
)

KEY = SampleKey.make("http://h:1/v1/", "m", "Question: 1+1?\nAnswer: ", {"temperature": 0.7, "max_tokens": 8})


def test_key_is_canonical() -> None:
    same = SampleKey.make(
        "http://h:1/v1", "m", "Question: 1+1?\nAnswer: ", {"max_tokens": 8, "temperature": 0.7}
    )
    assert same == KEY
    assert KEY.upstream == "http://h:1/v1"
    assert KEY.prompt_sha == prompt_sha256("Question: 1+1?\nAnswer: ")
    assert len(KEY.prompt_sha) == 64
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    other = SampleKey.make(
        "http://h:1/v1", "m", "Question: 1+1?\nAnswer: ", {"temperature": 0.0, "max_tokens": 8}
    )
    assert other != KEY


def test_roundtrip_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "store.sqlite"
    with SampleStore(path) as st:
        st.put(KEY, 0, StoredSample("two", 1, "usage", (-0.1, -2.5)))
        st.put(KEY, 3, StoredSample("2", 1, "estimate"))
    with SampleStore(path) as st:
        got = st.get(KEY)
        assert got == {
            0: StoredSample("two", 1, "usage", (-0.1, -2.5)),
            3: StoredSample("2", 1, "estimate", None),
        }
        assert st.count() == 2
        assert st.get(SampleKey("x", "m", "0" * 64, "{}")) == {}


def test_first_write_wins(tmp_path: Path) -> None:
    with SampleStore(tmp_path / "s.sqlite") as st:
        st.put(KEY, 0, StoredSample("first", 1, "usage"))
        st.put(KEY, 0, StoredSample("second", 1, "usage"))
        assert st.get(KEY)[0].completion == "first"


def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SampleStore(path).close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _rows(path: Path) -> int:
    """Rows another connection sees: what is committed, i.e. what survives a kill -9."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    finally:
        db.close()


def _key(i: int) -> SampleKey:
    return SampleKey("u", "m", f"{i:064d}", "{}")


def test_puts_are_committed_in_batches_not_one_by_one(tmp_path: Path) -> None:
    """A commit per sample (an fsync each) made every sample cost ~6 ms."""
    path = tmp_path / "s.sqlite"
    with SampleStore(path, batch_size=10, max_delay=3600) as st:
        for i in range(25):
            st.put(_key(i), 0, StoredSample("x", 1, "usage"))
        assert _rows(path) == 20 and st.pending == 5 and st.commits == 2
        assert st.count() == 25  # the store itself already sees the pending ones
        st.flush()
        assert _rows(path) == 25 and st.pending == 0 and st.commits == 3


def test_default_store_batches(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with SampleStore(path) as st:
        st.put(KEY, 0, StoredSample("x", 1, "usage"))
        assert _rows(path) == 0 and st.pending == 1
    assert _rows(path) == 1  # close commits


def test_old_pending_samples_commit_at_the_next_put(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with SampleStore(path, batch_size=1000, max_delay=0.05) as st:
        st.put(_key(0), 0, StoredSample("x", 1, "usage"))
        assert _rows(path) == 0
        time.sleep(0.1)
        st.put(_key(1), 0, StoredSample("x", 1, "usage"))
        assert _rows(path) == 2


def test_kill_9_loses_at_most_the_uncommitted_batch(tmp_path: Path) -> None:
    """Flushed samples survive a hard kill; the pending batch is lost (and re-requested)."""
    path = tmp_path / "s.sqlite"
    code = (
        "import os, signal\n"
        "from firewall_routing.sampling.store import SampleStore, SampleKey, StoredSample\n"
        f"st = SampleStore({str(path)!r}, batch_size=1000, max_delay=3600)\n"
        "k = SampleKey('u', 'm', 'p', '{}')\n"
        "st.put(k, 0, StoredSample('kept', 3, 'usage'))\n"
        "st.flush()\n"
        "st.put(k, 1, StoredSample('lost', 3, 'usage'))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    with SampleStore(path) as st:
        assert st.get(SampleKey("u", "m", "p", "{}")) == {0: StoredSample("kept", 3, "usage")}


def test_an_exception_still_commits_the_batch(tmp_path: Path) -> None:
    """``with SampleStore(...)`` commits on the way out of an error or Ctrl-C."""
    path = tmp_path / "s.sqlite"
    with pytest.raises(KeyboardInterrupt), SampleStore(path) as st:
        st.put(KEY, 0, StoredSample("x", 1, "usage"))
        raise KeyboardInterrupt
    assert _rows(path) == 1


def test_garbage_file_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="not a usable sample store") as e:
        SampleStore(bad)
    assert e.value.path == str(bad)


def test_schema_version_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SampleStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="schema 99"):
        SampleStore(path)
