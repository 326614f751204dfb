"""A resumable on-disk store of finished samples (DESIGN.md §6).

Sampling real models costs hours or money, so every finished sample is committed to SQLite
*before* the sampler counts it as done: a run killed at any point (Ctrl-C, ``kill -9``, a
full disk) loses at most the requests that were in flight, and a rerun asks the upstream
only for the samples the store does not hold.

A sample is identified by everything that could change its distribution:
``(upstream base URL, model, sha256 of the prompt, sampling parameters as canonical JSON,
sample index)``. The parameters JSON includes temperature, top-p, max tokens, the prompt
template and whether logprobs were asked, so changing any of them starts fresh samples
instead of silently mixing two distributions. The greedy answer is simply the sample with
index 0 under temperature-0 parameters.

The database runs in WAL mode with ``synchronous=FULL``: a commit is on disk when
:meth:`SampleStore.put` returns (one fsync per sample is negligible next to a generation),
and a reader (e.g. a progress report) never blocks the writer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    upstream     TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    prompt_sha   TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    idx          INTEGER NOT NULL,
    completion   TEXT    NOT NULL,
    tokens       INTEGER NOT NULL,
    token_source TEXT    NOT NULL,
    top_logprobs TEXT,
    created      REAL    NOT NULL,
    PRIMARY KEY (upstream, model, prompt_sha, params, idx)
);
"""


def prompt_sha256(prompt: str) -> str:
    """Hex sha256 of the UTF-8 prompt (the store never needs the prompt text itself)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def canonical_json(obj: Mapping[str, Any]) -> str:
    """Key-sorted compact JSON, so equal parameters always give the same store key."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_base_url(url: str) -> str:
    """``http://h:1/v1/`` and ``http://h:1/v1`` are the same upstream."""
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class SampleKey:
    """Everything that identifies one distribution of samples (all but the index)."""

    upstream: str
    model: str
    prompt_sha: str
    params: str

    @classmethod
    def make(cls, upstream: str, model: str, prompt: str, params: Mapping[str, Any]) -> SampleKey:
        return cls(normalize_base_url(upstream), model, prompt_sha256(prompt), canonical_json(params))


@dataclass(frozen=True)
class StoredSample:
    """One finished completion.

    ``token_source`` says how ``tokens`` was obtained (see ``client.count_tokens``);
    ``top_logprobs`` holds the first generated token's top log-probabilities (descending)
    when they were asked for, else None.
    """

    completion: str
    tokens: int
    token_source: str
    top_logprobs: tuple[float, ...] | None = None


class SampleStore:
    """SQLite store of finished samples; see the module docstring for the guarantees."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise InputError(f"not a usable sample store: {e}", path=self.path) from None
        self._check_version()

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise InputError(
                f"sample store has schema {row[0]}, this version reads {SCHEMA_VERSION}",
                path=self.path,
            )

    def get(self, key: SampleKey) -> dict[int, StoredSample]:
        """All finished samples of ``key``, by index."""
        rows = self._db.execute(
            "SELECT idx, completion, tokens, token_source, top_logprobs FROM samples "
            "WHERE upstream=? AND model=? AND prompt_sha=? AND params=?",
            (key.upstream, key.model, key.prompt_sha, key.params),
        ).fetchall()
        return {int(r[0]): _row_sample(r[1:]) for r in rows}

    def put(self, key: SampleKey, idx: int, sample: StoredSample) -> None:
        """Commit one finished sample (durable when this returns).

        ``INSERT OR IGNORE``: if a sample with this index already exists the first one wins,
        so a rerun can never change a finished sample.
        """
        lp = None if sample.top_logprobs is None else json.dumps(list(sample.top_logprobs))
        self._db.execute(
            "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                key.upstream,
                key.model,
                key.prompt_sha,
                key.params,
                idx,
                sample.completion,
                sample.tokens,
                sample.token_source,
                lp,
                time.time(),
            ),
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def iter_all(self) -> Iterator[tuple[SampleKey, int, StoredSample]]:
        """Every stored sample (for inspection and tests)."""
        cur = self._db.execute(
            "SELECT upstream, model, prompt_sha, params, idx, completion, tokens, "
            "token_source, top_logprobs FROM samples ORDER BY rowid"
        )
        for r in cur:
            yield SampleKey(r[0], r[1], r[2], r[3]), int(r[4]), _row_sample(r[5:])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row_sample(r: tuple[Any, ...]) -> StoredSample:
    lp = None if r[3] is None else tuple(float(x) for x in json.loads(r[3]))
    return StoredSample(str(r[0]), int(r[1]), str(r[2]), lp)
