"""The SQLite sample store: keys, durability across processes, first-write-wins."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
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


def test_committed_sample_survives_kill_9(tmp_path: Path) -> None:
    """A sample is durable the moment ``put`` returns, even if the process dies hard."""
    path = tmp_path / "s.sqlite"
    code = (
        "import os, signal\n"
        "from firewall_routing.sampling.store import SampleStore, SampleKey, StoredSample\n"
        f"st = SampleStore({str(path)!r})\n"
        "k = SampleKey('u', 'm', 'p', '{}')\n"
        "st.put(k, 0, StoredSample('kept', 3, 'usage'))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    with SampleStore(path) as st:
        assert st.get(SampleKey("u", "m", "p", "{}")) == {0: StoredSample("kept", 3, "usage")}


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
