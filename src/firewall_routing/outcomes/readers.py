"""Reading outcome files: JSON, JSON Lines and CSV with errors naming the file and line.

Outcome files are read strictly in one respect the base readers are not: a key or column
given twice (two entries for one model) is an error, because ``json`` and ``csv`` would
silently keep one of them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError
from firewall_routing.files import DuplicateKeyError, iter_jsonl, loads, read_text


def read_json(p: Path) -> Any:
    text = read_text(p)
    try:
        return loads(text, unique_keys=True)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at column {e.colno}: {e.msg}", path=p, row=e.lineno) from None
    except DuplicateKeyError as e:
        raise InputError(str(e), path=p) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", path=p) from None


def read_jsonl(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return iter_jsonl(p, unique_keys=True)


def first_record(p: Path) -> dict[str, Any] | None:
    """The first non-blank line of a JSON Lines file as an object (None if it is not one):
    enough to tell the formats apart without reading a large file."""
    with p.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    return None
                return obj if isinstance(obj, dict) else None
    return None


def csv_header(p: Path) -> list[str]:
    with p.open(encoding="utf-8", errors="replace") as f:
        return next(csv.reader([f.readline()]), [])


def missing_column(header: Sequence[str]) -> str:
    """'missing column' plus the columns the file does have, so a misspelling is visible."""
    found = ", ".join(repr(h) for h in header) if header else "none"
    return f"missing column; columns found: {found}"


def read_csv(p: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows with the physical line number each starts on (so errors point at the file)."""
    text = read_text(p)
    lines = text.splitlines(keepends=True)
    reader = csv.DictReader(lines)
    header = list(reader.fieldnames or [])
    twice = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if twice is not None:
        raise InputError(f"column {twice!r} appears twice in the header", path=p, row=1, field=twice)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        start = reader.line_num + 1
        for r in reader:
            if None in r:
                raise InputError("row has more cells than the header", path=p, row=start)
            rows.append((start, r))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"malformed CSV: {e}", path=p, row=reader.line_num) from None
    if not rows:
        raise InputError("file has a header but no rows", path=p)
    return header, rows


_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def parse_bool(v: str, p: Path, row: int, fld: str) -> float:
    s = v.strip().lower()
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    raise InputError(f"expected True/False, got {v!r}", path=p, row=row, field=fld)
