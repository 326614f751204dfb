"""Sentence embeddings for routers, cached on disk by content hash.

Embedding is the slowest step of training and evaluating the fast routers (~50 prompts/s for
MiniLM on 2 CPU cores), and the same prompts are embedded again for every label design,
seed and command. The cache keys each vector by sha256(encoder id, text), so a prompt is
embedded once per encoder, whatever file or order it comes in. It is written as embedding
goes (:class:`CachedEncoder`), so an interrupted first run is resumed, not restarted.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from firewall_routing.minilm import DEFAULT_ENCODER, STATIC_ENCODER, cache_dir, resolve_model_path
from firewall_routing.outcomes import FloatArray

__all__ = ["DEFAULT_ENCODER", "STATIC_ENCODER", "cache_dir", "resolve_model_path"]  # re-exported

ENCODER_HELP = (
    f"sentence encoder (cached embeddings): {DEFAULT_ENCODER}, '{STATIC_ENCODER}' (model2vec, "
    "distilled from it; serve with backend static) or a sentence-transformers model"
)
"""The ``encoder`` option's help, shared by the routers on frozen embeddings."""


_PROGRESS = [False]
"""Whether every embedding call shows its bar (set by :func:`progress_bars`)."""


@contextmanager
def progress_bars() -> Iterator[None]:
    """Inside, every embedding of uncached prompts shows a tqdm bar on stderr.

    For the CLI's long commands (``train``, ``evaluate``): a router embeds inside its own
    ``fit``/``score``, and threading a flag through every router's signature would touch them
    all; the bar counts only prompts actually embedded, so a warm cache stays silent.
    """
    old = _PROGRESS[0]
    _PROGRESS[0] = True
    try:
        yield
    finally:
        _PROGRESS[0] = old


class Encoder(Protocol):
    model_id: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray: ...


class SentenceEncoder:
    """A sentence-transformers model (torch), loaded on first use.

    Texts are encoded one per forward pass. In a batch, a text's embedding shifts in its
    last bits (~1e-7) with the lengths of its neighbours, and the cache stores whatever the
    first encode produced — so batched results made ``reproduce`` depend on which prompts
    earlier runs had embedded together: soft-label routers then picked other best epochs
    (APGR moved by up to 1.3 points between a cold and a warm run). One text per pass costs
    ~1.4x the time of batched encoding on CPU, paid once per prompt thanks to the cache.
    """

    def __init__(self, model: str = DEFAULT_ENCODER, device: str = "cpu", threads: int = 1):
        self.model_id = model
        self.device = device
        self.threads = threads  # torch intra-op threads per encode (see ``encode``)
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_path(self.model_id), device=self.device)
        return self._model

    @property
    def dim(self) -> int:
        d: int = self._load().get_sentence_embedding_dimension()
        return d

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """``threads`` torch threads (default one): a single short text is too small a job to
        split across cores.

        With torch's default (all cores) a busy 2-core machine embedded 2.5x slower (161.5 vs
        64.5 ms per GSM8K prompt, load average ~2-3); the vectors are bit-identical either way
        (tests/routers/test_routers.py), so the cache stays valid.
        """
        import torch

        model = self._load()
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            vecs = model.encode(
                list(texts),
                batch_size=1,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        finally:
            torch.set_num_threads(threads)
        return np.asarray(vecs, dtype=np.float32).astype(np.float64)


# Part of every cache key. Version 2: texts are embedded one per forward pass
# (SentenceEncoder); version-1 rows, embedded in batches, are never read again.
CACHE_VERSION = 2


COMMIT_EVERY_TEXTS = 64
COMMIT_EVERY_S = 2.0
"""New vectors are committed to the cache after this many texts or seconds, whichever comes
first, and when encoding stops for any reason but a hard kill (which loses at most this)."""


class CachedEncoder:
    """Wraps an encoder with an in-memory dict over an SQLite store (one row per text).

    Missing texts are passed to the inner encoder one at a time (the inner encoder embeds
    each text alone anyway, so results do not change) and their vectors are committed in
    small batches as they come: killing a first run over thousands of prompts used to leave
    nothing in the cache, because the one commit came after the last prompt.
    """

    def __init__(self, inner: Encoder, directory: Path | None = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self._mem: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
        d = directory or cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / "embeddings.sqlite"
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"v{CACHE_VERSION}\0{self.model_id}\0{text}".encode()).hexdigest()

    def _save(self, rows: list[tuple[str, bytes]]) -> None:
        if rows:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
            rows.clear()

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """Vectors for ``texts`` (float64, one row each), embedding only what no cache has.

        ``progress`` (or an enclosing :func:`progress_bars`) shows one bar counting the
        prompts actually embedded.
        """
        progress = progress or _PROGRESS[0]
        keys = [self._key(t) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self._mem]
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
            for k, blob in self._db.execute(q, chunk):
                self._mem[k] = np.frombuffer(blob, dtype=np.float32)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._mem}
        if todo:
            self._embed(todo, progress)
        return np.stack([self._mem[k] for k in keys]).astype(np.float64)

    def _embed(self, todo: dict[str, str], progress: bool) -> None:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(todo),
                unit="prompt",
                desc="embedding",
                dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0,
            )
        rows: list[tuple[str, bytes]] = []
        last_commit = time.monotonic()
        try:
            for k, text in todo.items():
                vec = np.asarray(self.inner.encode([text], progress=False), dtype=np.float32)[0]
                self._mem[k] = vec
                rows.append((k, vec.tobytes()))
                if bar is not None:
                    bar.update(1)
                if len(rows) >= COMMIT_EVERY_TEXTS or time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    self._save(rows)
                    last_commit = time.monotonic()
        finally:
            self._save(rows)  # also on Ctrl-C or an encoder error: keep what was embedded
            if bar is not None:
                bar.close()


_SHARED: dict[str, CachedEncoder] = {}


def register_encoder(name: str, encoder: Encoder, directory: Path | None = None) -> CachedEncoder:
    """Make ``name`` resolve to ``encoder`` (another backend, or a toy encoder in tests)."""
    _SHARED[name] = CachedEncoder(encoder, directory)
    return _SHARED[name]


def get_encoder(model: str = DEFAULT_ENCODER) -> CachedEncoder:
    """One cached encoder per model per process (routers and experiments share it).

    :data:`STATIC_ENCODER` is the distilled static model; any other name is a
    sentence-transformers model. Each caches under its own ``model_id``.
    """
    if model not in _SHARED:
        inner: Encoder
        if model == STATIC_ENCODER:
            from firewall_routing.static_encoder import StaticEncoder

            inner = StaticEncoder()
        else:
            inner = SentenceEncoder(model)
        _SHARED[model] = CachedEncoder(inner)
    return _SHARED[model]
