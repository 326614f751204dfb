"""Errors a user can act on.

Anything raised as :class:`InputError` is printed by the CLI as a single line and exits with
status 2; it must therefore say *where* (file, row, field) and *what* is wrong, because the
user will not see a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

Loc = tuple[int | str, ...]


class InputError(Exception):
    """Bad user-supplied input (a file, an option value, a missing field)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.row is not None:
                where += f":{self.row}"
        if self.field is not None:
            where += (" " if where else "") + f"field '{self.field}'"
        return _one_line(f"{where}: {self.message}" if where else self.message)


def _one_line(text: str) -> str:
    """Escape control characters: a field name or value taken from a user's file may hold a
    newline, and the CLI promises one line per error."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def dotted(loc: Loc) -> str:
    """A pydantic error location as the field path a user writes (``weak.base_url``)."""
    return ".".join(str(x) for x in loc)


def validation_problems(
    e: ValidationError,
    *,
    name: Callable[[Loc], str] = dotted,
    missing: str = "required field is missing",
    extra: str | None = None,
) -> list[tuple[str | None, str]]:
    """(field, message) for every error of a pydantic check, messages without pydantic's
    "Value error, " prefix; ``missing``/``extra`` replace the texts of those error types."""
    found: list[tuple[str | None, str]] = []
    for err in e.errors():
        msg = err["msg"]
        if err["type"] == "missing":
            msg = missing
        elif err["type"] == "extra_forbidden" and extra is not None:
            msg = extra
        found.append((name(err["loc"]) or None, msg.removeprefix("Value error, ")))
    return found


def input_error_from(
    e: ValidationError,
    *,
    path: str | Path | None = None,
    row: int | None = None,
    name: Callable[[Loc], str] = dotted,
    missing: str = "required field is missing",
) -> InputError:
    """The one conversion of a pydantic ValidationError into an InputError.

    Every bad field goes in the one line: a user fixing a file should not discover its
    mistakes one run at a time. A single error keeps its field in ``InputError.field``.
    """
    found = validation_problems(e, name=name, missing=missing)
    if len(found) == 1:
        fld, msg = found[0]
        return InputError(msg, path=path or None, row=row, field=fld)
    listed = "; ".join(f"field '{f}': {m}" if f else m for f, m in found)
    return InputError(f"{len(found)} bad settings: {listed}", path=path or None, row=row)


class MetricError(ValueError):
    """A metric is undefined on this data (e.g. APGR when weak and strong tie overall)."""


class UndefinedGapError(MetricError):
    """PGR/APGR/CPT are undefined: the strong model is not better than the weak one overall.

    They divide by the gap P_s − P_w; at or below 0 the numbers (e.g. APGR −73) mean nothing,
    and the usual cause is a swapped pair.
    """
