"""Reading user files at the edge, with errors that name the file and line.

Every loader (outcome tables, benchmark JSONL, calibration prompts) reads text and JSON Lines
the same way, so the messages a user sees for a missing, empty, non-UTF-8 or malformed file
are the same wherever the file goes in.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError


def read_text(path: Path, *, allow_empty: bool = False) -> str:
    """The file's UTF-8 text, or an InputError saying why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror}", path=path) from None
    if not allow_empty and not text.strip():
        raise InputError("file is empty", path=path)
    return text


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice (``json`` would silently keep the last value)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"key {key!r} appears twice in one object")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise DuplicateKeyError(k)
        obj[k] = v
    return obj


def loads(text: str, *, unique_keys: bool = False) -> Any:
    """``json.loads``; with ``unique_keys`` a key given twice in one object raises
    :class:`DuplicateKeyError` (outcome files: two entries for one model is a broken export)."""
    return json.loads(text, object_pairs_hook=_unique_object if unique_keys else None)


def parse_jsonl(
    lines: list[str], path: Path | str, *, unique_keys: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line; each line must be an object."""
    for row, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = loads(raw, unique_keys=unique_keys)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON at column {e.colno}: {e.msg}", path=path, row=row) from None
        except DuplicateKeyError as e:
            raise InputError(str(e), path=path, row=row) from None
        except RecursionError:
            raise InputError("JSON nested too deeply", path=path, row=row) from None
        if not isinstance(obj, dict):
            raise InputError("line is not a JSON object", path=path, row=row)
        yield row, obj


def iter_jsonl(path: Path, *, unique_keys: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Objects of a JSON Lines file with their line numbers."""
    return parse_jsonl(read_text(path).splitlines(), path, unique_keys=unique_keys)


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and rows of a CSV file, each row with the physical line it starts on (so
    errors point at the file). A column named twice is an error (``csv`` would keep one of
    them silently), and so is a header without rows; a spreadsheet's UTF-8 BOM is dropped."""
    text = read_text(path).removeprefix("\ufeff")
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = list(reader.fieldnames or [])
    twice = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if twice is not None:
        raise InputError(f"column {twice!r} appears twice in the header", path=path, row=1, field=twice)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        start = reader.line_num + 1
        for r in reader:
            if None in r:
                raise InputError("row has more cells than the header", path=path, row=start)
            rows.append((start, r))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"malformed CSV: {e}", path=path, row=reader.line_num) from None
    if not rows:
        raise InputError("file has a header but no rows", path=path)
    return header, rows


def json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line (``--router-options '{"k": 2}'``).

    One parser for every such option, so each names itself the same way when it is wrong.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{option} is not valid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object")
    return value


# --------------------------------------------------------------------------- outputs


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(directory: Path, option: str) -> None:
    """Fail now, in one line, if files cannot be created in ``directory`` (made if missing).

    Commands call this before their work (training, scoring), so an unwritable ``--out``
    costs a second, not minutes and then a traceback. The probe creates and removes a file
    in the nearest existing ancestor: permission bits say nothing for root or for /proc.
    """
    import tempfile

    base = _nearest_existing(directory)
    if not base.is_dir():
        raise InputError(f"{option}: {base} is not a directory", path=directory)
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".fwr-probe-"):
            pass
    except OSError as e:
        raise InputError(f"{option}: cannot write in {base}: {e.strerror or e}", path=directory) from None


def check_output_file(path: Path, option: str, *, force: bool | None = None) -> None:
    """``path`` can be written as a file: not a directory, its directory writable, and
    (``force=False``) not there already."""
    if path.is_dir():
        raise InputError(f"is a directory; {option} names a file to write", path=path)
    if force is False and path.exists():
        raise InputError(
            f"already exists; pass --force to overwrite it, or choose another {option}", path=path
        )
    check_writable_dir(path.parent, option)


def replace_dir(out: Path, write: Callable[[Path], object]) -> None:
    """``write`` a directory beside ``out``, then put it in ``out``'s place whole.

    Nothing of an earlier ``out`` (old weights, a calibration for other scores) survives,
    and a failed ``write`` leaves ``out`` as it was.
    """
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        write(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if out.is_dir():
        old = out.with_name(f".{out.name}.old-{new.name.rsplit('-', 1)[-1]}")
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.exists():
            out.unlink()
        new.rename(out)
