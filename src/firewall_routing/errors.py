"""Errors a user can act on.

Anything raised as :class:`InputError` is printed by the CLI as a single line and exits with
status 2; it must therefore say *where* (file, row, field) and *what* is wrong, because the
user will not see a traceback.
"""

from __future__ import annotations

from pathlib import Path


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
        return f"{where}: {self.message}" if where else self.message


class MetricError(ValueError):
    """A metric is undefined on this data (e.g. APGR when weak and strong tie overall)."""


class UndefinedGapError(MetricError):
    """PGR/APGR/CPT are undefined: the strong model is not better than the weak one overall.

    They divide by the gap P_s − P_w; at or below 0 the numbers (e.g. APGR −73) mean nothing,
    and the usual cause is a swapped pair.
    """
