"""A resumable on-disk store of finished samples (DESIGN.md §6).

Sampling real models costs hours or money, so finished samples are committed to SQLite in
small batches: a commit when ``batch_size`` (256) samples are pending, when the oldest
pending one is ``max_delay`` (0.5 s) old (the
:class:`~firewall_routing.sampling.client.Sampler` runs a timer for that), and on every
normal exit, Ctrl-C included (:meth:`SampleStore.flush`, :meth:`SampleStore.close`). A
commit per sample (an fsync each) cost 8.1 ms per sample against an instant upstream
(``benchmarks/bench_sampler.py --client-only``, see docs/sampling.md). A run killed hard
(``kill -9``, SIGTERM, power loss) loses at most the uncommitted batch, i.e. the samples
finished in the last 0.5 s; a rerun asks the upstream for them again, and only for what
the store does not hold.

A sample is identified by everything that could change its distribution:
``(upstream base URL, model, sha256 of the prompt, sampling parameters as canonical JSON,
sample index)``. The parameters JSON includes temperature, top-p, max tokens, the prompt
template and whether logprobs were asked, so changing any of them starts fresh samples
instead of silently mixing two distributions. The greedy answer is simply the sample with
index 0 under temperature-0 parameters.

The database runs in WAL mode with ``synchronous=FULL``: a commit is on disk when it
returns, and a reader (e.g. a progress report) never blocks the writer; readers on other
connections see committed batches only, this store's own :meth:`SampleStore.get` sees
pending samples too.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError

SCHEMA_VERSION = 1
BATCH_SIZE = 256
"""Pending samples that force a commit."""
MAX_DELAY_S = 0.5
"""Age of the oldest pending sample that forces a commit (at the next put or timer tick)."""

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
CREATE TABLE IF NOT EXISTS served (
    upstream     TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    served_model TEXT    NOT NULL,
    first_seen   REAL    NOT NULL,
    PRIMARY KEY (upstream, model, served_model)
);
CREATE TABLE IF NOT EXISTS scores (
    scorer       TEXT    NOT NULL,
    job          TEXT    NOT NULL,
    quality      REAL,
    tokens_in    INTEGER NOT NULL,
    tokens_out   INTEGER NOT NULL,
    calls        INTEGER NOT NULL,
    created      REAL    NOT NULL,
    PRIMARY KEY (scorer, job)
);
CREATE TABLE IF NOT EXISTS sessions (
    id           INTEGER PRIMARY KEY,
    identity     TEXT    NOT NULL,
    started      REAL    NOT NULL,
    finished     REAL,
    status       TEXT    NOT NULL,
    info         TEXT    NOT NULL,
    new_samples  INTEGER,
    requests     INTEGER
);
"""
# ``scores`` caches scorer verdicts (sampling/scorers/cache.py): keyed by the scorer's name,
# version and options and by sha256 of (prompt, completion, reference); quality NULL is a
# final "missing" verdict (a judge that never parsed). ``served`` and ``sessions`` feed the provenance file written next to each table
# (sampling/provenance.py); CREATE IF NOT EXISTS adds them to older stores unchanged.


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

    def __init__(
        self, path: str | Path, *, batch_size: int = BATCH_SIZE, max_delay: float = MAX_DELAY_S
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.commits = 0
        self._pending = 0
        self._oldest_pending = 0.0
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
        """Add one finished sample to the pending batch (see the module docstring for when
        it is committed).

        ``INSERT OR IGNORE``: if a sample with this index already exists the first one wins,
        so a rerun can never change a finished sample.
        """
        lp = None if sample.top_logprobs is None else json.dumps(list(sample.top_logprobs))
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
            self._oldest_pending = time.monotonic()
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
        self._pending += 1
        if self._pending >= self.batch_size:
            self.flush()
        else:
            self.flush_due()

    @property
    def pending(self) -> int:
        """Samples added but not yet committed (lost if the process is killed now)."""
        return self._pending

    def flush_due(self) -> None:
        """Commit if the oldest pending sample is ``max_delay`` old (checked at every put)."""
        if self._pending and time.monotonic() - self._oldest_pending >= self.max_delay:
            self.flush()

    def flush(self) -> None:
        """Commit the pending batch now (durable when this returns)."""
        if self._db.in_transaction:
            self._db.execute("COMMIT")
            self.commits += 1
        self._pending = 0

    def note_served(self, upstream: str, model: str, served_model: str) -> None:
        """Remember the model name an upstream answered with (the response's ``model``);
        the sampler calls this once per name and run, so a commit of its own is cheap."""
        self._db.execute(
            "INSERT OR IGNORE INTO served VALUES (?,?,?,?)",
            (normalize_base_url(upstream), model, served_model, time.time()),
        )

    def served_models(self, upstream: str, model: str) -> list[str]:
        """Every model name ``upstream`` answered with for ``model``, first seen first."""
        rows = self._db.execute(
            "SELECT served_model FROM served WHERE upstream=? AND model=? ORDER BY first_seen, served_model",
            (normalize_base_url(upstream), model),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def begin_session(self, identity: Mapping[str, Any], info: Mapping[str, Any]) -> int:
        """Record (and commit at once, so a killed run leaves its trace) that a run started."""
        cur = self._db.execute(
            "INSERT INTO sessions (identity, started, status, info) VALUES (?,?,?,?)",
            (canonical_json(identity), time.time(), "running", canonical_json(info)),
        )
        self.flush()
        return int(cur.lastrowid or 0)

    def end_session(self, session: int, status: str, new_samples: int, requests: int | None) -> None:
        self._db.execute(
            "UPDATE sessions SET finished=?, status=?, new_samples=?, requests=? WHERE id=?",
            (time.time(), status, new_samples, requests, session),
        )
        self.flush()

    def sessions(self, identity: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Runs recorded with this identity, oldest first (``finished`` None: killed)."""
        rows = self._db.execute(
            "SELECT id, started, finished, status, info, new_samples, requests FROM sessions "
            "WHERE identity=? ORDER BY id",
            (canonical_json(identity),),
        ).fetchall()
        return [
            {
                "id": int(r[0]),
                "started": float(r[1]),
                "finished": None if r[2] is None else float(r[2]),
                "status": str(r[3]),
                **json.loads(r[4]),
                "new_samples": r[5],
                "requests": r[6],
            }
            for r in rows
        ]

    def get_scores(self, scorer: str, jobs: Iterable[str]) -> dict[str, tuple[float | None, int, int, int]]:
        """Cached verdicts of ``scorer`` for these job keys: (quality, tokens in, out, calls)."""
        want = list(dict.fromkeys(jobs))
        out: dict[str, tuple[float | None, int, int, int]] = {}
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            rows = self._db.execute(
                f"SELECT job, quality, tokens_in, tokens_out, calls FROM scores WHERE scorer=? "
                f"AND job IN ({','.join('?' * len(chunk))})",
                (scorer, *chunk),
            ).fetchall()
            out.update(
                {
                    str(r[0]): (None if r[1] is None else float(r[1]), int(r[2]), int(r[3]), int(r[4]))
                    for r in rows
                }
            )
        return out

    def put_score(
        self, scorer: str, job: str, quality: float | None, tokens_in: int, tokens_out: int, calls: int
    ) -> None:
        """Cache one final verdict (batched commits like :meth:`put`; the first one wins)."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
            self._oldest_pending = time.monotonic()
        self._db.execute(
            "INSERT OR IGNORE INTO scores VALUES (?,?,?,?,?,?,?)",
            (scorer, job, quality, tokens_in, tokens_out, calls, time.time()),
        )
        self._pending += 1
        if self._pending >= self.batch_size:
            self.flush()
        else:
            self.flush_due()

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
        """Commit what is pending, then close (also on Ctrl-C, via ``with``)."""
        try:
            self.flush()
        finally:
            self._db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row_sample(r: tuple[Any, ...]) -> StoredSample:
    lp = None if r[3] is None else tuple(float(x) for x in json.loads(r[3]))
    return StoredSample(str(r[0]), int(r[1]), str(r[2]), lp)
