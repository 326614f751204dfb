"""A small TriviaQA table in the format `sample` writes for data/local/ (issue 14, item 4):
0/1 exact match per sample (n = 5), greedy, margin, token-F1 quality per sample and greedy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_triviaqa_table(path: Path, n: int = 360, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            hard = i % 3 == 0
            rec: dict[str, object] = {"id": f"triviaqa/{i}", "benchmark": "triviaqa"}
            rec["prompt"] = f"{'Which obscure hard' if hard else 'Which'} city hosted event {i}?"
            rec["margin"] = float(rng.uniform(0, 1))
            for side, skill in (("weak", 0.2), ("strong", 0.5)):
                p_right = skill * (0.3 if hard else 1.0)
                right = rng.random(6) < p_right
                # F1 is 1 for an exact match, else partial credit in [0, 0.8)
                f1 = np.where(right, 1.0, np.round(rng.uniform(0, 0.8, 6), 3))
                rec[f"{side}_model"] = f"{side}-model.gguf"
                rec[f"{side}_samples"] = [int(x) for x in right[:5]]
                rec[f"{side}_pass_rate"] = float(right[:5].mean())
                rec[f"{side}_n"] = 5
                rec[f"{side}_greedy"] = bool(right[5])
                rec[f"{side}_quality"] = [float(x) for x in f1[:5]]
                rec[f"{side}_greedy_quality"] = float(f1[5])
            f.write(json.dumps(rec) + "\n")
    return path
