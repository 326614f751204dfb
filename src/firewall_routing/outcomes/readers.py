"""Reading outcome files: JSON and JSON Lines with errors naming the file and line.

Outcome JSON is read strictly: a key given twice (two entries for one model) is an error,
because ``json`` would silently keep the last one (CSV files go through
``files.read_csv``, which does the same for a column named twice). Plus the first-row peeks
format detection needs, and the small cell parsers the loaders share.
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


_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def parse_bool(v: str, p: Path, row: int, fld: str) -> float:
    s = v.strip().lower()
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    raise InputError(f"expected True/False, got {v!r}", path=p, row=row, field=fld)
