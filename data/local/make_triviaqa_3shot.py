"""Write triviaqa-3shot.jsonl: the shipped TriviaQA questions as 3-shot completion prompts.

Small local models given the paper's one-question prompt ``Question: …\\nAnswer: `` as raw
text mostly continue the trailing space with a number (the pilot in PROVENANCE.md: exact
match 0 of 250 samples for SmolLM2-135M and Gemma-3-270M). Three solved questions before the
asked one show the answer format (a short answer on one line), as TriviaQA evaluations of
base models usually do. The shots are the last three rows of data/triviaqa/test.jsonl
(1497-1499); the other 1,497 rows keep their row number in their id (``triviaqa/<row>``),
so ids match ``load_benchmark("triviaqa")``. ``question`` is the bare question: the table is
written with ``--table-prompt question`` so routers embed the question, not the shared shots.

Usage: python data/local/make_triviaqa_3shot.py   (from the repository root; deterministic)
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "data/triviaqa/test.jsonl"
OUT = ROOT / "data/local/triviaqa-3shot.jsonl"
SHOTS = 3


def main() -> None:
    rows = [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines()]
    shots = rows[-SHOTS:]
    prefix = "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in shots)
    with OUT.open("w", encoding="utf-8") as f:
        for i, r in enumerate(rows[:-SHOTS]):
            rec = {
                "id": f"triviaqa/{i}",
                "benchmark": "triviaqa",
                "question": r["question"],
                "prompt": f"{prefix}Question: {r['question']}\nAnswer:",
                "grader": "triviaqa-em",
                "reference": r["answer"],
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
