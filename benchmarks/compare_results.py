"""Compare two ``reproduce`` results.json files, timing fields aside.

Why: a refactor of the experiment code must not change a single number or key; wall-clock
fields differ on every run, so they are dropped before comparing. Usage:

    python benchmarks/compare_results.py BEFORE/results.json AFTER/results.json [--ignore KEY ...]

``--ignore KEY`` drops a top-level section from both files first: for a section that a later
change added on purpose (e.g. ``triviaqa``), so the rest can still be shown unchanged. Prints ``identical`` (exit 0) or the first differences as JSON paths (exit 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

TIMING_KEYS = frozenset({"wall_seconds_before_report", "seconds"})
"""Wall-clock fields: the run's total and each router fit's ``seconds``."""


def without_timing(value: Any) -> Any:
    """``value`` with every :data:`TIMING_KEYS` entry removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """JSON paths where ``a`` and ``b`` differ: values, types, key sets or key order."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")
        ]
    if type(a) is not type(b):
        return [f"{path}: type {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def compare(before: Path, after: Path, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Differences between two results.json files once timing fields and ``ignore`` are dropped."""
    a, b = (without_timing(json.loads(p.read_text())) for p in (before, after))
    a, b = ({k: v for k, v in d.items() if k not in ignore} for d in (a, b))
    return differences(a, b)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Compare two reproduce results.json files, timing aside.")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", action="append", default=[], metavar="KEY", help="top-level key to drop")
    args = parser.parse_args(argv)
    diffs = compare(args.before, args.after, frozenset(args.ignore))
    if not diffs:
        aside = "".join(f", {k!r}" for k in args.ignore)
        print(f"identical (timing fields{aside} aside)")
        return 0
    print(f"{len(diffs)} difference(s):")
    print("\n".join(diffs[:50]))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
